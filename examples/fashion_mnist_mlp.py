"""Fashion-MNIST with one 128-unit hidden layer (the seed's MNIST network): prints time
per epoch and the test accuracy.

    python examples/fashion_mnist_mlp.py [--epochs 20] [--batch-size 128] [--backend numpy|cupy]
"""

import argparse
import time

import xpnn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-home", default=None)
    args = p.parse_args(argv)

    (X, y), (X_test, y_test) = xpnn.load_fashion_mnist(data_home=args.data_home, flatten=True)  # (n, 784)
    model = xpnn.NeuralNetwork(784, 128, 10, activation="relu", init="he_uniform", backend=args.backend, seed=args.seed)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=args.lr), metrics=["accuracy"])
    for epoch in range(args.epochs):
        start = time.perf_counter()
        h = model.fit(X, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=args.batch_size, verbose=0)
        seconds = time.perf_counter() - start
        test = model.evaluate(X_test, y_test)
        print(
            f"epoch {epoch + 1:2d}: {seconds:5.2f} s, train loss {h.history['loss'][-1]:.4f}, "
            f"test acc {test['accuracy']:.4f}",
            flush=True,
        )
    print(f"final test accuracy {test['accuracy']:.4f}")
    return test["accuracy"]


if __name__ == "__main__":
    main()
