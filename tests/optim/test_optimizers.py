"""Optimizers: exact updates against formulas (and torch.optim), convergence, dtype,
in-place updates, device placement, state save/load/move, clipping, names and errors."""

from __future__ import annotations

import json
import math

import array_api_compat
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.backends import InPlaceBackend
from xpnn.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_grad_norm,
    get_optimizer,
)
from xpnn.param import Param
from xpnn.schedules import CosineDecay, StepDecay

SHAPES = [(3, 2), (2,)]  # two params, like a Dense layer's W and b
N_STEPS = 4


def _data(seed=0):
    """Initial params and one list of grads per step (float64, host)."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in SHAPES]
    grads = [[rng.normal(size=s) for s in SHAPES] for _ in range(N_STEPS)]
    return params, grads


def _run(backend, opt, params, grads, dtype="float64"):
    """Apply ``opt`` for each grad list; returns the final params on the host."""
    # np.array copies: on NumPy, asarray would alias the caller's host arrays
    store = {str(i): backend.asarray(np.array(p), dtype=dtype) for i, p in enumerate(params)}
    for gs in grads:
        opt.step([Param(store, str(i), grad=backend.asarray(g, dtype=dtype)) for i, g in enumerate(gs)])
    return [np.array(backend.to_numpy(store[str(i)])) for i in range(len(params))]


# ---- reference formulas, written out in NumPy float64 ---------------------------------------


def ref_sgd(params, grads, lr, momentum=0.0, nesterov=False, wd=0.0):
    params = [p.copy() for p in params]
    bufs = [np.zeros_like(p) for p in params]
    for gs in grads:
        for i, g in enumerate(gs):
            g = g + wd * params[i]
            if momentum:
                bufs[i] = momentum * bufs[i] + g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * g
    return params


def ref_adam(params, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            if decoupled:
                params[i] = params[i] * (1 - lr * wd)
            else:
                g = g + wd * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            # eps added to sqrt(v_hat), as torch (not to sqrt(v) before the correction)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params


def ref_rmsprop(params, grads, lr, rho, eps, momentum=0.0):
    params = [p.copy() for p in params]
    ms = [np.zeros_like(p) for p in params]
    mom = [np.zeros_like(p) for p in params]
    for gs in grads:
        for i, g in enumerate(gs):
            ms[i] = rho * ms[i] + (1 - rho) * g * g
            inc = lr * g / np.sqrt(ms[i] + eps)
            if momentum:
                mom[i] = momentum * mom[i] + inc
                inc = mom[i]
            params[i] = params[i] - inc
    return params


def ref_adagrad(params, grads, lr, eps):
    params = [p.copy() for p in params]
    acc = [np.zeros_like(p) for p in params]
    for gs in grads:
        for i, g in enumerate(gs):
            acc[i] = acc[i] + g * g
            params[i] = params[i] - lr * g / (np.sqrt(acc[i]) + eps)
    return params


# Large eps / weight decay on purpose so that a misplaced term changes the result.
CASES = {
    "sgd": (lambda: SGD(lr=0.1), lambda p, g: ref_sgd(p, g, 0.1)),
    "sgd_wd": (lambda: SGD(lr=0.1, weight_decay=0.3), lambda p, g: ref_sgd(p, g, 0.1, wd=0.3)),
    "momentum": (lambda: SGD(lr=0.1, momentum=0.9), lambda p, g: ref_sgd(p, g, 0.1, 0.9)),
    "nesterov": (
        lambda: SGD(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.2),
        lambda p, g: ref_sgd(p, g, 0.1, 0.8, nesterov=True, wd=0.2),
    ),
    "adam": (lambda: Adam(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1), lambda p, g: ref_adam(p, g, 0.05, 0.8, 0.9, 0.1)),
    "adam_wd": (
        lambda: Adam(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1, weight_decay=0.5),
        lambda p, g: ref_adam(p, g, 0.05, 0.8, 0.9, 0.1, wd=0.5),
    ),
    "adamw": (
        lambda: AdamW(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1, weight_decay=0.5),
        lambda p, g: ref_adam(p, g, 0.05, 0.8, 0.9, 0.1, wd=0.5, decoupled=True),
    ),
    "rmsprop": (lambda: RMSprop(lr=0.05, rho=0.8, eps=0.1), lambda p, g: ref_rmsprop(p, g, 0.05, 0.8, 0.1)),
    "rmsprop_momentum": (
        lambda: RMSprop(lr=0.05, rho=0.8, eps=0.1, momentum=0.7),
        lambda p, g: ref_rmsprop(p, g, 0.05, 0.8, 0.1, 0.7),
    ),
    "adagrad": (lambda: Adagrad(lr=0.3, eps=0.1), lambda p, g: ref_adagrad(p, g, 0.3, 0.1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_update_matches_formula(backend, case):
    make, ref = CASES[case]
    params, grads = _data()
    got = _run(backend, make(), params, grads)
    want = ref(params, grads)
    for g, w, p0 in zip(got, want, params):
        assert not np.allclose(w, p0)  # the reference really moved
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_scheduled_lr_is_used_per_step(backend):
    """Step t uses lr(t) with t the number of steps taken before it."""
    params, grads = _data()
    sched = StepDecay(0.1, step_size=2, gamma=0.5)
    got = _run(backend, SGD(lr=sched), params, grads)
    want = [p.copy() for p in params]
    for t, gs in enumerate(grads):
        lr = 0.1 * 0.5 ** (t // 2)
        want = [p - lr * g for p, g in zip(want, gs)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)


# ---- against torch.optim on the same numbers --------------------------------------------------

TORCH_CASES = {
    "sgd": (dict(lr=0.1), "SGD", dict(lr=0.1)),
    "sgd_wd": (dict(lr=0.1, weight_decay=0.3), "SGD", dict(lr=0.1, weight_decay=0.3)),
    "momentum": (dict(lr=0.1, momentum=0.9), "SGD", dict(lr=0.1, momentum=0.9)),
    "nesterov": (
        dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.2),
        "SGD",
        dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.2),
    ),
    "adam": (dict(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1), "Adam", dict(lr=0.05, betas=(0.8, 0.9), eps=0.1)),
    "adam_wd": (
        dict(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1, weight_decay=0.5),
        "Adam",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.5),
    ),
    "adamw": (
        dict(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1, weight_decay=0.5),
        "AdamW",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.5),
    ),
    "adam_defaults": (dict(), "Adam", dict()),
    "adamw_defaults": (dict(), "AdamW", dict()),
    "adagrad": (dict(lr=0.3, eps=0.1), "Adagrad", dict(lr=0.3, eps=0.1)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_torch_optim(backend, case):
    torch = pytest.importorskip("torch")
    ours_kwargs, torch_name, torch_kwargs = TORCH_CASES[case]
    ours = get_optimizer(torch_name.lower(), **ours_kwargs)
    params, grads = _data(seed=1)
    got = _run(backend, ours, params, grads)

    tparams = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    topt = getattr(torch.optim, torch_name)(tparams, **torch_kwargs)
    for gs in grads:
        for tp, g in zip(tparams, gs):
            tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
    for g, tp in zip(got, tparams):
        np.testing.assert_allclose(g, tp.detach().numpy(), rtol=1e-10, atol=1e-13)


# ---- behaviour on a convex problem ----------------------------------------------------------

CONVERGENCE = {
    "sgd": lambda: SGD(lr=0.05),
    "momentum": lambda: SGD(lr=0.02, momentum=0.9),
    "nesterov": lambda: SGD(lr=0.02, momentum=0.9, nesterov=True),
    "rmsprop": lambda: RMSprop(lr=0.02),
    "adagrad": lambda: Adagrad(lr=0.5),
    "adam": lambda: Adam(lr=0.05),
    "adamw": lambda: AdamW(lr=0.05, weight_decay=0.001),
    "adam_cosine": lambda: Adam(lr=CosineDecay(0.1, total_steps=100, min_lr=0.01)),
}


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_lowers_convex_quadratic_loss(backend, name):
    """loss(W, b) = mean((X W + b - Y)**2) is convex; 100 steps must close most of the gap."""
    xp = backend.xp
    rng = np.random.default_rng(3)
    X_host = rng.normal(size=(32, 4))
    Y_host = X_host @ rng.normal(size=(4, 2)) + 0.5 + 0.1 * rng.normal(size=(32, 2))
    X, Y = backend.asarray(X_host, dtype="float32"), backend.asarray(Y_host, dtype="float32")
    params = {"W": backend.zeros((4, 2)), "b": backend.zeros((2,))}

    def loss_and_grads():
        R = X @ params["W"] + params["b"] - Y
        scale = 2.0 / (R.shape[0] * R.shape[1])
        return backend.to_float(xp.mean(R * R)), X.T @ R * scale, xp.sum(R, axis=0) * scale

    # best possible loss: least squares with a bias column
    A = np.hstack([X_host, np.ones((32, 1))])
    best = float(np.mean((A @ np.linalg.lstsq(A, Y_host, rcond=None)[0] - Y_host) ** 2))

    opt = CONVERGENCE[name]()
    start, _, _ = loss_and_grads()
    for _ in range(100):
        _, dW, db = loss_and_grads()
        opt.step([Param(params, "W", grad=dW), Param(params, "b", grad=db)])
    end, _, _ = loss_and_grads()
    assert end - best < 0.01 * (start - best), (start, end, best)


# ---- dtype, in-place updates, grads untouched, device placement -------------------------------

ALL = {
    "sgd": lambda: SGD(lr=0.1),
    "nesterov_wd": lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "rmsprop_momentum": lambda: RMSprop(momentum=0.5),
    "adagrad": lambda: Adagrad(),
    "adam_wd": lambda: Adam(weight_decay=0.1),
    "adamw_scheduled": lambda: AdamW(lr=StepDecay(0.01, 1)),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_written_back_grads_untouched_state_on_device(backend, name):
    opt = ALL[name]()
    params, grads = _data()
    store = {str(i): backend.asarray(p, dtype="float32") for i, p in enumerate(params)}
    refs = dict(store)  # the arrays before the steps
    before = {k: np.array(backend.to_numpy(p)) for k, p in store.items()}
    for gs in grads:
        g_arrays = [backend.asarray(g, dtype="float32") for g in gs]
        g_before = [np.array(backend.to_numpy(g)) for g in g_arrays]
        opt.step([Param(store, str(i), grad=g) for i, g in enumerate(g_arrays)])
        for g, gb in zip(g_arrays, g_before):
            np.testing.assert_array_equal(backend.to_numpy(g), gb)  # grads only read
    assert opt.iterations == N_STEPS
    for k, p in store.items():
        assert p.dtype == backend.xp.float32
        assert not np.allclose(backend.to_numpy(p), before[k])  # the update reached the store
        if isinstance(backend, InPlaceBackend):  # NumPy, CuPy, PyTorch: no copy per step
            assert p is refs[k]
    device = array_api_compat.device(store["0"])
    for key, a in opt.state_arrays().items():
        assert a.dtype == backend.xp.float32, key
        assert array_api_compat.device(a) == device, key
        assert backend.owns(a), key


# ---- state: save/load and moving backends -------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "momentum", "rmsprop_momentum", "adagrad"])
def test_state_round_trip_continues_identically(backend, name):
    make = CASES[name][0]
    params, grads = _data()
    a = make()
    pa = {str(i): backend.asarray(np.array(p)) for i, p in enumerate(params)}
    for gs in grads[:2]:
        _step(a, pa, gs, backend)
    saved = {k: np.array(backend.to_numpy(v)) for k, v in a.state_arrays().items()}
    assert saved and all(k.split(".")[0] in a.state_names for k in saved)

    b = get_optimizer(json.loads(json.dumps(a.config())))  # config is JSON-able
    b.load_state_arrays(saved, a.iterations, backend=backend)  # host arrays converted
    assert b.iterations == 2
    pb = {k: backend.asarray(np.array(backend.to_numpy(p))) for k, p in pa.items()}  # copies, not views
    for gs in grads[2:]:
        _step(a, pa, gs, backend)
        _step(b, pb, gs, backend)
    for k in pa:
        np.testing.assert_array_equal(backend.to_numpy(pa[k]), backend.to_numpy(pb[k]))


def _step(opt, store, grads, backend):
    opt.step([Param(store, str(i), grad=backend.asarray(g)) for i, g in enumerate(grads)])


def test_tuples_are_refused_where_updates_are_not_in_place():
    """(param, grad) tuples have no owner to store a new array in: on a library that does
    not update in place the step must fail, not leave the caller's array unchanged."""
    jax_backend = xpnn.get_backend("jax")
    p, g = jax_backend.asarray(np.ones(3)), jax_backend.asarray(np.ones(3))
    with pytest.raises(
        TypeError,
        match=r"Adam.step: pairs\[0\] is a \(param, grad\) tuple, but this backend "
        r"updated a copy.*pass model.parameters\(\)",
    ):
        Adam().step([(p, g)])
    store = {"p": p}
    Adam(lr=0.5).step([Param(store, "p", grad=g)])  # the same step through a handle works
    np.testing.assert_allclose(jax_backend.to_numpy(store["p"]), [0.5, 0.5, 0.5], rtol=1e-6)


