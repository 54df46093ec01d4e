"""The seed's XOR demo: a 2-4-1 network, sigmoid everywhere, binary cross-entropy,
plain gradient descent (lr 0.1) on the four points for 10,000 epochs.

    python examples/xor.py [--backend numpy|cupy|array_api_strict] [--epochs 10000] [--seed 0]
"""

import argparse

import numpy as np

import xpnn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    p.add_argument("--epochs", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)

    model = xpnn.NeuralNetwork(
        2, 4, 1, activation="sigmoid", output_activation="sigmoid", backend=args.backend, seed=args.seed
    )
    model.compile(loss="bce", optimizer=xpnn.SGD(lr=args.lr))
    every = max(1, args.epochs // 10)
    for start in range(0, args.epochs, every):
        history = model.fit(
            X, y, epochs=min(start + every, args.epochs), initial_epoch=start, batch_size=None, shuffle=False, verbose=0
        )
        print(f"epoch {start + every:>6}: loss {history.history['loss'][-1]:.4f}")
    preds = model.predict(X).reshape(-1)
    print("predictions:", np.round(preds, 2).tolist(), " targets:", y.reshape(-1).tolist())
    return preds


if __name__ == "__main__":
    main()
