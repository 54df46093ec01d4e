"""Model files and IDX files as untrusted input: however damaged or crafted, a file gives a
correctly loaded model (or array) or one ValueError that starts with the file's path, never
another exception, never a silent load of garbage, and never an allocation larger than the
file's contents before they have been checked. Hand-made cases first, then fuzzing."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

import xpnn
from xpnn import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ModelCheckpoint,
    NeuralNetwork,
    ReLU,
    SequencePool,
    Sequential,
)
from xpnn.datasets import read_idx, write_idx
from xpnn.io import remove_stale_temporaries

MEMORY_BOUND = 50 * 2**20  # bytes a load may allocate for the small files here, whatever they claim


# ---- the files: small real models, saved once -----------------------------------------------------


def _mlp():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4)).astype(np.float32)
    y = np.arange(24) % 3
    model = NeuralNetwork(4, [6], 3, activation=LeakyReLU(0.2), seed=1).compile(optimizer=xpnn.Adam(lr=0.01))
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return model, X


def _cnn():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 1, 8, 8)).astype(np.float32)
    y = np.arange(12) % 3
    model = Sequential(
        [Conv2D(1, 4, 3, padding=1), BatchNorm2D(4), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 3)], seed=2
    ).compile(optimizer=xpnn.SGD(lr=0.05, momentum=0.9))
    model.fit(X, y, epochs=1, batch_size=6, verbose=0)
    return model, X


def _embedding():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 20, size=(16, 5))
    y = np.arange(16) % 3
    model = Sequential([Embedding(20, 4), SequencePool(), Dense(4, 3)], seed=3).compile()
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return model, X


MODELS = {"mlp": _mlp, "cnn": _cnn, "embedding": _embedding}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """name -> (file bytes, inputs, the original model's predictions)."""
    folder = tmp_path_factory.mktemp("originals")
    out = {}
    for name, make in MODELS.items():
        model, X = make()
        model.save(folder / f"{name}.safetensors")
        out[name] = ((folder / f"{name}.safetensors").read_bytes(), X, model.predict(X))
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("mutated")


def split(raw: bytes):
    """(safetensors header as a dict, the data bytes after it)."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def craft(src, dst, config=None, tensors=None, meta=None, sign=False):
    """Rewrite model file ``src`` as ``dst`` after ``config(cfg)``, ``tensors(dict)`` and
    ``meta(dict)`` changed it in place: a crafted file, without the digest (files of
    earlier xpnn had none) unless ``sign``, which signs the crafted contents (a writer
    that knows the format)."""
    with safe_open(str(src), framework="numpy") as fh:
        metadata = dict(fh.metadata())
        arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    metadata.pop("sha256", None)
    cfg = json.loads(metadata["xpnn"])
    if config:
        config(cfg)
    if tensors:
        tensors(arrays)
    metadata["xpnn"] = json.dumps(cfg)
    if meta:
        meta(metadata)
    if sign:
        from xpnn.io import _digest

        metadata["sha256"] = _digest(metadata, arrays)
    save_file(arrays, str(dst), metadata=metadata)
    return dst


@pytest.fixture
def mlp_file(tmp_path):
    model, X = _mlp()
    model.save(tmp_path / "mlp.safetensors")
    return tmp_path / "mlp.safetensors", model, X


def bounded(load, *args):
    """``load(*args)`` with its allocations traced: (result or the exception raised, peak bytes)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            result = load(*args)
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def refused(path, *messages):
    """Load ``path``, expecting one ValueError that starts with the path and holds ``messages``."""
    result, peak = bounded(xpnn.load, path)
    assert isinstance(result, ValueError), f"expected a ValueError, got {result!r}"
    text = str(result)
    assert text.startswith(f"{path}: "), text
    for m in messages:
        assert m in text, text
    assert peak < MEMORY_BOUND, peak
    return text


# ---- hand-made cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expects",
    [
        (lambda c: c["config"].__setitem__("hidden_sizes", [10**6]), "the model expects (4, 1000000)"),
        (lambda c: c["config"].__setitem__("hidden_sizes", [10**6, 10**6, 10**6]), "the model expects (4, 1000000)"),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {"layers": [{"class": "Dense", "config": {"in_features": 10**12, "out_features": 6}}]},
                }
            ),
            "(1000000000000, 6)",
        ),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {
                        "layers": [{"class": "Embedding", "config": {"num_embeddings": 10**11, "embedding_dim": 6}}]
                    },
                }
            ),
            "(100000000000, 6)",
        ),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {
                        "layers": [  # a nested model builds on its own
                            {
                                "class": "Sequential",
                                "config": {
                                    "layers": [{"class": "Dense", "config": {"in_features": 10**12, "out_features": 6}}]
                                },
                            }
                        ]
                    },
                }
            ),
            "lacks tensors ['layer.0.0.W'",  # a path the file does not have (the size is never reached)
        ),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {
                        "layers": [{"class": "Dense", "config": {"in_features": 10**12, "out_features": 10**12}}]
                    },
                }
            ),
            "cannot exist",
        ),
    ],
)
def test_huge_sizes_in_the_config_are_refused_before_anything_is_allocated(mlp_file, tmp_path, change, expects):
    path, _, _ = mlp_file
    refused(craft(path, tmp_path / "huge.safetensors", config=change), expects)


