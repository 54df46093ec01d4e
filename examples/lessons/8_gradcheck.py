"""Lesson 8: the finite-difference gradient check, step by step, on one Dense layer.

How do we know a hand-written backward is right? Compare it with the definition of the
derivative. Nudge one number w by a tiny h in each direction and watch a scalar loss L:

    dL/dw  ~  (L(w + h) - L(w - h)) / (2 h)        (central difference, error ~ h^2)

That needs no calculus, only forward passes, so it checks the calculus in ``backward``.
This lesson does it by hand for one weight, then for all of them, shows how the error
depends on h (too large: the function's curvature; too small: rounding; float32 much
worse), runs ``xpnn.gradcheck``, and lets it catch a planted bug.

    python examples/lessons/8_gradcheck.py [--backend numpy] [--out DIR] [--quick]
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import done, parse_args, save  # noqa: E402

import xpnn  # noqa: E402
from xpnn import Dense  # noqa: E402
from xpnn.plotting import pyplot  # noqa: E402


def relative_error(a, n):
    """||a - n|| / (||a|| + ||n||): 0 when equal, 1 when unrelated, scale-free."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return float(np.linalg.norm(a - n) / (np.linalg.norm(a) + np.linalg.norm(n)))


class BuggyDense(Dense):
    """A planted bug: db as the *mean* of dY over the batch instead of the sum (the
    loss is sum(Y * R), not a mean, so every sample's dY counts in full)."""

    def backward(self, dY, need_dX=True):
        dX = super().backward(dY, need_dX)
        self.grads["b"] = self.xp.mean(dY, axis=0)
        return dX


