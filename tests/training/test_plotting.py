"""xpnn.plotting: every plot renders with Agg into a non-trivial PNG, draws what it says
(checked on the figure's own data), and rejects bad input with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import xpnn  # noqa: E402
from xpnn import Dense, ReLU, Sequential  # noqa: E402
from xpnn import plotting as P  # noqa: E402
from xpnn.metrics import roc_auc  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def check_png(path, min_bytes=8_000):
    """The PNG exists, is not tiny, and is not one flat colour."""
    assert path.exists() and path.stat().st_size > min_bytes
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.02


def blobs(n=120, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = np.array([[0, 0], [3, 0], [0, 3], [3, 3]])[:k]
    return (centers[y] + rng.normal(0, 1.0, (n, 2))).astype(np.float32), y.astype(np.int64)  # overlapping: acc < 1


def trained(k=3, backend="numpy", epochs=30):
    X, y = blobs(k=k)
    model = xpnn.NeuralNetwork(2, 16, k, backend=backend, seed=0)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.02))
    model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    return model, X, y


# ---- the two older plots -----------------------------------------------------------------


def test_plot_history(tmp_path):
    h = {
        "loss": [1.0, 0.5, 0.3],
        "val_loss": [1.1, 0.7, 0.6],
        "accuracy": [0.5, 0.8, 0.9],
        "val_accuracy": [0.4, 0.7, 0.8],
        "seconds": [0.1, 0.1, 0.1],
    }
    fig = P.plot_history(h, tmp_path / "h.png")
    check_png(tmp_path / "h.png")
    assert len(fig.axes) == 2  # loss and accuracy; seconds is not a curve
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train loss", "validation loss"]
    assert list(loss_ax.get_lines()[1].get_ydata()) == [1.1, 0.7, 0.6]
    assert loss_ax.get_xlabel() == "epoch"


def test_plot_confusion_matrix(tmp_path):
    cm = np.array([[5, 1], [2, 7]])
    fig = P.plot_confusion_matrix(cm, class_names=["cat", "dog"], path=tmp_path / "cm.png")
    check_png(tmp_path / "cm.png", 5_000)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5", "1", "2", "7"]


# ---- ROC -----------------------------------------------------------------------------------


def test_plot_roc_binary_matches_roc_auc(tmp_path, rng):
    y = rng.integers(0, 2, 200)
    scores = y * 0.8 + rng.normal(0, 0.5, 200)
    fig = P.plot_roc(y, scores, tmp_path / "roc.png")
    check_png(tmp_path / "roc.png")
    ax = fig.axes[0]
    curve = ax.get_lines()[0]
    fpr, tpr = curve.get_xdata(), curve.get_ydata()
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    auc = roc_auc(y, scores)
    assert f"AUC {auc:.3f}" in ax.get_title()
    # the area under the drawn curve is the AUC
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(auc, abs=1e-12)
    assert ax.get_xlabel() == "false positive rate" and ax.get_ylabel() == "true positive rate"


def test_plot_roc_with_ties_and_two_columns():
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])  # column 1 is used
    fig = P.plot_roc(y, scores)
    assert "AUC 0.750" in fig.axes[0].get_title()
    tied = P.plot_roc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))
    assert "AUC 0.500" in tied.axes[0].get_title()  # one threshold: the diagonal


def test_plot_roc_multiclass_one_vs_rest(tmp_path):
    model, X, y = trained(k=3)
    probs = model.predict(X)
    fig = P.plot_roc(y, probs, tmp_path / "roc3.png", class_names=["a", "b", "c"])
    check_png(tmp_path / "roc3.png")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 4 and labels[0].startswith("a (AUC") and labels[-1].startswith("chance")
    assert f"macro AUC {roc_auc(y, probs):.3f}" in ax.get_title()


def test_plot_roc_skips_a_class_without_samples():
    y = np.array([0, 1, 0, 1, 0, 1])
    scores = np.random.default_rng(0).random((6, 3))
    fig = P.plot_roc(y, scores)
    assert "2 (no samples)" in [line.get_label() for line in fig.axes[0].get_lines()]
    assert f"macro AUC {roc_auc(y, scores):.3f}" in fig.axes[0].get_title()


@pytest.mark.parametrize(
    "y, scores, match",
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.2]), r"scores must be \(n,\) or \(n, k\) with n = 3"),
        (np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]), r"y_true must be integers in \[0, 2\), found 2 at index 2"),
        (np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3]), "needs both classes 0 and 1"),
        (np.array([0.0, 1.0]), np.array([0.1, 0.2]), r"y_true must be \(n,\) integer labels"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "scores must be finite, found nan at index 1"),
    ],
)
def test_plot_roc_bad_input(y, scores, match):
    with pytest.raises(ValueError, match=match):
        P.plot_roc(y, scores)


# ---- decision boundary ---------------------------------------------------------------------


def test_plot_decision_boundary_multiclass(tmp_path, backend):
    model, X, y = trained(k=3, backend=backend.name)
    fig = P.plot_decision_boundary(model, X, y, tmp_path / "db.png", resolution=60)
    check_png(tmp_path / "db.png")
    ax = fig.axes[0]
    acc = float(np.mean(model.predict_classes(X) == y))
    assert f"train acc {acc:.1%}" in ax.get_title()
    assert 0.7 < acc < 1.0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1", "class 2"]
    assert ax.get_xlabel() == "$x_1$"


def test_plot_decision_boundary_binary_into_given_axes(tmp_path):
    model, X, y = trained(k=2)
    fig, axes = plt.subplots(1, 2)
    out = P.plot_decision_boundary(model, X, y, ax=axes[1], resolution=50, title="after training")
    assert out is fig and axes[1].get_title().startswith("after training")
    assert len(fig.axes) == 2  # no colour bar added to a caller's grid
    single = P.plot_decision_boundary(model, X, y, tmp_path / "b.png", resolution=50)
    assert len(single.axes) == 2  # its own figure: the axis and the P(class 1) colour bar
    check_png(tmp_path / "b.png")


def test_plot_decision_boundary_bad_input():
    model, X, y = trained(k=2, epochs=1)
    with pytest.raises(ValueError, match=r"X must be \(n, 2\) points .* found shape \(120, 3\)"):
        P.plot_decision_boundary(model, np.c_[X, X[:, :1]], y)
    with pytest.raises(ValueError, match="X has 120 points but y has 119 labels"):
        P.plot_decision_boundary(model, X, y[:-1])


# ---- activations, histograms, first-layer weights -------------------------------------------


def test_plot_activations(tmp_path):
    fig = P.plot_activations(tmp_path / "act.png")
    check_png(tmp_path / "act.png")
    ax_f, ax_d = fig.axes
    lines = {line.get_label(): line for line in ax_d.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"}
    x, d = lines["sigmoid"].get_xdata(), lines["sigmoid"].get_ydata()
    assert d.max() == pytest.approx(0.25, abs=1e-6) and x[np.argmax(d)] == pytest.approx(0.0, abs=0.01)
    x, d = lines["relu"].get_xdata(), lines["relu"].get_ydata()
    assert np.all(d[x < -0.01] == 0.0) and np.all(d[x > 0.01] == 1.0)
    x, d = lines["leaky_relu"].get_xdata(), lines["leaky_relu"].get_ydata()
    assert d[0] == pytest.approx(0.01)
    fx = {line.get_label(): line for line in ax_f.get_lines()}["tanh"]
    np.testing.assert_allclose(fx.get_ydata(), np.tanh(fx.get_xdata()), atol=1e-12)
    assert ax_d.get_ylabel() == "f'(x)"


def test_plot_histograms(tmp_path, backend):
    model = Sequential([Dense(8, 16), ReLU(), Dense(16, 4)], backend=backend.name, seed=0)
    X = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    fig = P.plot_histograms(model, X, tmp_path / "hist.png")
    check_png(tmp_path / "hist.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert len(visible) == 3  # two weight panels, one ReLU output panel
    assert titles[0].startswith("0:Dense(8, 16) W") and titles[2].startswith("1:ReLU()")
    W = np.array(model.backend.to_numpy(model.layers[0].params["W"]))
    counts = sum(patch.get_height() for patch in visible[0].patches)
    assert counts == W.size
    assert f"std {W.std():.2g}" in titles[0]
    no_x = P.plot_histograms(model)
    assert len([ax for ax in no_x.axes if ax.get_visible()]) == 2
    assert any("pass X" in text.get_text() for text in no_x.texts)  # the suptitle, a figure text


def test_plot_first_layer_weights(tmp_path, backend):
    model = Sequential([Dense(64, 10), ReLU(), Dense(10, 3)], backend=backend.name, seed=0)
    fig = P.plot_first_layer_weights(model, (8, 8), tmp_path / "w.png")
    check_png(tmp_path / "w.png")
    W = np.array(model.backend.to_numpy(model.layers[0].params["W"]))
    tiles = [ax for ax in fig.axes if ax.get_visible()]
    assert len(tiles) == 10
    np.testing.assert_allclose(tiles[3].get_images()[0].get_array(), W[:, 3].reshape(8, 8), rtol=1e-6)
    assert tiles[3].get_title() == "unit 3"
    P.plot_first_layer_weights(model, (1, 8, 8), max_units=4)  # a channel axis is fine
    with pytest.raises(ValueError, match=r"image_shape \(7, 7\) must be .* h \* w = 64"):
        P.plot_first_layer_weights(model, (7, 7))
    with pytest.raises(ValueError, match="no built Dense layer"):
        P.plot_first_layer_weights(Sequential([ReLU()]), (8, 8))


# ---- curves and gradients ---------------------------------------------------------------------


def test_plot_curves(tmp_path):
    curves = {"fast": [1.0, 0.5, 0.25, 0.125], "slow": ([10, 20, 30, 40], [1.0, 0.8, 0.6, 0.5])}
    fig = P.plot_curves(curves, tmp_path / "c.png", logy=True, title="demo", xlabel="step", ylabel="loss")
    check_png(tmp_path / "c.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "demo"
    assert list(ax.get_lines()[1].get_xdata()) == [10, 20, 30, 40]
    smooth = P.plot_curves({"noisy": [1.0, 3.0, 1.0, 3.0]}, smooth=2)
    assert list(smooth.axes[0].get_lines()[1].get_ydata()) == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="non-empty dict"):
        P.plot_curves({})


def test_plot_gradient_history(tmp_path):
    h = {
        "step": [1, 2, 3],
        "epoch": [0, 0, 0],
        "grad_norm": {"0:Dense(2, 2)": [1e-6, 1e-6, 2e-6], "2:Dense(2, 1)": [0.1, 0.2, 0.1]},
        "weight_norm": {"0:Dense(2, 2)": [1, 1, 1], "2:Dense(2, 1)": [1, 1, 1]},
        "update_ratio": {"0:Dense(2, 2)": [float("nan"), 1e-8, 1e-8], "2:Dense(2, 1)": [float("nan"), 1e-3, 1e-3]},
        "dead_relu": {"1:ReLU()": [0.0, 0.5, 1.0]},
    }
    fig = P.plot_gradient_history(h, tmp_path / "g.png")
    check_png(tmp_path / "g.png")
    assert len(fig.axes) == 3
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log", "linear"]
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [1e-6, 1e-6, 2e-6]


# ---- class names ---------------------------------------------------------------------------------


def test_xpnn_train_on_fashion_mnist_names_the_classes_on_its_confusion_matrix(tmp_path, monkeypatch):
    """A tiny stand-in for Fashion-MNIST (the four IDX files, random images, every label
    present), trained for one epoch: the confusion matrix train writes has the class names
    as tick labels, not 0-9."""
    from xpnn.cli import main
    from xpnn.datasets import FASHION_MNIST_CLASSES, write_idx

    rng = np.random.default_rng(0)
    home = tmp_path / "fashion-mnist"
    home.mkdir()
    for prefix, n in (("train", 60), ("t10k", 30)):
        write_idx(home / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(home / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))

    drawn, plot = [], P.plot_confusion_matrix

    def recording(*args, **kwargs):  # the figure as train draws it, before train closes it
        fig = plot(*args, **kwargs)
        ax = fig.axes[0]
        drawn.append(([t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]))
        return fig

    monkeypatch.setattr(P, "plot_confusion_matrix", recording)
    argv = ["train", "--data", "fashion-mnist", "--data-home", str(tmp_path), "--hidden", "8", "--epochs", "1"]
    assert main([*argv, "--verbose", "0", "--out", str(tmp_path / "run")]) == 0
    assert drawn == [(list(FASHION_MNIST_CLASSES), list(FASHION_MNIST_CLASSES))]
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    check_png(tmp_path / "run" / "confusion_matrix.png")


def test_confusion_matrix_with_class_names_shows_them_on_both_axes():
    from xpnn.datasets import FASHION_MNIST_CLASSES

    cm = np.arange(100).reshape(10, 10)
    fig = P.plot_confusion_matrix(cm, class_names=FASHION_MNIST_CLASSES, title="fashion-mnist: test set")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(FASHION_MNIST_CLASSES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(FASHION_MNIST_CLASSES)
