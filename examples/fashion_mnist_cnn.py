"""Fashion-MNIST with the default CNN (two conv blocks with batch norm and max-pool,
dropout, a dense head): prints time per epoch and the test accuracy.

    python examples/fashion_mnist_cnn.py [--epochs 15] [--batch-size 128] [--backend numpy|cupy]

Needs the Fashion-MNIST IDX files (Debian: apt-get install dataset-fashion-mnist, or
see xpnn.load_fashion_mnist for where to put them).
"""

import argparse
import time

import xpnn
from xpnn.architectures import cnn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--data-home", default=None)
    args = p.parse_args(argv)

    (X, y), (X_test, y_test) = xpnn.load_fashion_mnist(data_home=args.data_home)  # (n, 1, 28, 28)
    if args.limit:
        X, y = X[:args.limit], y[:args.limit]
    model = cnn(X.shape[1:], 10, backend=args.backend, seed=args.seed)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=args.lr), metrics=["accuracy"])
    print(f"{model.count_params():,} params, {X.shape[0]} training images, backend {model.backend.name}")
    best = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        logs = model.fit(X, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=args.batch_size, verbose=0)
        seconds = time.perf_counter() - start
        test = model.evaluate(X_test, y_test)
        best = max(best, test["accuracy"])
        print(f"epoch {epoch + 1:2d}: {seconds:6.1f} s, train loss {logs.history['loss'][-1]:.4f}, "
              f"train acc {logs.history['accuracy'][-1]:.4f}, test acc {test['accuracy']:.4f}", flush=True)
    print(f"final test accuracy {test['accuracy']:.4f} (best epoch {best:.4f})")
    return test["accuracy"]


if __name__ == "__main__":
    main()