def test_a_nested_model_cast_to_its_parent_s_dtype_allocates_nothing_big(mlp_file, tmp_path):
    """A Sequential inside a float64 model is built in float32, then cast: on the shape-only
    backend that cast must not allocate either."""
    path, _, _ = mlp_file
    inner = {
        "class": "Sequential",
        "config": {"layers": [{"class": "Dense", "config": {"in_features": 10**8, "out_features": 6}}]},
    }
    bad = craft(
        path,
        tmp_path / "nested.safetensors",
        config=lambda c: c.update({"class": "Sequential", "dtype": "float64", "config": {"layers": [inner]}}),
        tensors=lambda t: t.update({k: v.astype(np.float64) for k, v in t.items()}),
    )
    refused(bad, "lacks tensors ['layer.0.0.W'")  # after the probe was built and cast: nothing big allocated


def test_a_1kb_file_claiming_a_huge_model_allocates_nothing_big(tmp_path):
    path = tmp_path / "tiny.safetensors"
    cfg = {
        "class": "NeuralNetwork",
        "config": {"input_size": 10**6, "hidden_sizes": [10**6] * 4, "output_size": 10},
        "seed": 0,
        "dtype": "float32",
        "generator": xpnn.get_backend("numpy").rng(0).state,
    }
    save_file({}, str(path), metadata={"format": "xpnn-2", "xpnn": json.dumps(cfg)})
    assert path.stat().st_size < 1024
    refused(path, "lacks tensors ['layer.0.W', 'layer.0.b', 'layer.2.W'")


@pytest.mark.parametrize("dtype, found", [(np.int32, "I32"), (np.int64, "I64"), (np.bool_, "BOOL"), (np.uint8, "U8")])
def test_integer_and_boolean_tensors_are_refused(mlp_file, tmp_path, dtype, found):
    path, _, _ = mlp_file
    bad = craft(
        path, tmp_path / "int.safetensors", tensors=lambda t: t.__setitem__("layer.0.W", t["layer.0.W"].astype(dtype))
    )
    refused(bad, f"tensor 'layer.0.W' has dtype {found}, expected a floating-point dtype")


