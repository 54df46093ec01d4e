"""compile(jit=True): the hand-written step traced into one compiled function.

jit and eager must agree (same seed, same weights within float32 tolerance: dropout masks
included), a layer or callback that cannot be traced must fall back to eager with a warning
naming it, recompiles are counted, and a resumed run continues exactly. torch.compile runs
with its "aot_eager" backend here (seconds to compile, no C++ toolchain); inductor is what
users get by default and what the benchmarks time.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import JitFallbackWarning

JIT_BACKENDS = ["jax", "torch"]


@pytest.fixture(autouse=True)
def cheap_torch_compile(monkeypatch):
    monkeypatch.setenv("XPNN_TORCH_COMPILE", "aot_eager")


def _needs(name):
    pytest.importorskip(name)


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = xpnn.load_digits()
    return X[:160], y[:160]  # with batch_size=64, 2 batches of 64 and a last one of 32: two shapes


def _mlp(backend, jit, seed=3):
    model = xpnn.Sequential(
        [xpnn.Dense(64, 32), xpnn.ReLU(), xpnn.Dropout(0.25), xpnn.Dense(32, 10)], backend=backend, seed=seed
    )
    return model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"], jit=jit)


def _cnn(backend, jit, seed=3):
    model = xpnn.Sequential(
        [
            xpnn.Conv2D(1, 4, 3, padding=1, bias=False),  # a bias before BatchNorm has a zero gradient: Adam
            # would turn its rounding noise into full steps, different in every summation order
            xpnn.BatchNorm2D(4),
            xpnn.ReLU(),
            xpnn.MaxPool2D(2),
            xpnn.Flatten(),
            xpnn.Dropout(0.2),
            xpnn.Dense(64, 10),
        ],
        backend=backend,
        seed=seed,
    )
    return model.compile("softmax_cross_entropy", "adam", jit=jit)


def _weights(model):
    return [np.array(model.backend.to_numpy(w)) for w in model.get_weights()]


def _assert_close(a, b, tol=2e-5):
    assert len(a) == len(b)
    for x, z in zip(a, b):
        np.testing.assert_allclose(x, z, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("make,flat", [(_mlp, True), (_cnn, False)], ids=["mlp", "cnn-batchnorm-dropout"])
def test_jit_and_eager_give_the_same_weights(backend, make, flat, digits):
    _needs(backend)
    X, y = digits
    X = X.reshape(len(X), -1) if flat else X
    runs = {}
    for jit in (False, True):
        model = make(backend, jit)
        history = model.fit(X, y, epochs=3, batch_size=80, verbose=0)  # one batch shape: one compile
        runs[jit] = (model, _weights(model), history.history["loss"])
    _assert_close(runs[False][1], runs[True][1])
    np.testing.assert_allclose(runs[False][2], runs[True][2], rtol=1e-5)
    # the same generator state after the run: the masks were drawn from it in the same order
    assert runs[False][0].generator.state == runs[True][0].generator.state
    # inference too: evaluate and predict through the compiled forward
    eager, compiled = runs[False][0], runs[True][0]
    np.testing.assert_allclose(eager.predict(X[:100]), compiled.predict(X[:100]), rtol=1e-5, atol=1e-6)
    assert abs(eager.evaluate(X, y)["loss"] - compiled.evaluate(X, y)["loss"]) < 1e-5
    assert len(compiled.jit_forward.shapes) == 2  # predict: 100 rows; evaluate: 160
    assert compiled.jit_step.compiles == 1 and compiled.jit_step.fallback is None


def _traces(backend, traced):
    """How many times the library compiled the step's functions so far. On jax, the runs of
    CompiledStep.pure (jax runs the step's Python only when it traces); on torch, every graph
    torch.compile made (its counters are cleared by the test)."""
    if backend == "jax":
        return len(traced)
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("backend", JIT_BACKENDS)
def test_recompiles_are_counted_once_per_batch_shape(backend, digits, capsys, monkeypatch):
    _needs(backend)
    from xpnn.training.jit import CompiledStep

    traced: list = []
    if backend == "jax":  # count the traces (a wrapper would break torch's graphs: it counts its own)
        pure = CompiledStep.pure
        monkeypatch.setattr(CompiledStep, "pure", lambda self, flat: traced.append(1) or pure(self, flat))
    else:
        from torch._dynamo.utils import counters

        counters.clear()
    X, y = digits
    model = _mlp(backend, True)
    model.optimizer.lr = xpnn.schedules.ExponentialDecay(0.01, 0.99)  # a new lr every step: traced, not baked in
    model.fit(X.reshape(len(X), -1), y, epochs=3, batch_size=64, verbose=2)
    printed = capsys.readouterr().out
    assert "jit: 2 compiled step(s)" in printed  # 64 and 32 rows; the first batch of each shape ran eagerly
    step = model.jit_step
    assert step.compiles == 2
    # no recompile per step or per lr (on torch: none for the gradients an eager step left
    # behind, nor for a later fit's new handles). On jax the full batches run in a compiled
    # loop (fused.py), whose tracing runs the step twice (once for its output shapes, once for
    # the loop body), and the last, smaller batch is one compiled step: 3 traces; torch: 2 graphs
    expected = 3 if backend == "jax" else 2
    assert _traces(backend, traced) == expected
    model.fit(X.reshape(len(X), -1), y, epochs=1, batch_size=64, verbose=0)  # a second fit reuses them
    assert model.jit_step is step and step.compiles == 2 and _traces(backend, traced) == expected


def test_an_untraceable_layer_is_named_and_the_fit_runs_eagerly(digits, host_check_layer):
    _needs("jax")

    HostCheck = host_check_layer  # reads a value on the host in forward: cannot be traced

    X, y = digits
    X = X.reshape(len(X), -1)
    runs = []
    for jit in (False, True):
        model = xpnn.Sequential([xpnn.Dense(64, 16), HostCheck(), xpnn.ReLU(), xpnn.Dense(16, 10)], backend="jax")
        model.compile(jit=jit)
        if jit:
            with pytest.warns(JitFallbackWarning, match=r"layer at 1 \(HostCheck\(\)\) cannot be traced"):
                model.fit(X, y, epochs=2, batch_size=64, verbose=0)
            assert model.jit_step.fallback is not None
        else:
            model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        runs.append(_weights(model))
    for a, b in zip(*runs):  # the fallback is the eager run itself
        np.testing.assert_array_equal(a, b)


def test_a_callback_that_reads_the_loss_keeps_the_fit_eager(digits):
    _needs("jax")

    class LossReader(xpnn.callbacks.Callback):
        def on_loss(self, step, loss, out):
            self.last = float(loss)

    X, y = digits
    model = _mlp("jax", True)
    with pytest.warns(JitFallbackWarning, match="callback LossReader reads"):
        model.fit(X.reshape(len(X), -1), y, epochs=1, batch_size=64, verbose=0, callbacks=[LossReader()])


@pytest.mark.parametrize("backend", JIT_BACKENDS)
def test_clipping_is_traced(backend, digits):
    _needs(backend)
    X, y = digits
    X = X.reshape(len(X), -1)
    runs = []
    for jit in (False, True):
        model = _mlp(backend, False)
        model.compile("softmax_cross_entropy", "adam", clip_norm=0.05, jit=jit)
        model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        runs.append(_weights(model))
    _assert_close(*runs)
    assert model.jit_step.fallback is None and model.jit_step.compiles == 2


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_backends_without_a_compiler_stay_eager(backend, digits):
    _needs(backend)
    X, y = digits
    X = X.reshape(len(X), -1)
    runs = []
    for jit in (False, "auto", True):
        model = _mlp(backend, jit)
        if jit is True:
            with pytest.warns(JitFallbackWarning, match="has no compiler"):
                model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        else:
            model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        assert model.jit_step is None
        runs.append(_weights(model))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_resume_from_a_checkpoint_matches_an_uninterrupted_jit_run(digits, tmp_path):
    _needs("jax")
    X, y = digits
    X = X.reshape(len(X), -1)
    whole = _mlp("jax", True)
    whole.fit(X, y, epochs=3, batch_size=64, verbose=0)
    first = _mlp("jax", True)
    first.fit(X, y, epochs=2, batch_size=64, verbose=0)
    first.save(tmp_path / "m.safetensors")
    resumed = xpnn.load(tmp_path / "m.safetensors", backend="jax")
    assert resumed.jit is True
    resumed.fit(X, y, epochs=3, initial_epoch=2, batch_size=64, verbose=0)
    _assert_close(_weights(whole), _weights(resumed))
    assert whole.generator.state == resumed.generator.state
    assert whole.optimizer.iterations == resumed.optimizer.iterations


def test_bad_jit_value_is_refused():
    model = xpnn.Sequential([xpnn.Dense(2, 1)])
    with pytest.raises(ValueError, match=r'jit must be True, False or "auto", found \'yes\''):
        model.compile("mse", "sgd", jit="yes")


class _FakeGraph:
    """A CUDA graph's contract on NumPy: capturing records without running (the step runs
    on a snapshot that is then put back), each launch runs the step again on the same
    buffers and leaves its results in the arrays the capture returned (fixed addresses)."""

    def __init__(self, run, static):
        self.run, self.static = run, static
        snapshot = [a.copy() for a in static]
        self.outputs = [np.array(a) if np.ndim(a) == 0 else a for a in run()]  # device arrays, never scalars
        for s, a in zip(static, snapshot):
            np.copyto(s, a)

    def launch(self):
        for out, new in zip(self.outputs, self.run()):
            if out is not new:
                np.copyto(out, new)


def test_graph_replay_trains_as_the_eager_step(digits):
    from xpnn.backends.graphs import GraphReplay
    from xpnn.backends.numpy import NumpyBackend

    replays = []

    class FakeGraphBackend(NumpyBackend):  # the CuPy backend's jit, with the fake graph above
        def jit(self, fn):
            def capture(run, static):
                graph = _FakeGraph(run, static)
                return graph, graph.outputs

            replays.append(GraphReplay(fn, capture, np.copyto, np.empty_like))
            return replays[-1]

        def jit_scalar(self, x):  # as CuPy's: a 0-d float32 array the graph reads at replay
            return np.asarray(float(x), dtype=np.float32)

    X, y = digits
    X = X.reshape(len(X), -1)
    runs = []
    for backend in ("numpy", FakeGraphBackend.create()):
        model = _mlp(backend, "auto")
        model.fit(X, y, epochs=3, batch_size=80, verbose=0)
        runs.append(_weights(model))
    _assert_close(*runs, tol=1e-5)
    assert model.jit_step.compiles == 1 and model.jit_step.fallback is None
    assert replays[0].captures == 1  # one shape: eager, eager (warm-up), captured once, then replayed


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_compiles_with_its_masters_and_loss_scale(backend, digits, dtype):
    _needs(backend)
    X, y = digits
    X = X.reshape(len(X), -1)
    runs = []
    for jit in (False, True):
        model = xpnn.Sequential(
            [xpnn.Dense(64, 32), xpnn.ReLU(), xpnn.Dense(32, 10)], backend=backend, dtype=dtype, seed=2
        )
        model.compile("softmax_cross_entropy", "adam", jit=jit)
        history = model.fit(X, y, epochs=3, batch_size=80, verbose=0)
        scale = model.loss_scale.state() if model.loss_scale is not None else None
        runs.append((_weights(model), history.history["loss"], scale, model))
    # the float32 masters; compute in 16 bits, where XLA may round a fused expression once
    # instead of after every operation
    _assert_close(runs[0][0], runs[1][0], tol=1e-3)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-3)
    assert runs[0][2] == runs[1][2]  # the same scale and count of good steps (mixed_float16)
    step = runs[1][3].jit_step
    assert step.fallback is None and step.compiles == 1
    if dtype == "mixed_float16":
        assert runs[1][2]["good_steps"] == 6  # every step of the 3 epochs counted, 5 of them compiled


class _AroundStep(xpnn.callbacks.Callback):
    """Snapshots of the weights and the loss scale before and after step ``at`` (host reads
    between steps: they keep one compiled call per step)."""

    def __init__(self, at: int):
        self.at, self.step, self.seen = at, -1, {}

    def snapshot(self):
        return _weights(self.model), self.model.loss_scale.state()["scale"]

    def on_batch_begin(self, step, batch):
        self.step += 1
        if self.step == self.at:
            self.seen["before"] = self.snapshot()
        return batch

    def on_batch_end(self, step, running):
        if self.step == self.at:
            self.seen["after"] = self.snapshot()


@pytest.mark.parametrize("backend", JIT_BACKENDS)
def test_mixed_float16_skips_an_overflowing_compiled_step_as_eagerly(backend, digits):
    _needs(backend)
    X, y = digits
    X = X.reshape(len(X), -1)
    targets = np.eye(10, dtype=np.float32)[y]
    # batch 3 of 5 (rows 96-127) has huge targets (float16 holds 1e4): its loss is finite,
    # but the loss gradient times the scale (2**15) overflows float16 in the backward pass
    targets[96:128] = 1e4
    runs = []
    for jit in (False, True):
        model = xpnn.Sequential(
            [xpnn.Dense(64, 32), xpnn.ReLU(), xpnn.Dense(32, 10)], backend=backend, dtype="mixed_float16", seed=2
        )
        model.compile("mse", "adam", jit=jit)
        around = _AroundStep(at=3)  # a compiled step: batch 0 ran eagerly, batch 1 traced
        history = model.fit(X, targets, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=[around])
        (w0, scale0), (w1, scale1) = around.seen["before"], around.seen["after"]
        assert scale1 == scale0 / 2  # lowered
        for a, b in zip(w0, w1):  # the step was skipped: the masters as they were
            np.testing.assert_array_equal(a, b)
        assert all(np.isfinite(history.history["loss"]))
        runs.append((_weights(model), model.loss_scale.state(), model))
    assert runs[1][1] == runs[0][1] == {"scale": 2.0**13, "good_steps": 1}  # halved in each epoch
    _assert_close(runs[0][0], runs[1][0], tol=1e-3)
    step = runs[1][2].jit_step
    assert step.fallback is None and step.compiles == 1


def test_every_torch_model_gets_its_own_compiled_versions(digits, monkeypatch):
    """torch.compile keeps at most recompile_limit versions per code object: every model's
    step is the same method, so each model compiles a copy of its code (with the limit at 1
    here, the second model's step would otherwise fail to compile)."""
    _needs("torch")
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    X, y = digits
    codes = []
    for seed in (1, 2):
        model = _mlp("torch", True, seed=seed)
        model.fit(X[:128].reshape(128, -1), y[:128], epochs=3, batch_size=64, verbose=0)
        assert model.jit_step.compiles == 1 and model.jit_step.fallback is None
        codes.append(model.jit_step._fn._torchdynamo_orig_callable.__code__)
    # a freed model's objects may be reused at the same address, and torch.compile then
    # counts the new model's versions with the old one's: distinct code keeps them apart
    assert codes[0] is not codes[1] and codes[0] is not xpnn.training.jit.CompiledStep.pure.__code__
