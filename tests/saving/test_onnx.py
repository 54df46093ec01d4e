"""ONNX export: every exportable layer, an MLP and a CNN run by onnxruntime match
model.predict at two batch sizes (the batch axis is dynamic), BatchNorm exports its
running statistics, the graph passes onnx.checker, the probabilities option, clear
errors (unsupported layers, bad arguments) and ``xpnn train --export-onnx``."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import xpnn
from xpnn.layers import (
    ELU,
    GELU,
    BatchNorm1D,
    BatchNorm2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    MultiHeadSelfAttention,
    ReLU,
    Residual,
    Sigmoid,
    Softmax,
    Tanh,
)
from xpnn.layers.conv import Conv1D, Conv2D
from xpnn.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from xpnn.onnx import export

ATOL = 1e-4
BATCHES = (3, 17)  # two batch sizes through one exported file: the batch axis is dynamic


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.asarray(X, dtype=np.float32)})[0]


def raw_output(model, X):
    """The model's raw output in inference mode, as NumPy (predict applies the loss's transform)."""
    return model.backend.to_numpy(model.forward(model.backend.asarray(X), training=False))


def train_briefly(model, X, y, loss="softmax_cross_entropy"):
    """One epoch, so weights, BatchNorm running statistics and biases are not their initial values."""
    model.compile(loss, xpnn.Adam(lr=0.01))
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return model


def check_against_model(model, path, sample_shape, rng, probabilities=False, batches=BATCHES):
    for n in batches:
        X = rng.normal(size=(n, *sample_shape)).astype(np.float32)
        expected = model.predict(X) if probabilities else raw_output(model, X)
        got = run_onnx(path, X)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_mlp_matches_predict_at_two_batch_sizes(backend, rng, tmp_path):
    model = xpnn.NeuralNetwork(12, [16, 8], 4, activation="tanh", backend=backend, seed=3)
    X, y = rng.normal(size=(40, 12)).astype(np.float32), rng.integers(0, 4, size=40)
    train_briefly(model, X, y)
    raw, probs = tmp_path / "raw.onnx", tmp_path / "probs.onnx"
    export(model, raw)  # input_shape taken from the first Dense
    export(model, probs, probabilities=True)
    check_against_model(model, raw, (12,), rng)
    check_against_model(model, probs, (12,), rng, probabilities=True)
    X = rng.normal(size=(5, 12)).astype(np.float32)
    assert np.allclose(run_onnx(probs, X).sum(axis=1), 1.0, atol=1e-5)  # the Softmax was appended
    assert not np.allclose(run_onnx(raw, X).sum(axis=1), 1.0, atol=1e-3)  # and only there


def test_graph_passes_checker_with_a_dynamic_batch_axis(rng, tmp_path):
    model = xpnn.NeuralNetwork(6, 5, 3)
    path = tmp_path / "m.onnx"
    proto = export(model, path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == proto.SerializeToString()
    for value in (loaded.graph.input[0], loaded.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim[1:]] == [6]
    assert [d.dim_value for d in loaded.graph.output[0].type.tensor_type.shape.dim[1:]] == [3]
    assert loaded.opset_import[0].version == 17
    assert {n.op_type for n in loaded.graph.node} >= {"Gemm", "Relu"}


@pytest.mark.parametrize(
    "make",
    [ReLU, lambda: LeakyReLU(0.2), lambda: ELU(0.5), GELU, Sigmoid, Tanh, Softmax, Identity, lambda: Dropout(0.5)],
    ids=["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "identity", "dropout"],
)
def test_each_activation(make, rng, tmp_path):
    # scaled inputs reach both sides of every kink and the saturated tails
    model = xpnn.Sequential([Dense(5, 7), make()], seed=1)
    model.layers[0].params["W"][...] *= 4.0
    path = tmp_path / "m.onnx"
    export(model, path)
    check_against_model(model, path, (5,), rng)


def test_gelu_is_one_node_from_opset_20(rng, tmp_path):
    if onnx.defs.onnx_opset_version() < 20 or tuple(map(int, ort.__version__.split(".")[:2])) < (1, 17):
        pytest.skip("opset 20 needs onnx >= 1.15 and onnxruntime >= 1.17")
    model = xpnn.Sequential([Dense(5, 7), GELU()])
    path = tmp_path / "m.onnx"
    proto = export(model, path, opset=20)
    assert [n.op_type for n in proto.graph.node].count("Gelu") == 1
    assert "Tanh" not in [n.op_type for n in proto.graph.node]
    check_against_model(model, path, (5,), rng)
    # opset 17 writes the tanh approximation out
    assert "Tanh" in [n.op_type for n in export(model, tmp_path / "m17.onnx").graph.node]


def test_cnn_matches_predict(backend, rng, tmp_path):
    model = xpnn.Sequential(
        [
            Conv2D(2, 4, 3, stride=2, padding=1),
            BatchNorm2D(4),
            ReLU(),
            MaxPool2D(2, stride=1, padding=1),  # padding: ONNX must not let it win
            Conv2D(4, 3, (3, 2), dilation=(2, 1)),
            AvgPool2D(2, padding=1),  # padding counted in the mean
            Conv2D(3, 5, 1),
            GlobalAvgPool2D(),
            Dense(5, 3),
        ],
        backend=backend,
        seed=2,
    )
    X, y = rng.normal(size=(24, 2, 11, 10)).astype(np.float32), rng.integers(0, 3, size=24)
    train_briefly(model, X, y)
    path = tmp_path / "cnn.onnx"
    export(model, path, input_shape=(2, 11, 10), probabilities=True)
    # batch sizes the model has already run (export's probe of one, training's 8): on JAX
    # each new shape compiles every convolution again, and two sizes test the dynamic axis
    check_against_model(model, path, (2, 11, 10), rng, probabilities=True, batches=(1, 8))


def test_conv1d_and_flatten(rng, tmp_path):
    model = xpnn.Sequential([Conv1D(3, 4, 3, stride=2, padding=1, dilation=2), ReLU(), Flatten(), Dense(16, 2)])
    path = tmp_path / "c1.onnx"
    export(model, path, input_shape=(3, 10))
    check_against_model(model, path, (3, 10), rng)


def test_batchnorm_exports_its_running_statistics(rng, tmp_path):
    model = xpnn.Sequential([Dense(4, 6), BatchNorm1D(6), ReLU(), Dense(6, 2)], seed=4)
    X = (rng.normal(size=(64, 4)) * 3 + 2).astype(np.float32)
    train_briefly(model, X, rng.integers(0, 2, size=64))
    bn = model.layers[1]
    # the running stats moved away from (0, 1), so using anything else would show
    assert np.abs(model.backend.to_numpy(bn.buffers["running_mean"])).max() > 0.1
    path = tmp_path / "bn.onnx"
    export(model, path)
    check_against_model(model, path, (4,), rng)
    # a batch of one: batch statistics would normalize it to beta, the running ones do not
    X1 = X[:1]
    np.testing.assert_allclose(run_onnx(path, X1), raw_output(model, X1), atol=ATOL, rtol=0)


def test_layernorm_and_residual(backend, rng, tmp_path):
    model = xpnn.Sequential(
        [Dense(6, 8), Residual(LayerNorm(8), Dense(8, 8), GELU()), LayerNorm(8), Dense(8, 3)], backend=backend, seed=5
    )
    X, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 3, size=32)
    train_briefly(model, X, y)
    path = tmp_path / "res.onnx"
    proto = export(model, path)
    assert {"LayerNormalization", "Add"} <= {n.op_type for n in proto.graph.node}
    check_against_model(model, path, (6,), rng)


@pytest.mark.parametrize("loss, op", [("bce_with_logits", "Sigmoid"), ("mse", None)])
def test_probabilities_follow_the_loss(loss, op, rng, tmp_path):
    model = xpnn.Sequential([Dense(4, 2)])
    train_briefly(
        model,
        rng.normal(size=(16, 4)).astype(np.float32),
        rng.integers(0, 2, size=(16, 2)).astype(np.float32),
        loss=loss,
    )
    path = tmp_path / "p.onnx"
    proto = export(model, path, probabilities=True)
    ops = [n.op_type for n in proto.graph.node]
    assert (op in ops) if op else ops == ["Gemm", "Identity"]
    check_against_model(model, path, (4,), rng, probabilities=True)


def test_unsupported_layers_are_named(tmp_path):
    path = tmp_path / "no.onnx"
    with pytest.raises(
        NotImplementedError,
        match=r"layers\[0\] Embedding\(.*cannot be exported.*exportable layers: .*Dense.*not yet: Embedding",
    ):
        export(xpnn.Sequential([Embedding(10, 4)]), path, input_shape=(3,))
    # inside a container the message names both levels
    model = xpnn.Sequential([LayerNorm(4), Residual(LayerNorm(4), MultiHeadSelfAttention(4, 2))])
    with pytest.raises(NotImplementedError, match=r"layers\[1\] Residual -> layers\[1\] MultiHeadSelfAttention"):
        export(model, path, input_shape=(5, 4))
    assert not path.exists()


def test_bad_arguments(rng, tmp_path):
    path = tmp_path / "bad.onnx"
    model = xpnn.NeuralNetwork(6, 5, 3)
    with pytest.raises(ValueError, match=r"opset must be an integer in \[17, "):
        export(model, path, opset=13)
    with pytest.raises(ValueError, match=r"input_shape \(7,\) does not fit the model: Dense\(6, 5\)"):
        export(model, path, input_shape=(7,))
    with pytest.raises(ValueError, match=r"input_shape must be the shape of one sample"):
        export(model, path, input_shape=(0, 6))
    with pytest.raises(ValueError, match=r"probabilities=True needs a compiled model"):
        export(model, path, probabilities=True)
    with pytest.raises(ValueError, match=r"input_shape is needed .*Conv2D"):
        export(xpnn.Sequential([Conv2D(1, 2, 3)]), path)
    with pytest.raises(TypeError, match=r"model must be an xpnn Sequential, found Dense"):
        export(Dense(3, 3), path)
    assert not path.exists()


def test_cli_train_export_onnx(tmp_path):
    from xpnn.cli import main

    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "--epochs", "1", "--hidden", "16", "--verbose", "0", "--out", str(out), "--export-onnx"])
    assert code == 0
    assert "model.onnx" in stdout.getvalue()
    model = xpnn.load(out / "model.safetensors")
    _, (X_test, _) = xpnn.load_digits(flatten=True)
    # the CLI exports probabilities: what `xpnn predict` prints
    np.testing.assert_allclose(run_onnx(out / "model.onnx", X_test), model.predict(X_test), atol=ATOL, rtol=0)


# ---- the input shape, from the model when it knows it ------------------------------------------


def small_cnn(seed=0):
    return xpnn.Sequential([Conv2D(2, 3, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(3)], seed=seed)


def test_cnn_input_shape_comes_from_the_data_it_has_seen(rng, tmp_path):
    model = small_cnn()
    assert model.input_shape_ is None  # declared on Sequential: None until the model sees data
    X, y = rng.normal(size=(16, 2, 6, 8)).astype(np.float32), rng.integers(0, 3, size=16)
    train_briefly(model, X, y)
    assert model.input_shape_ == (2, 6, 8)  # recorded by training.data.prepare
    path = tmp_path / "cnn.onnx"
    proto = export(model, path, probabilities=True)  # no input_shape=
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [2, 6, 8]
    check_against_model(model, path, (2, 6, 8), rng, probabilities=True)


def test_a_recorded_input_shape_is_used_and_an_explicit_one_wins(rng, tmp_path):
    model = small_cnn()
    model.input_shape_ = (2, 4, 6)  # what fit/predict record
    path = tmp_path / "cnn.onnx"
    proto = export(model, path)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [2, 4, 6]
    check_against_model(model, path, (2, 4, 6), rng)
    # input_shape= overrides it (the model's lazily built Dense then refuses another size)
    with pytest.raises(ValueError, match=r"input_shape \(2, 6, 6\) does not fit the model: Dense\(18, 3\)"):
        export(model, path, input_shape=(2, 6, 6))


def test_dense_first_inside_containers_and_lazily_built(rng, tmp_path):
    # a nested Sequential and a Residual whose first layer is a Dense: its in_features
    inner = xpnn.Sequential([Dense(5, 4), ReLU()])
    model = xpnn.Sequential([inner, Residual(Dense(4, 4)), Dense(4, 2)])
    path = tmp_path / "nested.onnx"
    export(model, path)
    check_against_model(model, path, (5,), rng)
    # Dense(out) learns in_features from its first input: once built, the export knows it
    lazy = xpnn.Sequential([Dense(6), ReLU(), Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"input_shape is needed for a model starting with Dense\(None, 6\): it "
        r"has seen no data yet .*model.input_shape_.*e.g. input_shape=",
    ):
        export(lazy, path)
    lazy.forward(lazy.backend.asarray(rng.normal(size=(2, 7)).astype(np.float32)))
    export(lazy, path)
    check_against_model(lazy, path, (7,), rng)


def test_cnn_without_data_names_input_shape(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"xpnn.onnx.export: input_shape is needed for a model starting with "
        r"Conv2D\(.*pass the shape of one sample without the batch axis, e.g. "
        r"input_shape=\(1, 28, 28\)",
    ):
        export(small_cnn(), tmp_path / "no.onnx")
    assert not (tmp_path / "no.onnx").exists()