def test_optimizer_state_of_integers_is_refused(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(
        path,
        tmp_path / "opt.safetensors",
        tensors=lambda t: t.__setitem__("optimizer.m.0.W", t["optimizer.m.0.W"].astype(np.int64)),
    )
    refused(bad, "tensor 'optimizer.m.0.W' has dtype I64")


def test_a_tensor_in_another_float_dtype_than_the_model_is_refused(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(
        path,
        tmp_path / "f64.safetensors",
        tensors=lambda t: t.__setitem__("layer.0.W", t["layer.0.W"].astype(np.float64)),
    )
    refused(bad, "tensor 'layer.0.W' has dtype F64, but the model's dtype is float32")


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "float128", "mixed_float32", 32, None])
def test_a_model_dtype_that_is_not_a_float_is_refused(mlp_file, tmp_path, dtype):
    path, _, _ = mlp_file
    bad = craft(path, tmp_path / "dtype.safetensors", config=lambda c: c.__setitem__("dtype", dtype))
    refused(
        bad,
        "the model config's 'dtype' must be one of ['float32', 'float64', 'float16', 'bfloat16', "
        "'mixed_float16', 'mixed_bfloat16']",
    )


def test_a_model_dtype_the_backend_lacks_is_refused_by_name(mlp_file, tmp_path):
    path, _, _ = mlp_file  # float32 tensors: what a bfloat16 model stores
    bad = craft(path, tmp_path / "bf16.safetensors", config=lambda c: c.__setitem__("dtype", "bfloat16"))
    refused(bad, "dtype 'bfloat16' cannot be used: backend 'numpy' has no bfloat16; backend 'numpy' accepts")