def test_to_moves_state_between_backends():
    """Start on NumPy, move params and state to array_api_strict's device1, go on: same result."""
    strict = xpnn.get_backend("array_api_strict")
    numpy_b = xpnn.get_backend("numpy")
    params, grads = _data()
    want = ref_adam(params, grads, 0.05, 0.8, 0.9, 0.1)
    opt = Adam(lr=0.05, beta1=0.8, beta2=0.9, eps=0.1)
    ps = [numpy_b.asarray(np.array(p)) for p in params]
    for gs in grads[:2]:
        opt.step([(p, numpy_b.asarray(g)) for p, g in zip(ps, gs)])
    assert opt.to(strict) is opt
    ps = [strict.asarray(p) for p in ps]
    for a in opt.state_arrays().values():
        assert strict.owns(a)
    for gs in grads[2:]:
        opt.step([(p, strict.asarray(g)) for p, g in zip(ps, gs)])
    for p, w in zip(ps, want):
        np.testing.assert_allclose(strict.to_numpy(p), w, rtol=1e-12)


def test_load_state_arrays_errors():
    opt = Adam()
    with pytest.raises(ValueError, match=r"unexpected state name 'velocity.0'; adam expects 'm.<path>', 'v.<path>'"):
        opt.load_state_arrays({"velocity.0": np.zeros(2)}, 1)
    with pytest.raises(ValueError, match=r"state 'm' has indices \[0, 2\], expected 0..1"):
        opt.load_state_arrays({"m.0": np.zeros(2), "m.2": np.zeros(2), "v.0": np.zeros(2), "v.1": np.zeros(2)}, 1)
    with pytest.raises(ValueError, match="same number of arrays"):
        opt.load_state_arrays({"m.0": np.zeros(2)}, 1)
    with pytest.raises(ValueError, match="Adam.load_state_arrays: iterations must be a non-negative integer, found -1"):
        opt.load_state_arrays({}, -1)


