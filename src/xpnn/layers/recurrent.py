"""Recurrent layers: SimpleRNN, LSTM and GRU, with backpropagation through time by hand.

A recurrent layer reads a sequence one step at a time and carries a state from step to
step, with the same weights at every step. Every gate pre-activation has an input part
(from x_t) and a hidden part (from h_{t-1}):

    A_t = x_t W_ih^T + b_ih          S_t = h_{t-1} W_hh^T + b_hh          (batch, gates * H)

    SimpleRNN   h_t = act(A_t + S_t)                          act: tanh or relu

    LSTM        [i, f, g, o] = A_t + S_t                      the 4 gates, each (batch, H)
                i, f, o = sigmoid(.),  g = tanh(.)
                c_t = f * c_{t-1} + i * g                     the cell: a running sum, gated
                h_t = o * tanh(c_t)

    GRU         r = sigmoid(A_r + S_r),  z = sigmoid(A_z + S_z)
                n = tanh(A_n + r * S_n)                       r gates the hidden part, b_hn included
                h_t = (1 - z) * n + z * h_{t-1}

Params have PyTorch's layout and gate order, so the weights of torch.nn.RNN / LSTM / GRU
copy in as they are: W_ih (gates * H, input), W_hh (gates * H, H), b_ih and b_hh
(gates * H,), gates i, f, g, o for LSTM and r, z, n for GRU, all drawn from
U(-1/sqrt(H), 1/sqrt(H)) as PyTorch draws them.

Backpropagation through time: unrolled over T steps, the layer is a T-layer network whose
layers share their weights. Forward keeps what each step computed; backward walks the
steps last to first, each step's ``step_backward`` next to its ``step``, turning the
gradient reaching h_t (from the output at t, and from step t+1 through h_t, and for an
LSTM through c_t as well) into the gradients dA_t, dS_t of the two parts of the gates,
and of h_{t-1} (and c_{t-1}): dS_t W_hh, plus what reaches h_{t-1} directly (GRU). The
weights are shared by every step, so their gradients are sums over steps:
dW_ih = sum_t dA_t^T x_t and dW_hh = sum_t dS_t^T h_{t-1}, computed after the loop as one
product over all (batch * seq) rows. The input part A of all steps is likewise one
product before the loop, and dX = dA W_ih one product after it.

Inputs are (batch, seq, features), as Embedding and MultiHeadSelfAttention use.

Initial states are keyword inputs of forward, ``h0=`` (and ``c0=`` for LSTM), each
(batch, H), zeros when not given. Containers and fit/predict route them as they route
attention's ``mask`` (to every layer inside that takes them: two recurrent layers in one
model get the same h0). Backward returns dX only, so it leaves dL/dh0 (dL/dc0) in the
layer's ``dh0`` (``dc0``) for the states that were given, None for the others.
"""

from __future__ import annotations

import math

from .. import _checks
from .. import init as initializers
from ..functional import sigmoid
from .base import Layer, register_layer

NONLINEARITIES = ("tanh", "relu")