def test_a_tensor_key_of_a_layer_that_does_not_exist(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(
        path, tmp_path / "k.safetensors", tensors=lambda t: t.__setitem__("layer.99.W", np.zeros(3, np.float32))
    )
    refused(bad, "tensor 'layer.99.W' matches no param or buffer of the model")


def test_an_optimizer_tensor_the_optimizer_does_not_keep(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(
        path, tmp_path / "o.safetensors", tensors=lambda t: t.__setitem__("optimizer.zzz", np.zeros(3, np.float32))
    )
    refused(bad, "tensor 'optimizer.zzz' matches nothing in the optimizer's state")


@pytest.mark.parametrize("key", ["layer.0.W", "layer.2.b", "optimizer.v.2.b"])
def test_a_missing_tensor(mlp_file, tmp_path, key):
    path, _, _ = mlp_file
    refused(craft(path, tmp_path / "m.safetensors", tensors=lambda t: t.pop(key)), f"lacks tensors ['{key}']")


def test_optimizer_state_missing_after_steps_is_refused(mlp_file, tmp_path):
    """Adam stepped (iterations > 0) keeps m and v: without them a resume would silently
    restart its moments."""
    path, _, _ = mlp_file

    def drop(t):
        for k in [k for k in t if k.startswith("optimizer.")]:
            del t[k]

    refused(craft(path, tmp_path / "m.safetensors", tensors=drop), "lacks tensors ['optimizer.m.0.W'")


def test_a_wrong_shape(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(
        path, tmp_path / "s.safetensors", tensors=lambda t: t.__setitem__("optimizer.m.0.b", np.zeros(7, np.float32))
    )
    refused(bad, "tensor 'optimizer.m.0.b' has shape (7,), the model expects (6,)")


@pytest.mark.parametrize(
    "text, expects",
    [
        ("{not json", "the model config is not valid JSON (JSONDecodeError"),
        ("", "not valid JSON"),
        ("[" * 50000 + "]" * 50000, "not valid JSON (RecursionError"),
        ('{"class": 1' + "0" * 5000 + "}", "not valid JSON"),  # an int beyond Python's digit limit
        ("[1, 2]", "the model config's top level must be a JSON object, found a list"),
    ],
)
def test_invalid_json_names_the_file(mlp_file, tmp_path, text, expects):
    path, _, _ = mlp_file
    refused(craft(path, tmp_path / "j.safetensors", meta=lambda m: m.__setitem__("xpnn", text)), expects)


def test_an_unknown_layer_argument_names_layer_argument_and_version(mlp_file, tmp_path):
    path, _, _ = mlp_file

    def newer(c):
        c["config"]["activation"]["config"]["slope_schedule"] = "cosine"

    bad = craft(path, tmp_path / "arg.safetensors", config=newer, sign=True)
    text = refused(
        bad,
        "the layer at config.activation (LeakyReLU) has an argument 'slope_schedule'",
        "(it takes ['alpha'])",
        f"format version {xpnn.io.FORMAT_VERSION}, written by xpnn {xpnn.__version__}",
        "may come from a newer xpnn version",
    )
    # in a Sequential's layers too, and the model's own arguments
    seq = tmp_path / "seq.safetensors"
    dense = {"class": "Dense", "config": {"in_features": 4, "out_features": 3, "groups": 2}}
    craft(
        path,
        seq,
        config=lambda c: c.update({"class": "Sequential", "config": {"layers": [dense]}}),
        meta=lambda m: m.pop("xpnn_version"),
    )  # a file of an earlier xpnn: its format version only
    refused(
        seq,
        "the layer at config.layers[0] (Dense) has an argument 'groups'",
        f"the file (format version {xpnn.io.FORMAT_VERSION}) may",
    )
    refused(
        craft(path, seq, config=lambda c: c["config"].__setitem__("seed", 3)),
        "the model (NeuralNetwork) has an argument 'seed'",
    )
    assert text.count("\n") == 0


def test_unknown_keys_are_refused_as_possibly_newer(mlp_file, tmp_path):
    path, _, _ = mlp_file
    refused(
        craft(path, tmp_path / "u.safetensors", config=lambda c: c.__setitem__("mixed_precision", True)),
        "the model config's top level has unknown keys ['mixed_precision']",
        "may come from a newer xpnn",
    )
    refused(
        craft(path, tmp_path / "u.safetensors", config=lambda c: c["compile"].__setitem__("ema", 0.99)),
        "'compile' has unknown keys ['ema']",
    )


def test_a_file_of_a_newer_format_version(mlp_file, tmp_path):
    path, _, _ = mlp_file
    bad = craft(path, tmp_path / "v.safetensors", meta=lambda m: m.__setitem__("format", "xpnn-7"))
    refused(
        bad,
        f"was written by a newer xpnn (format version 7; this xpnn reads up to {xpnn.io.FORMAT_VERSION}); upgrade xpnn",
    )


@pytest.mark.parametrize("fmt", ["xpnn-0", "xpnn-02", "xpnn-", "xpnn-2x", "keras"])
def test_a_format_that_is_not_xpnn(mlp_file, tmp_path, fmt):
    path, _, _ = mlp_file
    refused(
        craft(path, tmp_path / "f.safetensors", meta=lambda m: m.__setitem__("format", fmt)),
        "a safetensors file, but not an xpnn model",
    )


@pytest.mark.parametrize(
    "change, expects",
    [
        (lambda c: c["config"].__setitem__("input_size", "4"), "input_size must be a positive integer, found '4'"),
        (lambda c: c["config"].__setitem__("input_size", -4), "input_size must be a positive integer, found -4"),
        (lambda c: c["config"].__setitem__("output_size", True), "output_size must be a positive integer, found True"),
        (lambda c: c["config"].__setitem__("hidden_sizes", "six"), "hidden_sizes"),
        (lambda c: c["config"].__setitem__("activation", "swish9"), "activation must be one of"),
        (lambda c: c.__setitem__("seed", -1), "'seed' must be a non-negative integer, found an integer -1"),
        (lambda c: c.__setitem__("seed", True), "'seed' must be a non-negative integer, found a boolean True"),
        (lambda c: c.__setitem__("epochs_trained", 1.5), "'epochs_trained' must be a non-negative integer"),
        (lambda c: c.__setitem__("class", "Mystery"), "unknown model class 'Mystery'"),
        (lambda c: c.__setitem__("class", "Dense"), "unknown model class 'Dense'"),
        (lambda c: c.__setitem__("class", ["x"]), "'class' must be a string, found a list"),
        (lambda c: c.__setitem__("config", [1]), "'config' must be a JSON object"),
        (lambda c: c.pop("generator"), "the model config's top level lacks ['generator']"),
        (
            lambda c: c["generator"].__setitem__("bit_generator", {"state": 1}),
            "'generator' is not a valid generator state",
        ),
        (lambda c: c["compile"].__setitem__("optimizer", {"name": "adam", "lr": "fast"}), "cannot be built"),
        (lambda c: c["compile"].__setitem__("optimizer_iterations", -2), "'compile.optimizer_iterations' must be"),
        (lambda c: c["compile"].__setitem__("metrics", "accuracy"), "'compile.metrics' must be a list"),
        (lambda c: c["compile"].__setitem__("metrics", ["no_such_metric"]), "unknown metric 'no_such_metric'"),
        (lambda c: c["compile"]["loss"].__setitem__("name", 3), "'compile.loss.name' must be a string"),
        (
            lambda c: c.update({"class": "Sequential", "config": {"layers": [{"class": "Mystery"}]}}),
            "unknown layer class 'Mystery' at config.layers[0]",
        ),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {"layers": [{"class": "Dense", "config": {"in_features": 4, "out_features": "3"}}]},
                }
            ),
            "Dense: out_features must be a positive integer, found '3'",
        ),
        (
            lambda c: c.update(
                {
                    "class": "Sequential",
                    "config": {
                        "layers": [{"class": "Dense", "config": {"out_features": 3, "in_features": 4, "bias": "yes"}}]
                    },
                }
            ),
            "Dense: bias must be True or False",
        ),
        (
            lambda c: c.update({"class": "Sequential", "config": {"layers": [{"class": "Embedding"}]}}),
            "lacks the required arguments",
        ),
        (
            lambda c: c.update({"class": "Sequential", "config": {"layers": [{"class": "Dense", "config": [4, 3]}]}}),
            "config.layers[0].config must be a JSON object",
        ),
        (lambda c: c.update({"class": "Sequential", "config": {"layers": []}}), "cannot be built"),
        (lambda c: c.update({"class": "Sequential", "config": {"layers": ["Dense"]}}), "cannot be built"),
    ],
)
def test_bad_values_in_the_config(mlp_file, tmp_path, change, expects):
    path, _, _ = mlp_file
    refused(craft(path, tmp_path / "b.safetensors", config=change), expects)


