"""Plots with matplotlib (the optional extra ``plot``). Each returns the Figure and, with
``path``, saves a PNG. matplotlib is imported lazily with a clear error when missing.

Training: plot_history (loss and metrics per epoch), plot_curves (several runs on one
axis), plot_gradient_history (GradientMonitor's per-layer gradient norms).
Classifiers: plot_confusion_matrix, plot_roc (binary or one-vs-rest), plot_decision_boundary
(2-D inputs). Inside the network: plot_activations (f and f' from the layers themselves),
plot_histograms (weights and activations per layer), plot_first_layer_weights (as images).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MatplotlibMissing",
    "plot_history",
    "plot_curves",
    "plot_gradient_history",
    "plot_confusion_matrix",
    "plot_roc",
    "plot_decision_boundary",
    "plot_activations",
    "plot_histograms",
    "plot_first_layer_weights",
    "pyplot",
]


class MatplotlibMissing(RuntimeError):
    """matplotlib does not import: the message says how to install it."""


def pyplot():
    """``matplotlib.pyplot``, drawing off screen (the Agg backend) unless a backend was
    chosen already: what the plot functions here draw with, and a script's own figures
    can too. Raises MatplotlibMissing, naming the extra to install, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MatplotlibMissing('plotting needs matplotlib: pip install "xpnn[plot]"') from None
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
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    logs = getattr(history, "history", history)
    names = [k for k in logs if not k.startswith("val_") and k not in ("seconds", "lr")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(fig, path)


def plot_confusion_matrix(cm, class_names=None, path=None, title="Confusion matrix"):
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = pyplot()
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
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > threshold else "black",
            )
    return _finish(fig, path)


# ---- helpers ------------------------------------------------------------------------------


def _host(a, argname, where):
    """Any array (NumPy, a backend's, a list) as a NumPy array."""
    import array_api_compat

    if array_api_compat.is_array_api_obj(a) and not isinstance(a, np.ndarray):  # a device array, a tensor
        from .backends import backend_of

        return np.asarray(backend_of(a).to_numpy(a))
    try:
        return np.asarray(a)
    except Exception:
        raise TypeError(f"{where}: {argname} must be an array, found {type(a).__name__}") from None


def _depth_colors(plt, n):
    """n colours from dark (first layer) to bright (last): depth reads as colour."""
    cmap = plt.get_cmap("viridis")
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]


def plot_curves(curves, path=None, title="Curves", xlabel="step", ylabel="loss", logy=False, ax=None, smooth: int = 1):
    """Several named series on one axis: ``curves`` maps a label to a list of values
    (x is 1, 2, ...) or to a pair ``(x, values)``. ``smooth`` > 1 draws a running mean of
    that many points over a faint raw line. Returns the Figure."""
    plt = pyplot()
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"plot_curves: curves must be a non-empty dict label -> values, found {type(curves).__name__}")
    fig, ax = plt.subplots(figsize=(7, 4.2)) if ax is None else (ax.figure, ax)
    for i, (label, series) in enumerate(curves.items()):
        if isinstance(series, tuple) and len(series) == 2:
            x, v = np.asarray(series[0], dtype=float), np.asarray(series[1], dtype=float)
        else:
            v = np.asarray(series, dtype=float)
            x = np.arange(1, v.size + 1)
        color = f"C{i % 10}"
        if smooth > 1 and v.size >= smooth:
            ax.plot(x, v, color=color, alpha=0.2, lw=0.8)
            kernel = np.ones(smooth) / smooth
            ax.plot(x[smooth - 1 :], np.convolve(v, kernel, mode="valid"), color=color, lw=1.8, label=label)
        else:
            ax.plot(x, v, color=color, lw=1.8, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logy else "major")
    ax.legend(fontsize=8)
    return _finish(fig, path)


# ---- ROC ----------------------------------------------------------------------------------