class _Recurrent(Layer):
    """What the three layers share: params, checks, and the loops over time steps.

    A subclass sets ``gates`` and ``forward_inputs`` (its initial states: ("h0",) or
    ("h0", "c0")) and writes the gate math of one step forward (``step``) and backward
    (``step_backward``) side by side; the products with the weights are here. The state
    is a tuple in ``forward_inputs`` order, h first.
    """

    gates = 1
    forward_inputs: tuple[str, ...] = ("h0",)

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False):
        super().__init__()
        where = type(self).__name__
        self.input_size = _checks.positive_int(input_size, "input_size", where)
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size", where)
        self.return_sequences = _checks.boolean(return_sequences, "return_sequences", where)
        # dL/d(initial state) after backward, for each state passed to forward (None otherwise):
        # dh0 for every layer, dc0 for LSTM
        for name in self.forward_inputs:
            setattr(self, f"d{name}", None)

    def build(self, X=None) -> None:
        H, G = self.hidden_size, self.gates * self.hidden_size
        draw = initializers.uniform(1.0 / math.sqrt(H))  # U(-1/sqrt(H), 1/sqrt(H)) for every param, as PyTorch
        for name, shape in (("W_ih", (G, self.input_size)), ("W_hh", (G, H)), ("b_ih", (G,)), ("b_hh", (G,))):
            self.params[name] = draw(self.generator, shape, self.dtype)

    # ---- the loops over time -----------------------------------------------------------

    def run(self, X, training: bool, initial: dict):
        """X: (batch, seq, input) -> Y: (batch, H) or (batch, seq, H); ``initial``: the
        initial states given to forward by name (None: zeros)."""
        self.prepare(X)
        self._check_input(X)
        xp, p = self.xp, self.params
        state = tuple(self._initial_state(name, initial.get(name), X) for name in self.forward_inputs)
        given = tuple(initial.get(name) is not None for name in self.forward_inputs)
        A = X @ p["W_ih"].T + p["b_ih"]  # (batch, seq, gates * H): the input part of every step at once
        W_hh_T = p["W_hh"].T
        hs, caches = [state[0]], []  # hs[t] is the h step t reads; hs[t + 1] the one it makes
        for t in range(X.shape[1]):
            S_t = state[0] @ W_hh_T + p["b_hh"]  # the hidden part: (batch, gates * H)
            state, cache = self.step(A[:, t, :], S_t, state)
            hs.append(state[0])
            caches.append(cache)
        self.saved = (X, hs, caches, given) if training else None
        return xp.stack(hs[1:], axis=1) if self.return_sequences else hs[-1]

    def backward(self, dY, need_dX: bool = True):
        """dY: (batch, H), or (batch, seq, H) with return_sequences -> dX: (batch, seq, input).
        Fills the grads of W_ih, W_hh, b_ih, b_hh, and ``dh0`` (``dc0``) for the initial
        states that forward was given."""
        X, hs, caches, given = self.take_saved()
        xp, p = self.xp, self.params
        T = len(caches)
        dstate = tuple(xp.zeros_like(hs[0]) for _ in self.forward_inputs)  # nothing after the last step
        dA, dS = [None] * T, [None] * T
        for t in range(T - 1, -1, -1):
            # h_t reaches the loss through the output (at every step, or the last only) and
            # through step t + 1 (dstate, from the iteration before)
            if self.return_sequences:
                dstate = (dstate[0] + dY[:, t, :], *dstate[1:])
            elif t == T - 1:
                dstate = (dstate[0] + dY, *dstate[1:])
            dA[t], dS[t], direct = self.step_backward(dstate, caches[t])
            # h_{t-1} reaches the loss through S_t = h_{t-1} W_hh^T + b_hh, and (GRU) directly
            dh = dS[t] @ p["W_hh"]
            dstate = (dh if direct[0] is None else direct[0] + dh, *direct[1:])
        for name, d, was_given in zip(self.forward_inputs, dstate, given):
            setattr(self, f"d{name}", d if was_given else None)

        def rows(Z):  # (batch, seq, n) -> (batch * seq, n): shared weights sum over both axes
            return xp.reshape(Z, (-1, Z.shape[-1]))

        same = all(a is s for a, s in zip(dA, dS))  # SimpleRNN, LSTM: A_t and S_t enter as a sum
        dA = xp.stack(dA, axis=1)  # (batch, seq, gates * H)
        dS = dA if same else xp.stack(dS, axis=1)
        H_prev = xp.stack(hs[:-1], axis=1)  # (batch, seq, H): what each step read
        self.grads["W_ih"] = rows(dA).T @ rows(X)
        self.grads["W_hh"] = rows(dS).T @ rows(H_prev)
        self.grads["b_ih"] = xp.sum(rows(dA), axis=0)
        self.grads["b_hh"] = xp.sum(rows(dS), axis=0)
        if not need_dX:
            return None
        return dA @ p["W_ih"]

    def step(self, A_t, S_t, state):
        """One step: (the input and hidden parts A_t, S_t (batch, gates * H), the old state)
        -> (the new state, what step_backward needs)."""
        raise NotImplementedError

    def step_backward(self, dstate, cache):
        """One step back: the gradients reaching the new state -> (dA_t, dS_t; the gradients
        reaching the old state other than through S_t, None for none)."""
        raise NotImplementedError

    # ---- checks -----------------------------------------------------------------------

    def _check_input(self, X) -> None:
        xp = self.xp
        if not xp.isdtype(X.dtype, "real floating"):
            raise TypeError(
                f"{self._where()}: X has dtype {str(X.dtype).rsplit('.', 1)[-1]}, expected a "
                f"floating-point array (put an Embedding before it for token ids)"
            )
        if X.ndim != 3 or X.shape[2] != self.input_size or X.shape[1] == 0:
            raise ValueError(
                f"{self._where()}: X has shape {tuple(X.shape)}, expected (batch, seq, "
                f"input_size={self.input_size}) with seq >= 1"
            )

    def _initial_state(self, name, value, X):
        """The initial state ``name`` (batch, H) in X's dtype: ``value``, or zeros if None."""
        xp, B, H = self.xp, X.shape[0], self.hidden_size
        if value is None:
            return xp.zeros((B, H), dtype=X.dtype, device=self.backend.device)
        self.backend.check(value, name, self._where())
        if not xp.isdtype(value.dtype, "real floating") or tuple(value.shape) != (B, H):
            raise ValueError(
                f"{self._where()}: {name} must be a floating-point array of shape (batch, hidden_size) "
                f"= {(B, H)}; found dtype {str(value.dtype).rsplit('.', 1)[-1]} and shape "
                f"{tuple(value.shape)}"
            )
        return value if value.dtype == X.dtype else xp.astype(value, X.dtype)

    # ---- description --------------------------------------------------------------------

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "return_sequences": self.return_sequences,
        }

    def output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.hidden_size)
        return (input_shape[0], self.hidden_size)

    def __repr__(self) -> str:
        return self.short_repr(2)  # input_size, hidden_size