def test_layers_nested_absurdly_deep(mlp_file, tmp_path):
    spec = {"class": "Dense", "config": {"in_features": 4, "out_features": 3}}
    for _ in range(200):
        spec = {"class": "Residual", "config": {"layers_config": [spec]}}
    path, _, _ = mlp_file
    bad = craft(
        path,
        tmp_path / "deep.safetensors",
        config=lambda c: c.update({"class": "Sequential", "config": {"layers": [spec]}}),
    )
    refused(bad, "layers nested more than 64 deep")


def test_a_changed_byte_is_reported_as_damage(mlp_file, tmp_path):
    path, _, _ = mlp_file
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x10  # a bit of the last tensor (no header check can see this one)
    bad = tmp_path / "rot.safetensors"
    bad.write_bytes(bytes(raw))
    refused(bad, "damaged: its contents do not match the SHA-256 digest")
    # and in the config: a value that would still build (LeakyReLU's alpha)
    text = path.read_bytes()
    assert text.count(b'"alpha\\": 0.2') == 1
    bad.write_bytes(text.replace(b'"alpha\\": 0.2', b'"alpha\\": 0.3'))
    refused(bad, "damaged")


def test_files_without_a_digest_still_load(mlp_file, tmp_path):
    """Files of earlier xpnn (no digest, no writer version) load as before."""
    path, model, X = mlp_file
    old = craft(path, tmp_path / "old.safetensors", meta=lambda m: m.pop("xpnn_version"))
    with safe_open(str(old), framework="numpy") as fh:
        assert set(fh.metadata()) == {"format", "xpnn"}
    np.testing.assert_array_equal(xpnn.load(old).predict(X), model.predict(X))


def test_saved_files_record_version_and_digest(mlp_file):
    path, _, _ = mlp_file
    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata()
    assert meta["format"] == "xpnn-3" and meta["xpnn_version"] == xpnn.__version__ and len(meta["sha256"]) == 64


