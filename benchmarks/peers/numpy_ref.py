"""The reference loop: the same training written by hand in bare NumPy (or CuPy), no library.

MLP: Dense/ReLU stack + fused softmax cross-entropy + Adam, float32, every buffer
allocated once and every update done in place (``out=``). Nothing a from-scratch NumPy
library does can beat this by much: it is the lower bound xpnn is measured against.
XOR: a 2-4-1 sigmoid net with the fused sigmoid + BCE gradient and plain SGD.

The same code runs on CuPy (``xp = cupy``) for the GPU: both libraries take ``out=`` in
matmul, the ufuncs, ``sum`` and ``take``.
"""

from __future__ import annotations

import math

NAME = "numpy-ref"


def unavailable(device: str):
    if device == "gpu":
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            return f"CuPy with a CUDA device is needed for the cupy reference loop ({exc})"
    return None


def supports(case):
    return None if case.kind in ("mlp", "xor") else "no hand-written reference for this case"


def build(case, X, y, device: str, seed: int = 0):
    if device == "gpu":
        import cupy as xp
    else:
        import numpy as xp
    if case.kind == "xor":
        return XorRef(xp, seed)
    return MlpRef(xp, X, y, case.sizes, case.batch_size, seed=seed)


class _Runner:
    def __init__(self, xp):
        self.xp = xp
        self.timer = "cupy" if xp.__name__ == "cupy" else "cpu"

    def sync(self):
        if self.timer == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


class MlpRef(_Runner):
    """784-...-10 ReLU MLP, softmax cross-entropy, Adam (torch's formula), batch ``bs``."""

    def __init__(self, xp, X, y, sizes, bs, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, seed=0):
        import numpy as np

        super().__init__(xp)
        f32 = xp.float32
        self.X = xp.asarray(X)  # on the device once, before timing
        self.y = xp.asarray(y)
        self.n = self.X.shape[0]
        self.bs = bs
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.host_rng = np.random.default_rng(seed)
        self.Ws, self.bs_ = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):  # Glorot uniform, zero bias
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            W = self.host_rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
            self.Ws.append(xp.asarray(W))
            self.bs_.append(xp.zeros(fan_out, dtype=f32))
        self.params = self.Ws + self.bs_
        self.grads = [xp.empty_like(p) for p in self.params]
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.tmp = [xp.empty_like(p) for p in self.params]
        # Per-batch buffers: the gathered batch, each layer's output, the backward signal.
        self.Xb = xp.empty((bs, sizes[0]), dtype=f32)
        self.yb = xp.empty(bs, dtype=self.y.dtype)
        self.A = [xp.empty((bs, k), dtype=f32) for k in sizes[1:]]  # post-ReLU (logits last)
        self.dA = [xp.empty((bs, k), dtype=f32) for k in sizes[1:]]
        self.mask = [xp.empty((bs, k), dtype=bool) for k in sizes[1:-1]]
        self.rowmax = xp.empty((bs, 1), dtype=f32)
        self.rowsum = xp.empty((bs, 1), dtype=f32)
        self.rows = xp.arange(bs)
        self._mean_loss = None

    def run(self, n_batches):
        """One pass over the first n_batches * bs samples, reshuffled (as a fit epoch)."""
        xp = self.xp
        n = min(self.n, n_batches * self.bs)
        if xp.__name__ == "cupy":
            order = xp.random.permutation(n)
        else:
            order = self.host_rng.permutation(n)
        # np.take buffers ``out`` in its default mode="raise"; the indices are valid, so "clip"
        mode = {} if xp.__name__ == "cupy" else {"mode": "clip"}
        total = xp.zeros((), dtype=xp.float32)  # the pass's mean loss, summed on the device as fit does
        for lo in range(0, n, self.bs):
            idx = order[lo : lo + self.bs]
            B = idx.shape[0]
            Xb, yb = self.Xb[:B], self.yb[:B]
            xp.take(self.X, idx, axis=0, out=Xb, **mode)
            xp.take(self.y, idx, axis=0, out=yb, **mode)
            total += self._step(Xb, yb, B) * float(B)
        self._mean_loss = total / float(n)

    def _step(self, X, y, B):
        xp = self.xp
        L = len(self.Ws)
        # forward: A[l] = relu(A[l-1] @ W[l] + b[l]); the last layer stays linear (logits)
        prev = X
        for l in range(L):
            Z = self.A[l][:B]
            xp.matmul(prev, self.Ws[l], out=Z)
            Z += self.bs_[l]
            if l < L - 1:
                xp.maximum(Z, 0.0, out=Z)
            prev = Z
        # fused softmax cross-entropy: loss = mean(log sum exp(z) - z_y), dZ = (softmax - onehot) / B
        Z, rows = prev, self.rows[:B]
        mx, s = self.rowmax[:B], self.rowsum[:B]
        xp.max(Z, axis=1, keepdims=True, out=mx)
        Z -= mx
        picked = Z[rows, y]
        xp.exp(Z, out=Z)
        xp.sum(Z, axis=1, keepdims=True, out=s)
        loss = (xp.log(s).sum() - picked.sum()) / B  # stays an array: no host sync
        Z /= s
        Z[rows, y] -= 1.0
        Z *= 1.0 / B
        # backward: dW = A^T dZ, db = sum dZ, dA_prev = dZ W^T masked by the ReLU
        dZ = Z
        for l in range(L - 1, -1, -1):
            A_prev = X if l == 0 else self.A[l - 1][:B]
            xp.matmul(A_prev.T, dZ, out=self.grads[l])
            xp.sum(dZ, axis=0, out=self.grads[L + l])
            if l > 0:  # the input needs no gradient
                dA = self.dA[l - 1][:B]
                xp.matmul(dZ, self.Ws[l].T, out=dA)
                mask = self.mask[l - 1][:B]
                xp.greater(A_prev, 0.0, out=mask)
                xp.multiply(dA, mask, out=dA)
                dZ = dA
        self._adam()
        return loss

    def _adam(self):
        xp = self.xp
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = self.lr / (1.0 - b1**self.t)
        root = 1.0 / math.sqrt(1.0 - b2**self.t)
        for p, g, m, v, tmp in zip(self.params, self.grads, self.m, self.v, self.tmp):
            m *= b1
            xp.multiply(g, 1.0 - b1, out=tmp)
            m += tmp
            v *= b2
            xp.multiply(g, g, out=tmp)
            tmp *= 1.0 - b2
            v += tmp
            xp.sqrt(v, out=tmp)  # denom = sqrt(v) / sqrt(1 - b2^t) + eps
            tmp *= root
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= -step
            p += tmp

    def loss(self):
        """Mean training loss of the last pass (what fit's history reports)."""
        return float(self._mean_loss)