def test_state_is_named_by_param_path():
    """State is kept per position while training and named by each param's path in its
    model, so saved state is matched by name, not by where a param sits in the list."""
    model = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.ReLU(), xpnn.Sequential([xpnn.Dense(4, 2)])])
    model.compile(optimizer="adam")
    model.fit(np.ones((4, 3), np.float32), np.arange(4) % 2, epochs=1, verbose=0)
    opt = model.optimizer
    assert opt.paths == list(model.named_params()) == ["0.W", "0.b", "2.0.W", "2.0.b"]
    state = opt.state_arrays()
    assert sorted(state) == sorted(f"{k}.{p}" for k in ("m", "v") for p in opt.paths)
    # loaded against paths in another order: each array lands at its param's position
    fresh = Adam()
    order = ["2.0.b", "2.0.W", "0.b", "0.W"]
    fresh.load_state_arrays(dict(reversed(list(state.items()))), opt.iterations, paths=order)
    assert fresh.paths == order
    for k in ("m", "v"):
        for i, p in enumerate(order):
            assert fresh.state[k][i] is state[f"{k}.{p}"]
    with pytest.raises(ValueError, match=r"'m.0.W' \(no param has the path '0.W'; pass paths=\)"):
        Adam().load_state_arrays(state, 1)
    # another model's params (other paths, same count) for this state: refused by name
    other = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.Dense(4, 2)])
    for layer in other.layers:
        layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    with pytest.raises(ValueError, match=r"params\[2\] is '1.W', but this optimizer's state .* belongs to '2.0.W'"):
        opt.step(other.parameters())