def test_cli_predict_on_a_crafted_file_is_one_line_exit_2(mlp_file, tmp_path):
    path, _, X = mlp_file
    bad = craft(
        path, tmp_path / "crafted.safetensors", config=lambda c: c["config"].__setitem__("hidden_sizes", [10**9])
    )
    np.save(tmp_path / "x.npy", X)
    run = subprocess.run(
        [sys.executable, "-m", "xpnn.cli", "predict", str(bad), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "crafted.safetensors" in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "xpnn predict: error:" in run.stderr


# ---- stale temporaries ------------------------------------------------------------------------------


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="liveness of a pid is asked with os.kill(pid, 0), POSIX only")
def test_save_removes_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "model.safetensors"
    dead = tmp_path / f".model.safetensors.{_dead_pid()}.{uuid.uuid4().hex}.tmp"
    live = tmp_path / f".model.safetensors.{os.getpid()}.{uuid.uuid4().hex}.tmp"  # another writer, still at work
    other = tmp_path / f".other.safetensors.{_dead_pid()}.{uuid.uuid4().hex}.tmp"  # another target's
    odd = tmp_path / f".model.safetensors.{_dead_pid()}.notours.tmp"  # not a name atomic_write makes
    for p in (dead, live, other, odd):
        p.write_bytes(b"half a model")
    NeuralNetwork(2, 3, 1).save(target)
    assert not dead.exists()
    assert live.exists() and other.exists() and odd.exists()
    assert xpnn.load(target).seed == 0


@pytest.mark.skipif(os.name != "posix", reason="liveness of a pid is asked with os.kill(pid, 0), POSIX only")
def test_model_checkpoint_removes_a_killed_run_s_temporary(tmp_path):
    path = tmp_path / "ck.safetensors"
    stale = tmp_path / f".ck.safetensors.{_dead_pid()}.{uuid.uuid4().hex}.tmp"
    stale.write_bytes(b"x")
    model, X = _mlp()
    model.fit(X, np.arange(24) % 3, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]
    assert remove_stale_temporaries(path) == []


# ---- IDX files -------------------------------------------------------------------------------------


def _idx_header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def idx_refused(path, *messages):
    result, peak = bounded(read_idx, path)
    assert isinstance(result, ValueError), f"expected a ValueError, got {result!r}"
    assert str(result).startswith(f"{path}: "), str(result)
    for m in messages:
        assert m in str(result), str(result)
    assert peak < MEMORY_BOUND, peak


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "content, message",
    [
        (_idx_header(0x08, [2**32 - 1] * 3) + bytes(100), "truncated: header says 4294967295x4294967295x4294967295"),
        (_idx_header(0x0E, [60000, 60000]) + bytes(64), "truncated"),
        (_idx_header(0x08, [1] * 255) + b"\x07", "cannot be a NumPy array"),
        (_idx_header(0x08, [0, 5]) + b"\x01", "1 trailing bytes"),
        (bytes([0, 0, 0x08, 200]) + bytes(12), "truncated header: 200 dimensions need 804 header bytes"),
        (b"\x00\x00\x0f\x01" + bytes(8), "unknown data type code 0x0F"),
    ],
)
def test_idx_headers_claiming_more_than_the_file_holds(tmp_path, content, message, gz):
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(content) if gz else content)
    idx_refused(path, message)


def test_idx_gzip_bomb_is_read_only_as_far_as_the_header_says(tmp_path):
    """A small gzip file that inflates to 200 MB behind a header claiming 10 bytes: the
    trailing data is counted in pieces, not held."""
    path = tmp_path / "bomb.idx.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(_idx_header(0x08, [10]) + bytes(10))
        for _ in range(200):
            f.write(bytes(2**20))
    assert path.stat().st_size < 2**20
    idx_refused(path, "trailing bytes after the data")


def test_idx_empty_array_round_trips(tmp_path):
    write_idx(tmp_path / "e.idx", np.zeros((0, 3), np.uint8))
    assert read_idx(tmp_path / "e.idx").shape == (0, 3)


