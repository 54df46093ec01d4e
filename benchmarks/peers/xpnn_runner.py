"""xpnn itself, driven the way a user drives it: Sequential + compile + fit.

One timed run is ``model.fit(X[:n * batch], y[:n * batch], epochs=1, batch_size=batch,
verbose=0)`` (XOR: ``fit(X, y, epochs=steps, batch_size=None, shuffle=False)``), with the
data already on the backend's device so that no host-to-device copy is timed.

The backend is a --backend spec, "name" or "name:device" ("torch:cuda", "jax:gpu"), with
an optional model dtype after "@" ("torch@mixed_bfloat16", "cupy@mixed_float16"), and
"+jit" for compiled steps (``compile(..., jit=True)``: "jax+jit", "torch+jit"). Work
that a library queues asynchronously is waited for before the clock stops: CuPy's stream,
torch's CUDA (or MPS) queue, and JAX's dispatch, which is asynchronous on the CPU too.
On a GPU every library computes float32 matmuls in float32 (no TF32), as the peers do.
"""

from __future__ import annotations

NAME = "xpnn"


def _backend(spec: str):
    from harness import split_backend

    import xpnn

    return xpnn.get_backend(*split_backend(spec))


def unavailable(backend: str):
    from harness import split_dtype

    try:
        _backend(backend).check_dtype(split_dtype(backend), "xpnn")
    except Exception as exc:
        return f"xpnn backend {backend!r} unavailable: {exc}"
    return None


def supports(case):
    if case.kind == "cnn":
        try:
            from xpnn.layers.conv import Conv2D  # noqa: F401
            from xpnn.layers.pooling import MaxPool2D  # noqa: F401
        except Exception as exc:  # not written yet, or broken
            return (
                f"xpnn.layers.conv.Conv2D / xpnn.layers.pooling.MaxPool2D not importable ({type(exc).__name__}: {exc})"
            )
    return None


def build_model(case, backend, seed: int = 0, dtype: str = "float32", jit: bool = False):
    """The case's model on ``backend`` (a Backend or a registry name) in ``dtype``; ``jit``:
    compiled steps."""
    import xpnn

    if case.kind == "xor":
        layers = [xpnn.Dense(2, 4), xpnn.Sigmoid(), xpnn.Dense(4, 1), xpnn.Sigmoid()]
        model = xpnn.Sequential(layers, seed=seed, backend=backend, dtype=dtype)
        return model.compile("bce", xpnn.SGD(lr=0.1), jit=jit)
    if case.kind == "cnn":
        from harness import cnn_layers

        from xpnn.layers.conv import Conv2D
        from xpnn.layers.pooling import MaxPool2D

        make = {
            "conv": lambda cin, cout: Conv2D(cin, cout, 3, padding=1),
            "relu": xpnn.ReLU,
            "pool": lambda: MaxPool2D(2),
            "flatten": xpnn.Flatten,
            "dense": xpnn.Dense,
        }
        layers = [make[kind](*args) for kind, *args in cnn_layers()]
    else:
        sizes = case.sizes
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(xpnn.Dense(a, b))
            if i < len(sizes) - 2:
                layers.append(xpnn.ReLU())
    model = xpnn.Sequential(layers, seed=seed, backend=backend, dtype=dtype)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=1e-3), jit=jit)


def build(case, X, y, backend: str, seed: int = 0):
    return XpnnRunner(case, X, y, backend, seed)


class XpnnRunner:
    def __init__(self, case, X, y, backend, seed=0):
        import numpy as np

        self.case = case
        b = _backend(backend)
        self.timer = "cpu"
        if b.name == "cupy":
            self.timer = "cupy"
            b.native.cuda.Device(b.device.id).use()  # the timing events and memory pool of that GPU
        elif b.name == "torch" and b.device.type == "cuda":
            self.timer = "torch-cuda"
            b.native.cuda.set_device(b.device)
            b.native.backends.cuda.matmul.allow_tf32 = False
            b.native.backends.cudnn.allow_tf32 = False
        elif b.name == "jax" and b.device.platform != "cpu":
            b.native.config.update("jax_default_matmul_precision", "float32")  # JAX's GPU default is TF32
        from harness import split_dtype, uses_jit

        self.model = build_model(case, b, seed, split_dtype(backend), jit=uses_jit(backend))
        if case.kind == "xor":
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
            y = np.array([[0], [1], [1], [0]], dtype=np.float32)
        elif case.kind == "cnn":
            X = X.reshape(-1, 1, 28, 28)
        self.X, self.y = b.asarray(X), b.asarray(y)  # on the device once, before timing
        self.subsets = {}  # JAX slices by copying: make each run's subset once, not in every timed run
        self.history = None

    def sync(self):
        b = self.model.backend
        if b.name == "cupy":
            b.native.cuda.get_current_stream().synchronize()
        elif b.name == "torch" and b.device.type in ("cuda", "mps"):
            getattr(b.native, b.device.type).synchronize()
        elif b.name == "jax":  # the last step's parameter updates (Adam's moments come with them)
            b.native.block_until_ready(list(self.model.named_arrays().values()))

    def run(self, n):
        if self.case.kind == "xor":
            self.history = self.model.fit(self.X, self.y, epochs=n, batch_size=None, shuffle=False, verbose=0)
            return
        m = min(self.X.shape[0], n * self.case.batch_size)
        if m not in self.subsets:
            self.subsets[m] = (self.X, self.y) if m == self.X.shape[0] else (self.X[:m, ...], self.y[:m])
        X, y = self.subsets[m]
        self.history = self.model.fit(X, y, epochs=1, batch_size=self.case.batch_size, verbose=0)

    def loss(self):
        return float(self.history.history["loss"][-1])