def test_step_checks_params(backend):
    p = backend.zeros((2, 3))
    opt = Adam()
    with pytest.raises(ValueError, match=r"params\[0\] has param shape \(2, 3\) but grad shape \(3,\)"):
        opt.step([Param({"p": p}, "p", grad=backend.zeros((3,)))])
    with pytest.raises(
        TypeError, match=r"params\[0\] must be a Param \(from model.parameters\(\)\) or a \(param, grad\) tuple"
    ):
        opt.step([p])
    with pytest.raises(ValueError, match=r"params\[0\] \('p'\) has no gradient yet"):
        opt.step([Param({"p": p}, "p", grads={})])
    opt.step([Param({"p": p}, "p", grad=backend.zeros((2, 3)))])
    with pytest.raises(ValueError, match="got 2 params, but this optimizer's state was made for 1"):
        opt.step([Param({"p": p}, "p", grad=backend.zeros((2, 3)))] * 2)
    q = backend.zeros((4,))
    with pytest.raises(ValueError, match=r"state m.0 has shape \(2, 3\) but params\[0\] has shape \(4,\)"):
        opt.step([Param({"q": q}, "q", grad=backend.zeros((4,)))])


# ---- lr: float, schedule, set by callbacks ------------------------------------------------------


def test_lr_float_schedule_and_assignment():
    opt = SGD(lr=StepDecay(1.0, step_size=1, gamma=0.5))
    assert opt.get_lr() == 1.0
    p, g = np.zeros(2), np.ones(2)
    opt.step([(p, g)])
    assert opt.get_lr() == 0.5 and isinstance(opt.get_lr(), float)
    opt.lr = 0.25  # what ReduceLROnPlateau does
    assert opt.lr == 0.25 and opt.get_lr() == 0.25
    opt.step([(p, g)])
    np.testing.assert_allclose(p, [-1.25, -1.25])
    opt.lr = 0  # a callback may anneal down to 0
    assert opt.get_lr() == 0.0
    with pytest.raises(ValueError, match=r"SGD: lr must be a number >= 0 or a schedule, found -1.0"):
        opt.lr = -1.0
    opt.lr = np.float32(0.1)  # NumPy scalars become Python floats: no float64 upcasts
    assert type(opt.lr) is float