# ---- fuzzing -----------------------------------------------------------------------------------------


def mutations(size: int, header_end: int):
    """A strategy of functions bytes -> bytes: flip a bit, truncate, insert, delete, or
    overwrite part of the header with random bytes."""
    pos = st.integers(0, size - 1)
    head = st.integers(0, max(header_end - 1, 0))
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), pos, st.integers(1, 16)),
        st.tuples(st.just("header"), head, st.binary(min_size=1, max_size=16)),
    )


def mutate(raw: bytes, how) -> bytes:
    kind, at, arg = how
    if kind == "flip":
        return raw[:at] + bytes([raw[at] ^ (1 << arg)]) + raw[at + 1 :]
    if kind == "truncate":
        return raw[:at]
    if kind == "insert":
        return raw[:at] + arg + raw[at:]
    if kind == "delete":
        return raw[:at] + raw[at + arg :]
    return raw[:at] + arg + raw[at + len(arg) :]  # overwrite


def _header_end(raw: bytes, idx: bool) -> int:
    return 4 + 4 * raw[3] if idx else 8 + struct.unpack("<Q", raw[:8])[0]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_damaged_model_files(originals, scratch, data):
    """Damage a real file: it loads and predicts exactly as the original, or is refused
    with one ValueError naming it; nothing else escapes, and memory stays bounded."""
    name = data.draw(st.sampled_from(sorted(originals)))
    raw, X, expected = originals[name]
    how = data.draw(mutations(len(raw), _header_end(raw, idx=False)))
    path = scratch / f"{name}.safetensors"
    path.write_bytes(mutate(raw, how))
    result, peak = bounded(xpnn.load, path)
    assert peak < MEMORY_BOUND, (how, peak)
    if isinstance(result, Exception):
        assert type(result) is ValueError and str(result).startswith(f"{path}: "), (how, repr(result))
    else:
        np.testing.assert_array_equal(result.predict(X), expected)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 10**6, 10**12, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["Dense", "relu", "float64", "int64", "adam", "Sequential", "layers"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["class", "config", "x"]), inner, max_size=2)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every place in a JSON document: key paths into dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(doc, path, value, delete=False):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    if delete:
        del doc[last]
    else:
        doc[last] = value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_crafted_configs(originals, scratch, data):
    """A file crafted by someone who knows the format (the digest made to match): any value
    anywhere in the config replaced or deleted. It is refused with a ValueError naming it,
    or loads as a model that predicts (its own way: the config may legitimately differ)."""
    name = data.draw(st.sampled_from(sorted(originals)))
    raw, X, _ = originals[name]
    src = scratch / f"{name}-src.safetensors"
    src.write_bytes(raw)
    cfg = json.loads(split(raw)[0]["__metadata__"]["xpnn"])
    places = [p for p in _paths(cfg) if p]
    where = data.draw(st.sampled_from(places))
    delete = data.draw(st.booleans())
    value = None if delete else data.draw(JSON_VALUES)
    path = craft(
        src,
        scratch / f"{name}-crafted.safetensors",
        config=lambda c: _set(c, where, value, delete),
        sign=data.draw(st.booleans()),
    )
    result, peak = bounded(xpnn.load, path)
    assert peak < MEMORY_BOUND, (where, value, peak)
    if isinstance(result, Exception):
        assert type(result) is ValueError and str(result).startswith(f"{path}: "), (where, value, repr(result))
    else:
        try:
            result.predict(X)
        except ValueError:  # a crafted architecture the inputs do not fit (a wider Dense, a bigger pool)
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), gz=st.booleans())
def test_fuzz_damaged_idx_files(scratch, data, gz):
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = _idx_header(0x08, a.shape) + a.tobytes()
    damaged = mutate(raw, data.draw(mutations(len(raw), _header_end(raw, idx=True))))
    path = scratch / ("d.idx.gz" if gz else "d.idx")
    path.write_bytes(gzip.compress(damaged) if gz else damaged)
    result, peak = bounded(read_idx, path)
    assert peak < MEMORY_BOUND, peak
    if isinstance(result, Exception):
        assert type(result) is ValueError and str(result).startswith(f"{path}: "), repr(result)
    else:  # a header and data that still agree: the array they describe
        assert result.size * result.itemsize == len(damaged) - 4 - 4 * damaged[3]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_damaged_gzip_streams(scratch, data):
    """Damage the compressed bytes themselves: the gzip checks (CRC, length) or the IDX
    checks catch it."""
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    blob = gzip.compress(_idx_header(0x08, a.shape) + a.tobytes(), mtime=0)
    damaged = mutate(blob, data.draw(mutations(len(blob), 10)))
    path = scratch / "g.idx.gz"
    path.write_bytes(damaged)
    result, peak = bounded(read_idx, path)
    assert peak < MEMORY_BOUND, peak
    if isinstance(result, Exception):
        assert type(result) is ValueError and str(result).startswith(f"{path}: "), repr(result)
    else:
        np.testing.assert_array_equal(result, a)


