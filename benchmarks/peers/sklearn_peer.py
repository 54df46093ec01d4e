"""scikit-learn's MLPClassifier: one ``partial_fit`` call is one pass over the data.

Same architecture (ReLU hidden layers, softmax output, log-loss), Adam with lr 1e-3,
the same batch size, no L2 penalty (alpha=0), float32 input (scikit-learn keeps float32).
CPU only; no convolutions, and XOR's 10,000 tiny steps would time partial_fit's input
validation rather than training, so only the MLP cases run.
"""

from __future__ import annotations

NAME = "sklearn"


def unavailable(device: str):
    if device != "cpu":
        return "scikit-learn runs on the CPU only"
    try:
        import sklearn.neural_network  # noqa: F401
    except Exception as exc:
        return f"scikit-learn not installed ({type(exc).__name__}: {exc})"
    return None


def supports(case):
    return None if case.kind == "mlp" else "MLPClassifier has no equivalent for this case"


def build(case, X, y, device: str, seed: int = 0):
    return SklearnRunner(case, X, y, seed)


class SklearnRunner:
    timer = "cpu"

    def __init__(self, case, X, y, seed=0):
        import numpy as np
        from sklearn.neural_network import MLPClassifier

        self.case = case
        self.X, self.y = X, y
        self.classes = np.arange(10)
        self.clf = MLPClassifier(
            hidden_layer_sizes=tuple(case.sizes[1:-1]),
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=case.batch_size,
            learning_rate_init=1e-3,
            shuffle=True,
            random_state=seed,
        )

    def sync(self):
        pass

    def run(self, n):
        m = min(self.X.shape[0], n * self.case.batch_size)
        self.clf.partial_fit(self.X[:m], self.y[:m], classes=self.classes)

    def loss(self):
        return float(self.clf.loss_)