def test_config_is_json_and_round_trips():
    for opt in [
        SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        RMSprop(momentum=0.1),
        Adagrad(eps=1e-6),
        Adam(beta2=0.99),
        AdamW(lr=CosineDecay(0.01, 50), weight_decay=0.1),
    ]:
        cfg = opt.config()
        assert cfg["name"] == opt.name
        again = get_optimizer(json.loads(json.dumps(cfg)))
        assert type(again) is type(opt) and again.config() == cfg
    assert SGD(lr=lambda step: 0.1).get_lr() == 0.1
    with pytest.raises(TypeError, match="lr is a callable without config"):
        SGD(lr=lambda step: 0.1).config()


# ---- names and errors -----------------------------------------------------------------------


def test_get_optimizer_names():
    for name, cls in [
        ("sgd", SGD),
        ("adam", Adam),
        ("adamw", AdamW),
        ("rmsprop", RMSprop),
        ("adagrad", Adagrad),
        ("Adam", Adam),
        ("SGD", SGD),
    ]:
        assert type(get_optimizer(name)) is cls
    opt = Adam()
    assert get_optimizer(opt) is opt
    assert get_optimizer("sgd", lr=0.5, momentum=0.9).momentum == 0.9
    assert isinstance(get_optimizer(), Adam)
    with pytest.raises(
        ValueError, match=r"optimizer must be one of \['adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'\].*found 'adamax'"
    ):
        get_optimizer("adamax")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        get_optimizer(3)
    with pytest.raises(ValueError, match="got an Optimizer instance and also arguments"):
        get_optimizer(opt, lr=0.1)
    with pytest.raises(TypeError, match=r"Adam does not take \['momentum'\]; it takes \['lr', 'beta1'"):
        get_optimizer("adam", momentum=0.9)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(lr=0), r"SGD: lr must be a number > 0 or a schedule, found 0"),
        (lambda: Adam(lr=-1e-3), r"Adam: lr must be a number > 0 or a schedule, found -0.001"),
        (lambda: SGD(lr=True), r"SGD: lr must be a number > 0 or a schedule, found True"),
        (lambda: SGD(lr=float("nan")), r"SGD: lr must be a number > 0 or a schedule, found nan"),
        (lambda: SGD(lr="0.1"), r"SGD: lr must be a number > 0 or a schedule, found '0.1'"),
        (lambda: SGD(momentum=-0.1), r"SGD: momentum must be a number >= 0, found -0.1"),
        (lambda: SGD(momentum=True), r"SGD: momentum must be a number >= 0, found True"),
        (lambda: SGD(nesterov=True), r"SGD: nesterov=True needs momentum > 0"),
        (lambda: SGD(momentum=0.9, nesterov=1), r"SGD: nesterov must be True or False, found 1"),
        (lambda: SGD(weight_decay=-1), r"SGD: weight_decay must be a number >= 0, found -1"),
        (lambda: Adam(beta1=1.0), r"Adam: beta1 must be a number in \[0, 1\), found 1.0"),
        (lambda: Adam(beta2=-0.1), r"Adam: beta2 must be a number in \[0, 1\), found -0.1"),
        (lambda: Adam(beta1=False), r"Adam: beta1 must be a number in \[0, 1\), found False"),
        (lambda: AdamW(beta1=1.5), r"AdamW: beta1 must be a number in \[0, 1\), found 1.5"),
        (lambda: Adam(eps=-1e-8), r"Adam: eps must be a number >= 0, found -1e-08"),
        (lambda: AdamW(weight_decay=-0.01), r"AdamW: weight_decay must be a number >= 0, found -0.01"),
        (lambda: RMSprop(rho=1.0), r"RMSprop: rho must be a number in \[0, 1\), found 1.0"),
        (lambda: RMSprop(momentum=-1), r"RMSprop: momentum must be a number >= 0, found -1"),
        (lambda: Adagrad(eps=-1), r"Adagrad: eps must be a number >= 0, found -1"),
        (lambda: Adagrad(eps=float("inf")), r"Adagrad: eps must be a number >= 0, found inf"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_scalars_are_accepted_as_python_numbers():
    opt = SGD(lr=np.float32(0.1), momentum=np.float64(0.9), weight_decay=np.int64(0))
    assert all(type(v) is float for v in (opt.lr, opt.momentum, opt.weight_decay))
    assert (opt.momentum, opt.weight_decay) == (0.9, 0.0)
    for made in [
        Adam(np.float64(1e-3), beta1=np.float32(0.5), beta2=np.float64(0.99), eps=np.float64(1e-8)),
        AdamW(weight_decay=np.float32(0.25)),
        RMSprop(rho=np.float64(0.9), momentum=np.int32(1)),
        Adagrad(eps=np.float32(1e-10)),
        opt,
    ]:
        json.dumps(made.config())  # plain Python numbers
    # float32 params stay float32 under NumPy-scalar hyper-parameters (no float64 upcast)
    p = np.ones(3, dtype=np.float32)
    opt.step([(p, np.ones(3, dtype=np.float32))])
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, 1 - np.float32(0.1), rtol=1e-6)
    adam = Adam()
    adam.load_state_arrays({}, np.int64(3))
    assert adam.iterations == 3 and type(adam.iterations) is int
    with pytest.raises(
        ValueError, match="Adam.load_state_arrays: iterations must be a non-negative integer, found True"
    ):
        adam.load_state_arrays({}, True)


