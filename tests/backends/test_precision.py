"""Model dtypes and mixed precision: dtypes refused by name, float32 optimizer arithmetic
for float16/bfloat16 params, the mixed_bfloat16 / mixed_float16 policies (float32 master
weights, dynamic loss scaling that skips an overflowing step), and save/load/to keeping
the policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.backends import dtype_name
from xpnn.callbacks import Callback
from xpnn.datasets import load_digits
from xpnn.gradcheck import gradcheck

LOW = {"numpy": ["float16"], "array_api_strict": [], "torch": ["float16", "bfloat16"], "jax": ["float16", "bfloat16"]}


def _mlp(backend, dtype, seed=0):
    return xpnn.NeuralNetwork(64, 32, 10, backend=backend, seed=seed, dtype=dtype)


def _digits():
    (X, y), (Xt, yt) = load_digits(flatten=True)
    return X, y, Xt, yt


def _host(owner, a):
    """``a`` as a float64 NumPy array; ``owner`` is a model or a Backend."""
    backend = getattr(owner, "backend", owner)
    return np.array(backend.to_numpy(a), dtype=np.float64)


# ---- which dtypes a model accepts -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["int32", "float128", "float8", "nonsense", "mixed_float32", np.int64])
def test_a_dtype_that_is_not_a_trainable_float_is_refused_by_name(backend, bad):
    accepted = ["float32", "float64", *LOW.get(backend.name, [])]
    with pytest.raises(ValueError, match=r"NeuralNetwork: dtype .* cannot be used") as info:
        _mlp(backend, bad)
    text = str(info.value)
    assert repr(bad) in text and f"backend {backend.name!r} accepts" in text, text
    for name in accepted:
        assert f"'{name}'" in text, text


def test_each_backend_accepts_its_floats_and_policies(backend):
    low = LOW.get(backend.name, [])
    assert backend.model_dtypes() == ["float32", "float64", *low, *(f"mixed_{d}" for d in low)]
    for dtype in backend.model_dtypes():
        model = xpnn.Sequential([xpnn.Dense(3, 2)], backend=backend, dtype=dtype)
        assert model.dtype_name == dtype
        assert dtype_name(model.layers[0].params["W"].dtype) == dtype.removeprefix("mixed_")


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.text(max_size=16),
        st.sampled_from(["float32", "Float16", " float64 ", "bfloat16", "mixed_float16", "mixed_bfloat16", "int8"]),
        st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.bool_, np.complex64, np.dtype("float32")]),
        st.integers(),
        st.none(),
    )
)
def test_any_dtype_is_either_a_model_dtype_of_the_backend_or_refused_by_name(dtype):
    backend = xpnn.get_backend("numpy")
    try:
        model = xpnn.Sequential([xpnn.Dense(2, 2)], backend=backend, dtype=dtype)
    except ValueError as exc:
        text = str(exc)
        assert text.startswith(f"Sequential: dtype {dtype!r} cannot be used: "), text
        assert f"backend 'numpy' accepts {backend.model_dtypes()}" in text, text
    else:
        assert model.dtype_name in backend.model_dtypes()
        assert dtype_name(model.layers[0].params["W"].dtype) == model.dtype_name.removeprefix("mixed_")


@pytest.mark.parametrize("dtype", ["bfloat16", "mixed_bfloat16", "float16", "mixed_float16"])
def test_a_low_precision_dtype_the_backend_lacks_is_refused_by_name(dtype):
    for name in ("numpy", "array_api_strict"):
        if dtype.removeprefix("mixed_") in LOW[name]:
            continue
        with pytest.raises(ValueError, match=f"backend '{name}' has no {dtype.removeprefix('mixed_')}"):
            xpnn.Sequential([xpnn.Dense(3, 2)], backend=name, dtype=dtype)


def test_to_a_backend_without_the_dtype_is_refused_and_the_model_stays():
    pytest.importorskip("torch")
    model = _mlp("torch", "mixed_bfloat16")
    with pytest.raises(ValueError, match="backend 'numpy' has no bfloat16"):
        model.to("numpy")
    assert model.backend.name == "torch" and model.dtype_name == "mixed_bfloat16"


# ---- float16 params: the optimizer computes in float32 ---------------------------------------------


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd", "rmsprop", "adagrad"])
def test_float16_params_are_updated_in_float32(backend, opt):
    if "float16" not in LOW.get(backend.name, []):
        pytest.skip(f"{backend.name} has no float16")
    xp = backend.xp
    W = backend.asarray(np.full((3,), 1.0), dtype="float16")
    g = backend.asarray(np.full((3,), 1e-3), dtype="float16")
    store = {"W": W}
    optimizer = xpnn.optimizers.get_optimizer(opt)
    for _ in range(3):
        optimizer.step([xpnn.Param(store, "W", grad=g)])
    assert store["W"].dtype == xp.float16
    assert all(s.dtype == xp.float32 for arrays in optimizer.state.values() for s in arrays)
    # the same steps on float32 params, rounded once at the end: float16 params follow float32 math
    ref = {"W": backend.asarray(np.full((3,), 1.0), dtype="float32")}
    ref_opt = xpnn.optimizers.get_optimizer(opt)
    for _ in range(3):
        ref_opt.step([xpnn.Param(ref, "W", grad=xp.astype(g, xp.float32))])
    got = _host(backend, store["W"])
    assert np.all(np.isfinite(got))
    if opt != "sgd":  # adaptive steps of about lr = 1e-3 each: more than float16's spacing at 1.0
        assert np.all(got < 1.0)  # moved against the gradient
    np.testing.assert_allclose(got, _host(backend, ref["W"]), atol=2e-3)  # float16 rounding per step


@pytest.mark.parametrize("lib", ["numpy", "torch", "jax"])
def test_a_float16_model_trains_with_the_default_adam(lib):
    """Adam's eps = 1e-8 is 0 in float16: computed in float16, the first epoch turned NaN."""
    if lib != "numpy":
        pytest.importorskip(lib)
    X, y, _, _ = _digits()
    model = _mlp(lib, "float16")
    model.compile("softmax_cross_entropy", "adam")
    history = model.fit(X[:512], y[:512], epochs=2, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[1] < losses[0], losses
    assert all(np.all(np.isfinite(w)) for w in (_host(model, a) for a in model.get_weights()))


# ---- mixed precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["torch", "jax"])
def test_mixed_bfloat16_trains_the_digits_as_well_as_float32(lib):
    pytest.importorskip(lib)
    X, y, Xt, yt = _digits()
    accuracy = {}
    for dtype in ("float32", "mixed_bfloat16"):
        model = _mlp(lib, dtype)
        model.compile("softmax_cross_entropy", xpnn.Adam(0.01), ["accuracy"])
        # 1280 samples in equal batches, the test set in one: two shapes for JAX to compile
        model.fit(X[:1280], y[:1280], epochs=5, batch_size=128, verbose=0)
        accuracy[dtype] = model.evaluate(Xt, yt, batch_size=None)["accuracy"]
    xp = model.backend.xp
    assert model.layers[0].params["W"].dtype == xp.bfloat16  # computed in bfloat16
    assert all(m.dtype == xp.float32 for m in model.masters.values())  # float32 master weights
    assert all(s.dtype == xp.float32 for arrays in model.optimizer.state.values() for s in arrays)
    assert accuracy["float32"] > 0.9, accuracy
    assert abs(accuracy["mixed_bfloat16"] - accuracy["float32"]) <= 0.01, accuracy


def test_mixed_precision_keeps_small_updates_that_the_low_precision_copy_rounds_away(backend):
    if "float16" not in LOW.get(backend.name, []):
        pytest.skip(f"{backend.name} has no float16")
    model = xpnn.Sequential([xpnn.Dense(4, 1)], backend=backend, dtype="mixed_float16")
    from xpnn.precision import LossScale

    model.loss_scale = LossScale(backend, initial=1.0)  # no overflow: every step is taken
    X = backend.asarray(np.ones((8, 4)), dtype="float32")
    model.compile("mse", xpnn.SGD(1e-5))
    before = _host(model, model.masters["0.W"])
    for _ in range(3):
        out = model.forward(X, training=True)
        assert out.dtype == backend.xp.float32  # losses see float32
        model.loss.forward(out, backend.asarray(np.full((8, 1), 10.0), dtype="float32"))
        model.backward(model.loss.backward(), need_dX=False)
        model.optimizer.step(model.parameters())
    after = _host(model, model.masters["0.W"])
    assert np.all(after > before)  # steps of ~2e-4 on weights near 0.5: below float16's spacing there
    assert model.loss_scale.state()["good_steps"] == 3
    np.testing.assert_array_equal(
        _host(model, model.layers[0].params["W"]), after.astype(np.float16).astype(np.float64)
    )


class PlantInf(Callback):
    """After the backward of step ``at``, give the first param an inf gradient; record the
    weights, optimizer state and loss scale around that step."""

    def __init__(self, at: int):
        self.at, self.step, self.seen = at, -1, {}

    def snapshot(self):
        b = self.model.backend
        return (
            [np.array(b.to_numpy(w)) for w in self.model.get_weights()],
            {k: np.array(b.to_numpy(a)) for k, a in self.model.optimizer.state_arrays().items()},
            self.model.loss_scale.state()["scale"],
        )

    def on_batch_begin(self, step, batch):
        self.step += 1
        if self.step == self.at:
            self.seen["before"] = self.snapshot()
        return batch

    def after_backward(self, params):
        if self.step != self.at:
            return params
        xp = self.model.backend.xp
        first = params[0]
        return [first.with_grad(xp.full(first.value.shape, float("inf"), dtype=xp.float32)), *params[1:]]

    def on_batch_end(self, step, running):
        if self.step == self.at:
            self.seen["after"] = self.snapshot()


@pytest.mark.parametrize("lib", ["numpy", "torch", "jax"])
def test_mixed_float16_skips_an_overflowing_step_lowers_the_scale_and_goes_on(lib):
    if lib != "numpy":
        pytest.importorskip(lib)
    X, y, _, _ = _digits()
    model = _mlp(lib, "mixed_float16")
    model.compile("softmax_cross_entropy", "adam")
    planted = PlantInf(at=3)
    history = model.fit(X[:512], y[:512], epochs=2, batch_size=64, verbose=0, callbacks=[planted])
    (w0, s0, scale0), (w1, s1, scale1) = planted.seen["before"], planted.seen["after"]
    assert scale1 == scale0 / 2
    for a, b in zip(w0, w1):  # the step was skipped: weights and Adam's state as they were
        np.testing.assert_array_equal(a, b)
    for k in s0:
        np.testing.assert_array_equal(s0[k], s1[k])
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[1] < losses[0], losses
    assert all(np.all(np.isfinite(np.array(model.backend.to_numpy(w)))) for w in model.get_weights())
    assert model.loss_scale.state() == {"scale": scale1, "good_steps": 16 - 4}  # 12 good steps since


@pytest.mark.parametrize("dtype", ["mixed_float16", "float32"])
def test_regression_targets_keep_float32_beyond_the_float16_range(dtype):
    # the loss computes in float32 under a mixed policy: targets cast to float16 would be
    # inf beyond 65504, and the loss with them
    X = np.linspace(-1.0, 1.0, 64, dtype=np.float32)[:, None]
    y = (1e5 + 1e4 * X[:, 0]).astype(np.float32)  # 90000..110000, all beyond float16's range
    model = xpnn.Sequential([xpnn.Dense(1, 1)], seed=0, dtype=dtype).compile("mse", xpnn.SGD(lr=1e-9))
    loss = model.evaluate(X, y)["loss"]
    out = model.predict(X)
    expected = float(np.mean((np.asarray(out, dtype=np.float64)[:, 0] - y.astype(np.float64)) ** 2))
    assert np.isfinite(loss) and loss == pytest.approx(expected, rel=1e-5)
    history = model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_loss_scale_grows_after_a_run_of_good_steps():
    from xpnn.precision import LossScale

    model = _mlp("numpy", "mixed_float16")
    model.loss_scale = LossScale(model.backend, initial=8.0, growth_interval=5)
    model.compile("softmax_cross_entropy", "adam")
    X, y, _, _ = _digits()
    model.fit(X[:64], y[:64], epochs=1, batch_size=4, verbose=0)  # 16 good steps: doubled 3 times
    assert model.loss_scale.state() == {"scale": 8.0 * 2**3, "good_steps": 1}


def test_a_gradient_check_of_a_mixed_model_runs_in_float64_and_keeps_the_policy():
    model = xpnn.Sequential([xpnn.Dense(4, 3), xpnn.Tanh(), xpnn.Dense(3, 2)], backend="numpy", dtype="mixed_float16")
    masters = {k: v.copy() for k, v in model.masters.items()}
    X = model.backend.asarray(np.random.default_rng(0).normal(size=(5, 4)), dtype="float64")
    assert gradcheck(model, X) < 1e-6
    assert model.dtype_name == "mixed_float16" and model.loss_scale is not None
    assert model.layers[0].params["W"].dtype == np.float16
    for k, v in masters.items():
        np.testing.assert_array_equal(model.masters[k], v)


@pytest.mark.parametrize("lib,dtype", [("numpy", "mixed_float16"), ("torch", "mixed_bfloat16")])
def test_save_load_and_to_keep_the_policy(tmp_path, lib, dtype):
    if lib != "numpy":
        pytest.importorskip(lib)
    X, y, Xt, _ = _digits()
    model = _mlp(lib, dtype)
    model.compile("softmax_cross_entropy", "adam")
    model.fit(X[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "mixed.safetensors"
    model.save(path)
    cfg, tensors = xpnn.io.read(path)
    assert cfg["dtype"] == dtype
    assert all(t.dtype == np.float32 for t in tensors.values())  # the float32 masters and state
    loaded = xpnn.load(path, backend=lib)
    assert loaded.dtype_name == dtype
    assert (loaded.loss_scale is None) == (model.loss_scale is None)
    np.testing.assert_array_equal(loaded.predict(Xt), model.predict(Xt))
    for k, m in model.masters.items():
        np.testing.assert_array_equal(_host(loaded, loaded.masters[k]), _host(model, m))
    # resuming continues exactly
    model.fit(X[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    loaded.fit(X[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    np.testing.assert_array_equal(loaded.predict(Xt), model.predict(Xt))

    other = "jax" if lib == "torch" else "torch"
    pytest.importorskip(other)
    masters = {k: _host(model, m) for k, m in model.masters.items()}
    model.to(other)
    assert model.dtype_name == dtype and model.backend.name == other
    for k, m in model.masters.items():
        assert model.backend.owns(m) and m.dtype == model.backend.xp.float32
        np.testing.assert_array_equal(_host(model, m), masters[k])
    model.fit(X[:128], y[:128], epochs=1, batch_size=64, verbose=0)
    assert np.all(np.isfinite(model.predict(Xt)))