@register_layer
class SimpleRNN(_Recurrent):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), as torch.nn.RNN.

    Args:
        input_size: features per step.
        hidden_size: H, the size of the hidden state.
        nonlinearity: "tanh" (default) or "relu".
        return_sequences: False: Y is the last step's h (batch, H); True: every step's h
            (batch, seq, H).

    Shapes: X (batch, seq, input_size) -> Y (batch, H) or (batch, seq, H);
    W_ih (H, input_size), W_hh (H, H), b_ih, b_hh (H,).

    ``forward(X, training=False, h0=None)``: h0 (batch, H) is the initial state (zeros if
    None). After backward, ``dh0`` holds dL/dh0 when h0 was given (else None).
    """

    gates = 1
    forward_inputs = ("h0",)

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", return_sequences: bool = False):
        super().__init__(input_size, hidden_size, return_sequences)
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"SimpleRNN: nonlinearity must be one of {NONLINEARITIES}, found {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, X, training=False, h0=None):
        """X: (batch, seq, input_size) -> Y: (batch, H) or (batch, seq, H); h0: (batch, H) or None."""
        return self.run(X, training, {"h0": h0})

    def step(self, A_t, S_t, state):
        xp = self.xp
        a = A_t + S_t
        if self.nonlinearity == "tanh":
            h_new = xp.tanh(a)
        else:
            h_new = xp.maximum(a, xp.zeros((), dtype=a.dtype, device=self.backend.device))
        return (h_new,), h_new  # both derivatives read from h_new: 1 - h^2, or h > 0

    def step_backward(self, dstate, h_new):
        (dh,) = dstate
        if self.nonlinearity == "tanh":
            da = dh * (1.0 - h_new * h_new)
        else:
            da = self.backend.mask_multiply(dh, h_new > 0)
        # A_t and S_t enter as a sum: both get da; h_{t-1} reaches the loss only through S_t
        return da, da, (None,)

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "nonlinearity": self.nonlinearity,
            "return_sequences": self.return_sequences,
        }


@register_layer
class LSTM(_Recurrent):
    """Long short-term memory, as torch.nn.LSTM (gates i, f, g, o; see the module docstring).

    Args:
        input_size: features per step.
        hidden_size: H, the size of the hidden state.
        return_sequences: False: Y is the last step's h (batch, H); True: every step's h
            (batch, seq, H).

    Shapes: X (batch, seq, input_size) -> Y (batch, H) or (batch, seq, H);
    W_ih (4H, input_size), W_hh (4H, H), b_ih, b_hh (4H,).

    ``forward(X, training=False, h0=None, c0=None)``: the initial hidden state and cell,
    each (batch, H), zeros if None. After backward, ``dh0`` and ``dc0`` hold dL/dh0 and
    dL/dc0 for those that were given (else None).
    """

    gates = 4
    forward_inputs = ("h0", "c0")

    def forward(self, X, training=False, h0=None, c0=None):
        """X: (batch, seq, input_size) -> Y: (batch, H) or (batch, seq, H); h0, c0: (batch, H) or None."""
        return self.run(X, training, {"h0": h0, "c0": c0})

    def step(self, A_t, S_t, state):
        xp, H = self.xp, self.hidden_size
        _, c = state
        a = A_t + S_t
        sig = sigmoid(xp, a)  # one call for all gates (g's part unused): fewer, larger operations
        i, f, o = sig[:, :H], sig[:, H : 2 * H], sig[:, 3 * H :]
        g = xp.tanh(a[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        tanh_c = xp.tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (c, i, f, g, o, tanh_c)

    def step_backward(self, dstate, cache):
        xp = self.xp
        dh, dc = dstate
        c, i, f, g, o, tanh_c = cache
        # h_t = o * tanh(c_t)
        do = dh * tanh_c
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # c_t feeds h_t and (dc in) c_{t+1}
        # c_t = f * c_{t-1} + i * g
        di, df, dg = dc * g, dc * c, dc * i
        # through the gates' sigmoid / tanh to their pre-activations, in the gate order
        da = xp.concat([di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1)
        return da, da, (None, dc * f)  # c_{t-1} reaches c_t directly, h_{t-1} only through S_t


@register_layer
class GRU(_Recurrent):
    """Gated recurrent unit, as torch.nn.GRU (gates r, z, n; see the module docstring).

    Args:
        input_size: features per step.
        hidden_size: H, the size of the hidden state.
        return_sequences: False: Y is the last step's h (batch, H); True: every step's h
            (batch, seq, H).

    Shapes: X (batch, seq, input_size) -> Y (batch, H) or (batch, seq, H);
    W_ih (3H, input_size), W_hh (3H, H), b_ih, b_hh (3H,).

    ``forward(X, training=False, h0=None)``: h0 (batch, H) is the initial state (zeros if
    None). After backward, ``dh0`` holds dL/dh0 when h0 was given (else None).
    """

    gates = 3
    forward_inputs = ("h0",)

    def forward(self, X, training=False, h0=None):
        """X: (batch, seq, input_size) -> Y: (batch, H) or (batch, seq, H); h0: (batch, H) or None."""
        return self.run(X, training, {"h0": h0})

    def step(self, A_t, S_t, state):
        xp, H = self.xp, self.hidden_size
        (h,) = state
        rz = sigmoid(xp, A_t[:, : 2 * H] + S_t[:, : 2 * H])  # r and z in one call
        r, z = rz[:, :H], rz[:, H:]
        S_n = S_t[:, 2 * H :]  # apart from A_t's n part: r multiplies this one only
        n = xp.tanh(A_t[:, 2 * H :] + r * S_n)
        h_new = (1.0 - z) * n + z * h
        return (h_new,), (h, r, z, n, S_n)

    def step_backward(self, dstate, cache):
        xp = self.xp
        (dh,) = dstate
        h, r, z, n, S_n = cache
        # h_t = (1 - z) * n + z * h_{t-1}
        dn = dh * (1.0 - z)
        dz = dh * (h - n)
        # n = tanh(A_n + r * S_n)
        dn_pre = dn * (1.0 - n * n)
        dr = dn_pre * S_n
        # r, z = sigmoid(A + S)
        dr_pre = dr * r * (1.0 - r)
        dz_pre = dz * z * (1.0 - z)
        dA = xp.concat([dr_pre, dz_pre, dn_pre], axis=1)
        dS = xp.concat([dr_pre, dz_pre, dn_pre * r], axis=1)
        # h_{t-1} feeds h_t directly (the z * h_{t-1} term) besides every gate through S_t
        return dA, dS, (dh * z,)