class XorRef(_Runner):
    """2-4-1 sigmoid net on the 4 XOR points, mean BCE, SGD lr 0.1, full batch."""

    def __init__(self, xp, seed=0, lr=0.1):
        import numpy as np

        super().__init__(xp)
        rng = np.random.default_rng(seed)
        f32 = np.float32
        self.X = xp.asarray(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=f32))
        self.Y = xp.asarray(np.array([[0], [1], [1], [0]], dtype=f32))
        lim1, lim2 = math.sqrt(6 / 6), math.sqrt(6 / 5)
        self.W1 = xp.asarray(rng.uniform(-lim1, lim1, (2, 4)).astype(f32))
        self.b1 = xp.zeros(4, dtype=xp.float32)
        self.W2 = xp.asarray(rng.uniform(-lim2, lim2, (4, 1)).astype(f32))
        self.b2 = xp.zeros(1, dtype=xp.float32)
        self.lr = lr
        self._loss = None

    def run(self, steps):
        xp = self.xp
        X, Y, lr = self.X, self.Y, self.lr
        W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
        n = 4.0
        for _ in range(steps):
            H = 1.0 / (1.0 + xp.exp(-(X @ W1 + b1)))
            P = 1.0 / (1.0 + xp.exp(-(H @ W2 + b2)))
            # mean BCE (clipped as the libraries do); its gradient through the sigmoid is (P - Y) / n
            Pc = xp.clip(P, 1e-7, 1.0 - 1e-7)
            self._loss = -xp.mean(Y * xp.log(Pc) + (1.0 - Y) * xp.log(1.0 - Pc))
            dZ2 = (P - Y) * (1.0 / n)
            dH = dZ2 @ W2.T
            dZ1 = dH * H * (1.0 - H)
            W2 -= lr * (H.T @ dZ2)
            b2 -= lr * dZ2.sum(axis=0)
            W1 -= lr * (X.T @ dZ1)
            b1 -= lr * dZ1.sum(axis=0)

    def loss(self):
        return float(self._loss)