def test_base_class_needs_update():
    class Nothing(Optimizer):
        pass

    with pytest.raises(NotImplementedError):
        Nothing(0.1).step([(np.zeros(1), np.zeros(1))])


# ---- clip_grad_norm ---------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    max_norm=st.floats(0.1, 10.0),
    scale=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
)
def test_clip_grad_norm_property(sizes, max_norm, scale, seed):
    backend = xpnn.get_backend("array_api_strict")  # hypothesis and fixtures don't mix; strict is the harder one
    rng = np.random.default_rng(seed)
    host = [scale * rng.normal(size=(n, 2)) for n in sizes]
    pairs = [(backend.zeros((n, 2)), backend.asarray(g, dtype="float32")) for n, g in zip(sizes, host)]
    clipped, norm = clip_grad_norm(pairs, max_norm)
    total = math.sqrt(sum(float(np.sum(g**2)) for g in host))
    assert norm.shape == () and backend.owns(norm)
    assert backend.to_float(norm) == pytest.approx(total, rel=1e-5)
    factor = min(1.0, max_norm / (total + 1e-6))
    for (p, g), (cp, cg), h in zip(pairs, clipped, host):
        assert cp is p
        assert cg.dtype == backend.xp.float32
        np.testing.assert_allclose(backend.to_numpy(cg), h * factor, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(backend.to_numpy(g), h, rtol=1e-6)  # input grads untouched
    new_total = math.sqrt(sum(float(np.sum(backend.to_numpy(cg).astype(np.float64) ** 2)) for _, cg in clipped))
    assert new_total <= max_norm * (1 + 1e-5)


def test_clip_grad_norm(backend):
    g1 = backend.asarray(np.array([3.0, 0.0], dtype=np.float32))
    g2 = backend.asarray(np.array([[4.0]], dtype=np.float32))
    pairs = [(backend.zeros((2,)), g1), (backend.zeros((1, 1)), g2)]
    clipped, norm = clip_grad_norm(pairs, 1.0)
    assert backend.to_float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(backend.to_numpy(clipped[0][1]), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(clipped[1][1]), [[0.8]], rtol=1e-5)
    unclipped, _ = clip_grad_norm(pairs, 10.0)  # under the limit: unchanged
    np.testing.assert_array_equal(backend.to_numpy(unclipped[0][1]), [3.0, 0.0])
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a number > 0, found 0"):
        clip_grad_norm(pairs, 0)
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a number > 0, found True"):
        clip_grad_norm(pairs, True)
    clipped, _ = clip_grad_norm(pairs, np.float32(1.0))  # a NumPy scalar works as a Python float
    np.testing.assert_allclose(backend.to_numpy(clipped[0][1]), [0.6, 0.0], rtol=1e-5)
    with pytest.raises(ValueError, match="clip_grad_norm: params is empty"):
        clip_grad_norm([], 1.0)
