"""Regression with MSE on a generated problem, features standardised with a scaler.

y = sin(x0) + 0.5 x1^2 - x2 + noise; an MLP learns it and we report R^2 on held-out data.

    python examples/regression.py [--epochs 100] [--backend numpy|cupy]
"""

import argparse

import numpy as np

import xpnn


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 3)).astype(np.float32) * np.array([1.0, 1.0, 10.0], np.float32)
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] / 10 + rng.normal(0, 0.05, n)
    return X, y.astype(np.float32).reshape(-1, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    X, y = make_data(args.n, args.seed)
    X_train, X_test, y_train, y_test = xpnn.train_test_split(X, y, test_size=0.25, seed=args.seed)
    scaler = xpnn.StandardScaler().fit(X_train)  # the third feature has 10x the spread
    model = xpnn.NeuralNetwork(3, [64, 64], 1, activation="tanh", backend=args.backend, seed=args.seed)
    model.compile("mse", xpnn.Adam(lr=3e-3), metrics=["r2"])
    model.fit(scaler.transform(X_train), y_train, epochs=args.epochs, batch_size=64, verbose=0)
    pred = model.predict(scaler.transform(X_test))
    r2 = xpnn.metrics.r2(y_test, pred)
    print(f"test MSE {xpnn.metrics.mse(y_test, pred):.4f}, test R^2 {r2:.4f}")
    return r2


if __name__ == "__main__":
    main()