def main(argv=None):
    args = parse_args(__doc__, argv)
    backend = xpnn.get_backend(args.backend)
    np.set_printoptions(precision=4, suppress=True)
    rng = np.random.default_rng(args.seed)
    findings = {}

    print("Step 1. A Dense(3, 2) layer, Y = X @ W + b, on a batch of 4 inputs, in float64.")
    layer = Dense(3, 2).bind(backend, backend.rng(args.seed), "float64")
    X_host = rng.standard_normal((4, 3))
    X = backend.asarray(X_host, "float64")
    W = np.array(backend.to_numpy(layer.params["W"]))
    print("W =\n", W, "\nb =", np.array(backend.to_numpy(layer.params["b"])))

    print("\nStep 2. A scalar to differentiate: L = sum(Y * R) for a fixed random R (4, 2), so dL/dY = R.")
    R_host = rng.standard_normal((4, 2))
    R = backend.asarray(R_host, "float64")

    def loss() -> float:
        return float(np.sum(np.array(backend.to_numpy(layer.forward(X))) * R_host))

    print(f"L = {loss():.10f}")

    print("\nStep 3. The analytic gradient: backward(R) gives dW = X^T R, db = sum over the batch of R.")
    print("  (forward(X, training=True) keeps X for the backward; a plain forward is inference and keeps nothing)")
    layer.forward(X, training=True)
    layer.backward(R)
    dW = np.array(backend.to_numpy(layer.grads["W"]))
    print("dW (backward) =\n", dW)
    print("X^T R (by hand) =\n", X_host.T @ R_host)

    i, j, h = 1, 0, 1e-5
    print(f"\nStep 4. Nudge one weight, W[{i}, {j}] = {W[i, j]:.6f}, by h = {h:g} each way:")
    Wp = layer.params["W"]
    original = W.copy()

    def set_w(value):
        w = original.copy()
        w[i, j] = value
        layer.params["W"] = backend.asarray(w, "float64")

    set_w(W[i, j] + h)
    L_plus = loss()
    set_w(W[i, j] - h)
    L_minus = loss()
    layer.params["W"] = Wp
    numeric = (L_plus - L_minus) / (2 * h)
    print(f"  L(w + h) = {L_plus:.10f}\n  L(w - h) = {L_minus:.10f}")
    print(f"  (L(w + h) - L(w - h)) / 2h = {numeric:.10f}")
    print(f"  backward says dL/dW[{i}, {j}] = {dW[i, j]:.10f}; difference {abs(numeric - dW[i, j]):.1e}")
    findings["one_weight"] = {"numeric": numeric, "analytic": float(dW[i, j])}

    print("\nStep 5. The same for every weight, compared as one tensor:")
    num = np.zeros_like(original)
    for a in range(3):
        for c in range(2):
            for sign in (1, -1):
                w = original.copy()
                w[a, c] += sign * h
                layer.params["W"] = backend.asarray(w, "float64")
                num[a, c] += sign * loss() / (2 * h)
    layer.params["W"] = Wp
    err = relative_error(dW, num)
    print(f"  relative error ||dW - numeric|| / (||dW|| + ||numeric||) = {err:.1e}  (below ~1e-7: correct)")
    findings["relative_error_W"] = err

    print("\nStep 6. How the error depends on h, and why the check runs in float64.")
    print("  Y = X @ W + b is linear in W, so there the estimate has only rounding error. Put a tanh after")
    print("  the layer, L = sum(tanh(X @ W + b) * R), and it curves: a large h then misses too. The analytic")
    print("  gradient goes through both backwards (the chain rule): dense.backward(tanh.backward(R)).")
    hs = 10.0 ** -np.arange(1, 13)
    curves = {}
    for curved in (False, True):
        dense = Dense(3, 2).bind(backend, backend.rng(args.seed), "float64")
        act = xpnn.Tanh() if curved else xpnn.Identity()
        act.forward(dense.forward(X, training=True), training=True)
        dense.backward(act.backward(R))
        exact = float(np.array(backend.to_numpy(dense.grads["W"]))[i, j])
        for label, dtype, central in (
            ("central, float64", "float64", True),
            ("forward, float64", "float64", False),
            ("central, float32", "float32", True),
        ):
            # a copy of the layer in ``dtype``: the loss is computed in that precision throughout
            f = Dense(3, 2).bind(backend, backend.rng(args.seed), dtype)
            g = xpnn.Tanh() if curved else xpnn.Identity()
            Xd, Rd = backend.asarray(X_host, dtype), R_host.astype(dtype)

            def loss_at(value):
                w = original.astype(dtype)
                w[i, j] = value  # rounded to dtype: in float32 a tiny h may vanish right here
                f.params["W"] = backend.asarray(w, dtype)
                return float(np.sum(np.array(backend.to_numpy(g.forward(f.forward(Xd)))) * Rd, dtype=dtype))

            errors = []
            for step in hs:
                if central:
                    estimate = (loss_at(original[i, j] + step) - loss_at(original[i, j] - step)) / (2 * step)
                else:
                    estimate = (loss_at(original[i, j] + step) - loss_at(original[i, j])) / step
                errors.append(abs(estimate - exact) / abs(exact) + 1e-17)  # + 1e-17: exact hits stay on a log plot
            curves[(curved, label)] = errors
            best = int(np.argmin(errors))
            print(
                f"  {'with tanh' if curved else 'linear':<9} {label:<17} best h = {hs[best]:.0e} "
                f"(error {errors[best]:.1e}); at h = 1e-2: {errors[1]:.1e}; at h = 1e-10: {errors[9]:.1e}"
            )
    findings["best_h"] = {
        f"{'tanh' if c else 'linear'}, {k}": float(hs[int(np.argmin(v))]) for (c, k), v in curves.items()
    }
    f32, f64 = min(curves[(True, "central, float32")]), min(curves[(True, "central, float64")])
    f32_at_gradcheck_h = curves[(True, "central, float32")][5]  # hs[5] = 1e-6
    print(
        "  Truncation error falls with h (~h^2 central, ~h forward); rounding error grows as h shrinks (about\n"
        f"  1e-16 / h in float64, 1e-7 / h in float32). With the tanh, float32 at best reaches {f32:.0e}, float64\n"
        f"  {f64:.0e}; at gradcheck's h = 1e-6 the float32 error is {f32_at_gradcheck_h:.1g} (L(w + h) "
        "and L(w - h)\n  round to nearly or exactly the same float32). So gradcheck runs in float64 with h = 1e-6,\n"
        "  near the bottom of the central float64 curve."
    )

    print("\nStep 7. xpnn.gradcheck does all of this for the input and every parameter:")
    report = xpnn.gradcheck(Dense(3, 2), X, details=True)
    print("  " + ", ".join(f"{k}: {v:.1e}" for k, v in report.items()))
    findings["gradcheck"] = report

    print("\nStep 8. A planted bug: db computed as the mean over the batch instead of the sum.")
    buggy = xpnn.gradcheck(BuggyDense(3, 2), X, details=True)
    print("  " + ", ".join(f"{k}: {v:.1e}" for k, v in buggy.items()))
    print(f"  db is off by the batch size (4): relative error (4 - 1) / (4 + 1) = {3 / 5:.1f}; caught.")
    findings["gradcheck_buggy"] = buggy

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, curved, what in (
        (axes[0], False, "L = sum((X @ W + b) * R): linear in W"),
        (axes[1], True, "L = sum(tanh(X @ W + b) * R): curved"),
    ):
        for k, label in enumerate(("central, float64", "forward, float64", "central, float32")):
            ax.loglog(hs, curves[(curved, label)], marker="o", ms=4, color=f"C{k}", label=label)
        ax.axvline(1e-6, color="grey", ls=":", lw=1, label="gradcheck's h = 1e-6")
        ax.set_xlabel("step h (smaller to the right)")
        ax.set_title(f"Error of the finite difference for dL/dW[{i},{j}]\n{what}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
        ax.invert_xaxis()
    axes[0].set_ylabel("relative error vs backward")
    fig.tight_layout()
    save(fig, args, "8_gradcheck")
    findings["seconds"] = done(args)
    return findings


if __name__ == "__main__":
    main()
