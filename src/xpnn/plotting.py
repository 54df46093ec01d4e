"""Plots with matplotlib (the optional extra ``plot``). Each returns the Figure and, with
``path``, saves a PNG. matplotlib is imported lazily with a clear error when missing."""

from __future__ import annotations

import numpy as np


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError('plotting needs matplotlib: pip install "xpnn[plot]"') from None
    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_history(history, path=None, title="Training curves"):
    """Loss (and each metric) per epoch, train vs validation, one panel each.

    history: a History or its ``.history`` dict of lists.
    """
    plt = _plt()
    logs = getattr(history, "history", history)
    names = [k for k in logs if not k.startswith("val_") and k not in ("seconds", "lr")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(fig, path)


def plot_confusion_matrix(cm, class_names=None, path=None, title="Confusion matrix"):
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = _plt()
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    return _finish(fig, path)