# ---- optimizer state keyed by param path; files of the positional layout ----------------------


def test_optimizer_state_is_keyed_by_param_path(mlp_file):
    path, model, _ = mlp_file
    with safe_open(str(path), framework="numpy") as fh:
        names = {k for k in fh.keys() if k.startswith("optimizer.")}
    assert names == {f"optimizer.{s}.{p}" for s in ("m", "v") for p in ("0.W", "0.b", "2.W", "2.b")}
    with safe_open(str(path), framework="numpy") as fh:  # each under its param's name: the shapes say so
        for p, h in model.named_params().items():
            assert fh.get_tensor(f"optimizer.m.{p}").shape == tuple(h.value.shape)


def _positional(path, model, dst):
    """``path`` rewritten as xpnn wrote files before the state was keyed by path: format
    xpnn-2, "optimizer.m.<i>" with i the param's position in ``model.parameters()``."""
    position = {p: i for i, p in enumerate(model.named_params())}

    def rename(t):
        for k in [k for k in t if k.startswith("optimizer.")]:
            key, _, p = k[len("optimizer.") :].partition(".")
            t[f"optimizer.{key}.{position[p]}"] = t.pop(k)

    return craft(path, dst, tensors=rename, meta=lambda m: (m.update(format="xpnn-2"), m.pop("xpnn_version")))


def test_a_file_with_positional_optimizer_state_loads_and_resumes_exactly(mlp_file, tmp_path):
    path, model, X = mlp_file
    old = _positional(path, model, tmp_path / "old.safetensors")
    with safe_open(str(old), framework="numpy") as fh:
        assert "optimizer.m.3" in set(fh.keys()) and fh.metadata()["format"] == "xpnn-2"
    new, resumed = xpnn.load(path), xpnn.load(old)
    assert resumed.optimizer.paths == ["0.W", "0.b", "2.W", "2.b"]
    want = {k: np.array(a) for k, a in new.optimizer.state_arrays().items()}
    found = {k: np.array(a) for k, a in resumed.optimizer.state_arrays().items()}
    assert sorted(found) == sorted(want) and all(np.array_equal(found[k], want[k]) for k in want)
    y = np.arange(len(X)) % 3
    for m in (new, resumed):
        m.fit(X, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(new.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    resumed.save(tmp_path / "again.safetensors")  # saved again: today's layout
    with safe_open(str(tmp_path / "again.safetensors"), framework="numpy") as fh:
        assert "optimizer.m.2.b" in set(fh.keys()) and fh.metadata()["format"] == xpnn.io.FORMAT


def test_a_positional_file_with_too_many_state_arrays_is_refused(mlp_file, tmp_path):
    path, model, _ = mlp_file
    old = _positional(path, model, tmp_path / "old.safetensors")
    bad = craft(
        old, tmp_path / "bad.safetensors", tensors=lambda t: t.__setitem__("optimizer.m.4", np.zeros(3, np.float32))
    )
    refused(bad, "tensor 'optimizer.m.4' matches nothing in the optimizer's state")