def _roc(positive, score):
    """(fpr, tpr, auc) of one binary problem: positive (n,) bool, score (n,) float."""
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], positive[order].astype(np.float64)
    cut = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(t)[cut]
    fps = (cut + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return fpr, tpr, auc


def plot_roc(y_true, scores, path=None, class_names=None, title="ROC curve"):
    """ROC curves with their AUC: one curve for a binary problem, one per class
    (one-vs-rest) plus the macro-average AUC for more classes.

    y_true: (n,) integer labels. scores: (n,) or (n, 1) scores of class 1 (binary), or
    (n, k) class scores/probabilities (k = 2 uses column 1; k > 2 one curve per class).
    """
    where = "plot_roc"
    plt = pyplot()
    y = _host(y_true, "y_true", where)
    s = _host(scores, "scores", where).astype(np.float64)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: y_true must be (n,) integer labels, found shape {y.shape} dtype {y.dtype}")
    if s.ndim == 2 and s.shape[1] in (1, 2):
        s = s[:, -1]
    if s.ndim not in (1, 2) or s.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where}: scores must be (n,) or (n, k) with n = {y.shape[0]} (the length of y_true), "
            f"found shape {s.shape}"
        )
    bad_rows = np.flatnonzero(~np.isfinite(s.reshape(s.shape[0], -1)).all(axis=1))
    if bad_rows.size:
        raise ValueError(f"{where}: scores must be finite, found {s[bad_rows[0]]} at index {bad_rows[0]}")
    k = 2 if s.ndim == 1 else s.shape[1]
    bad = np.flatnonzero((y < 0) | (y >= k))
    if bad.size:
        raise ValueError(f"{where}: y_true must be integers in [0, {k}), found {y[bad[0]]} at index {bad[0]}")
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{where}: class_names must name the {k} classes, found {len(names)} names")
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    if s.ndim == 1:
        positive = y == 1
        if positive.all() or not positive.any():
            raise ValueError(f"{where}: y_true needs both classes 0 and 1 to draw a ROC curve, found only {int(y[0])}")
        fpr, tpr, auc = _roc(positive, s)
        ax.plot(fpr, tpr, lw=2, label=f"class {names[1]} vs {names[0]} (AUC {auc:.3f})")
        ax.set_title(f"{title} (AUC {auc:.3f})")
    else:
        aucs = []
        for c in range(k):
            positive = y == c
            if positive.all() or not positive.any():  # no curve; left out of the macro average (as roc_auc)
                missing = "negatives" if positive.all() else "samples"
                ax.plot([], [], lw=1.4, color=f"C{c % 10}", label=f"{names[c]} (no {missing})")
                continue
            fpr, tpr, auc = _roc(positive, s[:, c])
            aucs.append(auc)
            ax.plot(fpr, tpr, lw=1.4, color=f"C{c % 10}", label=f"{names[c]} (AUC {auc:.3f})")
        if not aucs:
            raise ValueError(f"{where}: y_true holds only class {int(y[0])}; a ROC curve needs positives and negatives")
        ax.set_title(f"{title}, one-vs-rest (macro AUC {np.mean(aucs):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncol=1 if k <= 6 else 2)
    return _finish(fig, path)


# ---- a 2-D classifier's decision boundary --------------------------------------------------


def _draw_regions(fig, ax, gx, gy, probs, k, colorbar):
    """Fill the grid (gx, gy) by the model's probabilities ``probs`` (gx.size, outputs):
    P(class 1) with its 0.5 contour for a binary model, argmax regions for k classes.
    Returns {class: colour} for the points drawn on top."""
    if probs.shape[1] <= 2:
        p1 = (probs[:, -1]).reshape(gx.shape)
        filled = ax.contourf(gx, gy, p1, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(gx, gy, p1, levels=[0.5], colors="k", linewidths=1.5)
        if colorbar:  # in a grid of snapshots the caller adds one colour bar if wanted
            fig.colorbar(filled, ax=ax, fraction=0.046, label="P(class 1)")
        return {0: "#2166ac", 1: "#b2182b"}
    from matplotlib.colors import ListedColormap

    regions = probs.argmax(axis=1).reshape(gx.shape)
    palette = [f"C{c % 10}" for c in range(k)]
    ax.contourf(gx, gy, regions, levels=np.arange(k + 1) - 0.5, cmap=ListedColormap(palette), alpha=0.3)
    ax.contour(gx, gy, regions, levels=np.arange(k) + 0.5, colors="k", linewidths=0.8)
    return {c: palette[c] for c in range(k)}


def plot_decision_boundary(model, X, y, path=None, resolution: int = 200, title="Decision boundary", ax=None):
    """The regions a 2-D classifier assigns to each class, with the data on top.

    model: a trained model with ``predict`` (probabilities). X: (n, 2) points; y: (n,)
    integer labels. A binary model (one sigmoid output, or two classes) is drawn as its
    probability of class 1 with the 0.5 contour; more classes as filled argmax regions.
    Pass ``ax`` to draw into an existing axis (e.g. a grid of snapshots).
    """
    where = "plot_decision_boundary"
    plt = pyplot()
    X = _host(X, "X", where).astype(np.float64)
    y = _host(y, "y", where).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{where}: X must be (n, 2) points of a 2-D problem, found shape {X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{where}: X has {X.shape[0]} points but y has {y.shape[0]} labels")
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    probs = np.asarray(model.predict(grid))
    probs = probs.reshape(probs.shape[0], -1)
    k = max(2, probs.shape[1], int(y.max()) + 1)
    own_figure = ax is None
    fig, ax = plt.subplots(figsize=(5.6, 4.8)) if own_figure else (ax.figure, ax)
    colors = _draw_regions(fig, ax, gx, gy, probs, k, colorbar=own_figure)
    pred_train = np.asarray(model.predict(X.astype(np.float32))).reshape(X.shape[0], -1)
    pred_train = pred_train[:, -1] > 0.5 if probs.shape[1] <= 2 else pred_train.argmax(axis=1)
    acc = float(np.mean(pred_train.astype(np.int64) == y))
    for c in np.unique(y):
        pts = X[y == c]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=14,
            color=colors.get(int(c), "grey"),
            edgecolors="k",
            linewidths=0.4,
            label=f"class {int(c)}",
        )
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(f"{title} (train acc {acc:.1%})")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    if not own_figure:
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig
    return _finish(fig, path)


# ---- activations, weights, gradients -------------------------------------------------------


def plot_activations(path=None, names=("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"), x_range=(-5.0, 5.0)):
    """Activation functions (left) and their derivatives (right), each computed by the
    xpnn layer itself: ``forward(x)`` for f and ``backward(ones)`` for f'(x)."""
    from .backends import get_backend
    from .layers import get_activation

    plt = pyplot()
    backend = get_backend("numpy")
    x = np.linspace(x_range[0], x_range[1], 1001)
    X = backend.asarray(x, "float64")
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, name in enumerate(names):
        layer = get_activation(name)
        f = backend.to_numpy(layer.forward(X, training=True))
        d = backend.to_numpy(layer.backward(backend.xp.ones_like(X)))
        # dashes, and later curves below earlier ones: where curves coincide (relu, elu and
        # gelu for x > 0) each stays visible
        style = dict(lw=1.8, color=f"C{i}", ls=("-", "--", "-.", ":")[i % 4], label=name, zorder=10 - i)
        ax_f.plot(x, f, **style)
        ax_d.plot(x, d, **style)
    ax_f.set_ylim(-1.5, 3.0)
    ax_d.set_ylim(-0.2, 1.3)
    for ax, what in ((ax_f, "f(x)"), (ax_d, "f'(x)")):
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel("x")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    ax_f.set_title("Activation functions (layer.forward)")
    ax_d.set_title("Derivatives (layer.backward of ones)")
    return _finish(fig, path)


def plot_histograms(
    model, X=None, path=None, bins: int = 50, max_samples: int = 1000, title="Weights and activations per layer"
):
    """Histograms of each layer's weights (``W``, or all its params) and, given inputs X,
    of each activation layer's outputs (every layer's, if the model has no separate
    activation layers) on up to ``max_samples`` rows of X, in inference mode."""
    from .layers.activations import Activation

    where = "plot_histograms"
    plt = pyplot()
    backend = model.backend
    weights = []
    for i, layer in enumerate(model.layers):
        if not layer.params:
            continue
        arrays = [layer.params["W"]] if "W" in layer.params else list(layer.params.values())
        values = np.concatenate([np.asarray(backend.to_numpy(a), dtype=np.float64).ravel() for a in arrays])
        weights.append((f"{i}:{layer!r}" + (" W" if "W" in layer.params else ""), values))
    acts = []
    if X is not None:
        Xb = _host(X, "X", where)[:max_samples]
        if Xb.shape[0] == 0:
            raise ValueError(f"{where}: X is empty")
        out = backend.asarray(Xb, model.dtype_name)
        every = not any(isinstance(layer, Activation) for layer in model.layers)
        for i, layer in enumerate(model.layers):
            out = layer.forward(out, training=False)
            if every or isinstance(layer, Activation):
                acts.append((f"{i}:{layer!r}", np.asarray(backend.to_numpy(out), dtype=np.float64).ravel()))
    ncols = min(5, max(len(weights), len(acts), 1))
    n_w_rows = -(-len(weights) // ncols)
    n_a_rows = -(-len(acts) // ncols) if acts else 0
    fig, axes = plt.subplots(
        n_w_rows + n_a_rows, ncols, figsize=(2.7 * ncols, 2.2 * (n_w_rows + n_a_rows) + 0.6), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_visible(False)
    for kind, items, row0, color in (("weights", weights, 0, "C0"), ("outputs", acts, n_w_rows, "C1")):
        for j, (name, values) in enumerate(items):
            ax = axes[row0 + j // ncols, j % ncols]
            ax.set_visible(True)
            ax.hist(values, bins=bins, color=color, alpha=0.85)
            ax.set_title(f"{name}\nmean {values.mean():.2g}, std {values.std():.2g}", fontsize=7.5)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("weight value" if kind == "weights" else "output value", fontsize=7.5)
            if j % ncols == 0:
                ax.set_ylabel("count", fontsize=7.5)
    fig.suptitle(title + ("" if acts else " (pass X for activations)"))
    return _finish(fig, path)


def plot_first_layer_weights(model, image_shape, path=None, max_units: int = 64, title="First-layer weights"):
    """Each unit of the first Dense layer as an image: column j of W (in, out) reshaped to
    ``image_shape`` ((h, w) or (1, h, w)), red positive, blue negative, each unit on its
    own symmetric colour scale (what pixel pattern excites that unit)."""
    from .layers.dense import Dense

    where = "plot_first_layer_weights"
    plt = pyplot()
    dense = next((layer for layer in model.layers if isinstance(layer, Dense) and "W" in layer.params), None)
    if dense is None:
        raise ValueError(f"{where}: the model has no built Dense layer")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    W = np.asarray(model.backend.to_numpy(dense.params["W"]), dtype=np.float64)
    if len(shape) != 2 or shape[0] * shape[1] != W.shape[0]:
        raise ValueError(
            f"{where}: image_shape {tuple(image_shape)} must be (h, w) or (1, h, w) with h * w = "
            f"{W.shape[0]} (the first Dense layer's inputs), found {shape}"
        )
    n = min(W.shape[1], max_units)
    ncols = int(np.ceil(np.sqrt(n)))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * ncols + 0.6, 1.1 * nrows + 0.7), squeeze=False)
    for j, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if j >= n:
            ax.set_visible(False)
            continue
        w = W[:, j].reshape(shape)
        lim = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"unit {j}", fontsize=7, pad=2)
    fig.suptitle(f"{title}: {dense!r}, {n} of {W.shape[1]} units (red +, blue -)", fontsize=10)
    return _finish(fig, path)


def plot_gradient_history(history, path=None, title="Gradient norms per layer"):
    """GradientMonitor's history: per-layer gradient norms over the steps (log scale),
    update/weight ratios (log scale, 1e-3 marked) and, if recorded, dead ReLU fractions."""
    plt = pyplot()
    h = getattr(history, "history", history)
    steps = np.asarray(h.get("step", []))
    if steps.size == 0:
        raise ValueError("plot_gradient_history: nothing recorded yet (train with the GradientMonitor first)")
    panels = ["grad_norm", "update_ratio"] + (["dead_relu"] if h.get("dead_relu") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 1.8, 4.0), squeeze=False)
    labels = {
        "grad_norm": ("gradient norm ||dL/dW||", True),
        "update_ratio": ("update / weight ||ΔW|| / ||W||", True),
        "dead_relu": ("fraction of dead ReLU units", False),
    }
    for ax, key in zip(axes[0], panels):
        series = h[key]
        colors = _depth_colors(plt, len(series))
        for color, (name, values) in zip(colors, series.items()):
            v = np.asarray(values, dtype=float)
            if labels[key][1]:
                v = np.where(v > 0, v, np.nan)  # log scale: zeros cannot be drawn
            ax.plot(steps, v, color=color, lw=1.3, label=name)
        if labels[key][1]:
            ax.set_yscale("log")
        if key == "update_ratio":
            ax.axhline(1e-3, color="grey", ls="--", lw=1)
            ax.text(steps[0], 1e-3, " 1e-3", va="bottom", fontsize=7, color="grey")
        if key == "dead_relu":
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step (batch)")
        ax.set_ylabel(labels[key][0])
        ax.grid(alpha=0.3, which="both" if labels[key][1] else "major")
    axes[0][0].set_title(title)
    axes[0][1].set_title("Update size relative to the weights")
    if "dead_relu" in panels:
        axes[0][2].set_title("Dead ReLU units")
        axes[0][2].legend(fontsize=7, loc="best")
    # one legend for the layers with params, right of the panels (the same colours in both)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1 - 1.7 / fig.get_figwidth(), 1))
    fig.legend(handles, names, loc="center right", fontsize=7, title="layer", title_fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
