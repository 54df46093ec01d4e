"""PyTorch: the same networks with nn.Sequential, torch.optim and the usual training loop.

CPU for device class "cpu", CUDA (the default GPU) for "gpu". Thread count is set by the harness
(``torch.set_num_threads``). On CUDA, TF32 is switched off for matmul and cuDNN so that
every library computes in true float32.
"""

from __future__ import annotations

NAME = "torch"


def unavailable(device: str):
    try:
        import torch
    except Exception as exc:
        return f"PyTorch not installed ({type(exc).__name__}: {exc})"
    if device == "gpu" and not torch.cuda.is_available():
        return "PyTorch has no CUDA device here"
    return None


def supports(case):
    return None


def build(case, X, y, device: str, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    device = torch.device("cuda" if device == "gpu" else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return TorchRunner(case, X, y, device)


def _net(case):
    from torch import nn

    if case.kind == "xor":
        return nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
    if case.kind == "cnn":
        from harness import cnn_layers

        make = {
            "conv": lambda cin, cout: nn.Conv2d(cin, cout, 3, padding=1),
            "relu": nn.ReLU,
            "pool": lambda: nn.MaxPool2d(2),
            "flatten": nn.Flatten,
            "dense": nn.Linear,
        }
        return nn.Sequential(*[make[kind](*args) for kind, *args in cnn_layers()])
    layers = []
    for i, (a, b) in enumerate(zip(case.sizes[:-1], case.sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(case.sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TorchRunner:
    def __init__(self, case, X, y, device):
        import numpy as np
        import torch

        self.torch = torch
        self.case = case
        self.device = device
        self.timer = "torch-cuda" if device.type == "cuda" else "cpu"
        self.net = _net(case).to(device)
        if case.kind == "xor":
            self.loss_fn = torch.nn.BCELoss()
            self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
            y = np.array([[0], [1], [1], [0]], dtype=np.float32)
        else:
            self.loss_fn = torch.nn.CrossEntropyLoss()
            self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
            if case.kind == "cnn":
                X = X.reshape(-1, 1, 28, 28)
        self.X = torch.from_numpy(X).to(device)  # on the device once, before timing
        self.y = torch.from_numpy(y).to(device)
        self._loss = None

    def sync(self):
        if self.timer == "torch-cuda":
            self.torch.cuda.synchronize()

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        self._loss = loss.detach()

    def run(self, n):
        torch = self.torch
        if self.case.kind == "xor":
            for _ in range(n):
                self._step(self.X, self.y)
            return
        bs = self.case.batch_size
        m = min(self.X.shape[0], n * bs)
        order = torch.randperm(m, device=self.device)  # reshuffled every pass, as fit does
        for lo in range(0, m, bs):
            idx = order[lo : lo + bs]
            self._step(self.X[idx], self.y[idx])

    def loss(self):
        return float(self._loss)
