"""Save and load: one .safetensors file (no pickle), round trips on and across backends,
exact resume of an interrupted run (shuffling and dropout included), and clear errors for
files that are not models."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import xpnn
from xpnn import Dense, Dropout, LeakyReLU, ModelCheckpoint, NeuralNetwork, ReLU, Sequential


def blobs(n=30, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(k, d))[y] * 3.0 + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def dropout_net(backend="numpy", seed=5):
    model = Sequential([Dense(4, 16), ReLU(), Dropout(0.3), Dense(16, 3)], backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=0.02), metrics=["accuracy"])


def weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    for p, q in zip(wa, wb):
        np.testing.assert_array_equal(p, q)


def no_seconds(history):
    return {k: v for k, v in history.history.items() if k != "seconds"}


# ---- round trips --------------------------------------------------------------------------------


def test_round_trip_gives_identical_predictions(tmp_path, backend):
    X, y = blobs()
    model = dropout_net(backend)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = xpnn.load(path, backend=backend)
    assert type(loaded) is Sequential and loaded.backend == model.backend
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in model.layers]
    assert_same_weights(model, loaded)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    # compile settings, optimizer state and counters come back
    assert loaded.loss.name == "softmax_cross_entropy" and loaded.metric_names == ["accuracy"]
    assert type(loaded.optimizer) is xpnn.Adam and loaded.optimizer.config() == model.optimizer.config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    for key, a in model.optimizer.state_arrays().items():
        b = loaded.optimizer.state_arrays()[key]
        assert backend.owns(b)
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert loaded.epochs_trained == 2 and loaded.seed == 5 and loaded.dtype_name == "float32"


def test_neural_network_round_trip(tmp_path):
    X, y = blobs()
    model = NeuralNetwork(4, [6, 5], 3, activation=LeakyReLU(0.2), output_activation="softmax", seed=2).compile(
        "cross_entropy", xpnn.SGD(lr=0.1, momentum=0.9)
    )
    model.fit(X, y, epochs=2, verbose=0)
    model.save(tmp_path / "nn.safetensors")
    loaded = xpnn.load(tmp_path / "nn.safetensors")
    assert type(loaded) is NeuralNetwork and loaded.arch == model.arch
    assert [layer.alpha for layer in loaded.layers if isinstance(layer, LeakyReLU)] == [0.2, 0.2]
    assert type(loaded.optimizer) is xpnn.SGD and loaded.optimizer.momentum == 0.9
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_uncompiled_model_round_trip(tmp_path, backend):
    X, _ = blobs(n=5)
    model = NeuralNetwork(4, 3, 2, backend=backend, seed=9)
    model.save(tmp_path / "raw.safetensors")
    loaded = xpnn.load(tmp_path / "raw.safetensors", backend=backend)
    assert loaded.loss is None and loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("source, target", [("numpy", "array_api_strict"), ("array_api_strict", "numpy")])
def test_save_on_one_backend_load_on_another(tmp_path, source, target):
    X, y = blobs()
    model = dropout_net(source)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors", backend=target)
    assert loaded.backend.name == target
    assert all(loaded.backend.owns(a) for a in loaded.named_arrays().values())
    assert all(loaded.backend.owns(a) for a in loaded.optimizer.state_arrays().values())
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6, atol=1e-7)
    # and it trains on: the same steps as the original continuing on its own backend
    h1 = model.fit(X, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    h2 = loaded.fit(X, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-6)


def test_load_uses_the_default_backend(tmp_path):
    NeuralNetwork(2, 3, 1).save(tmp_path / "m.safetensors")
    with xpnn.use_backend("array_api_strict"):
        assert xpnn.load(tmp_path / "m.safetensors").backend.name == "array_api_strict"
    assert xpnn.load(tmp_path / "m.safetensors").backend.name == "numpy"


# ---- exact resume -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["model.save", "ModelCheckpoint"])
def test_exact_resume(tmp_path, backend, how):
    """N epochs in one go == k epochs, save, load, N - k more (shuffle and dropout on, so the
    generator state, the optimizer state and its step count must all come back)."""
    X, y = blobs(n=40)
    N, k = 5, 2
    whole = dropout_net(backend)
    h_whole = whole.fit(X, y, epochs=N, batch_size=8, shuffle=True, verbose=0)

    first = dropout_net(backend)
    path = tmp_path / "ck.safetensors"
    if how == "model.save":
        first.fit(X, y, epochs=k, batch_size=8, shuffle=True, verbose=0)
        first.save(path)
    else:
        first.fit(
            X, y, epochs=k, batch_size=8, shuffle=True, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss")]
        )
    resumed = xpnn.load(path, backend=backend)
    assert resumed.epochs_trained == k
    h_rest = resumed.fit(X, y, epochs=N, initial_epoch=k, batch_size=8, shuffle=True, verbose=0)
    assert_same_weights(whole, resumed)
    assert h_rest.epoch == list(range(k, N))
    for key, values in no_seconds(h_rest).items():
        assert values == h_whole.history[key][k:], key


def test_resume_needs_the_generator_state(tmp_path):
    """The check above can fail: a fresh generator (seed only) gives a different run."""
    X, y = blobs(n=40)
    whole = dropout_net()
    whole.fit(X, y, epochs=3, batch_size=8, verbose=0)
    first = dropout_net()
    first.fit(X, y, epochs=1, batch_size=8, verbose=0)
    first.save(tmp_path / "ck.safetensors")
    resumed = xpnn.load(tmp_path / "ck.safetensors")
    resumed.generator = resumed.backend.rng(resumed.seed)
    for layer in resumed.layers:
        layer.generator = resumed.generator
    resumed.fit(X, y, epochs=3, initial_epoch=1, batch_size=8, verbose=0)
    assert any(not np.array_equal(p, q) for p, q in zip(weights(whole), weights(resumed)))


# ---- the file itself ---------------------------------------------------------------------------


def test_file_is_plain_safetensors_without_pickle(tmp_path):
    X, y = blobs()
    model = dropout_net()
    model.fit(X, y, epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    raw = path.read_bytes()
    # safetensors layout: 8-byte little-endian header length, a JSON header, raw tensor bytes
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert not raw.startswith(b"\x80")  # a pickle starts with the PROTO opcode
    assert header["__metadata__"]["format"] == "xpnn-3"
    with safe_open(str(path), framework="numpy") as fh:
        keys = set(fh.keys())
        meta = fh.metadata()
        W = fh.get_tensor("layer.0.W")
    assert keys == {
        "layer.0.W",
        "layer.0.b",
        "layer.3.W",
        "layer.3.b",
        *(f"optimizer.{s}.{p}" for s in ("m", "v") for p in ("0.W", "0.b", "3.W", "3.b")),  # by param path
    }
    np.testing.assert_array_equal(W, weights(model)[0])
    config = json.loads(meta["xpnn"])
    assert config["class"] == "Sequential" and config["seed"] == 5
    assert [layer["class"] for layer in config["config"]["layers"]] == ["Dense", "ReLU", "Dropout", "Dense"]
    assert config["compile"]["optimizer"]["name"] == "adam"
    assert "generator" in config and config["epochs_trained"] == 1


def test_saved_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        NeuralNetwork(2, 3, 1).save(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


def test_save_creates_folders_and_overwrites(tmp_path):
    path = tmp_path / "a" / "b" / "m.safetensors"
    NeuralNetwork(2, 3, 1, seed=1).save(path)
    NeuralNetwork(2, 3, 1, seed=2).save(path)
    assert xpnn.load(path).seed == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]


# ---- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xpnn.load(tmp_path / "nope.safetensors")


def test_a_file_that_is_not_a_model(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, I am not a model\n")
    with pytest.raises(ValueError, match="not an xpnn model file"):
        xpnn.load(text)
    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(ValueError, match="a safetensors file, but not an xpnn model"):
        xpnn.load(other)


def _rewrite(src, dst, change_tensors=None, change_config=None):
    with safe_open(str(src), framework="numpy") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta.pop("sha256")  # an edited file, not a damaged one: with the old digest, load would call it damaged
    config = json.loads(meta["xpnn"])
    if change_tensors:
        change_tensors(tensors)
    if change_config:
        change_config(config)
    meta["xpnn"] = json.dumps(config)
    save_file(tensors, str(dst), metadata=meta)


def test_damaged_model_files(tmp_path):
    good = tmp_path / "good.safetensors"
    NeuralNetwork(4, 3, 2).compile().save(good)
    bad = tmp_path / "bad.safetensors"

    _rewrite(good, bad, change_tensors=lambda t: t.pop("layer.2.W"))
    with pytest.raises(ValueError, match=r"lacks tensors \['layer.2.W'\]"):
        xpnn.load(bad)

    _rewrite(good, bad, change_tensors=lambda t: t.__setitem__("layer.0.W", np.zeros((5, 3), np.float32)))
    with pytest.raises(ValueError, match=r"'layer.0.W' has shape \(5, 3\), the model expects \(4, 3\)"):
        xpnn.load(bad)

    _rewrite(good, bad, change_tensors=lambda t: t.__setitem__("layer.1.W", np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"tensor 'layer.1.W' matches no param or buffer of the model"):
        xpnn.load(bad)

    def unknown_layer(config):
        config["class"] = "Sequential"
        config["config"] = {
            "layers": [
                {"class": "Dense", "config": {"in_features": 4, "out_features": 3}},
                {"class": "Mystery", "config": {}},
            ]
        }

    _rewrite(good, bad, change_config=unknown_layer)
    with pytest.raises(ValueError, match="unknown layer class 'Mystery'"):
        xpnn.load(bad)


def test_unregistered_layer_cannot_be_saved(tmp_path):
    class Custom(ReLU):
        pass

    with pytest.raises(ValueError, match="not registered for saving"):
        Sequential([Dense(2, 2), Custom()]).save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_files_of_the_first_format_still_load(tmp_path):
    """xpnn-1 files (before layers nested) kept the architecture at the top level of the
    config: "layers" for a Sequential, "arch" for a NeuralNetwork."""
    X, y = blobs()
    for model in (dropout_net(), NeuralNetwork(4, [6], 3, seed=2).compile()):
        model.fit(X, y, epochs=1, verbose=0)
        new, old = tmp_path / "new.safetensors", tmp_path / "old.safetensors"
        model.save(new)
        with safe_open(str(new), framework="numpy") as fh:
            meta = dict(fh.metadata())
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        config = json.loads(meta["xpnn"])
        inner = config.pop("config")
        config.update({"arch": inner} if config["class"] == "NeuralNetwork" else inner)
        save_file(tensors, str(old), metadata={"format": "xpnn-1", "xpnn": json.dumps(config)})
        np.testing.assert_array_equal(xpnn.load(old).predict(X), model.predict(X))


def test_a_model_class_whose_config_does_not_rebuild_it_is_refused_at_save(tmp_path, monkeypatch):
    class Wide(Sequential):
        def __init__(self, width, **kw):
            super().__init__([Dense(4, width), ReLU(), Dense(width, 3)], **kw)

    monkeypatch.setitem(xpnn.layers.LAYERS, "Wide", Wide)
    with pytest.raises(
        ValueError, match=r"Wide\.config\(\) returns .* its constructor cannot take them.*override config"
    ):
        Wide(8).save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
