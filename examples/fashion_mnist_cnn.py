"""Fashion-MNIST with the default CNN (two conv blocks with batch norm and max-pool,
dropout, a dense head): prints time per epoch and the test accuracy.

    python examples/fashion_mnist_cnn.py [--epochs 15] [--batch-size 128] [--backend numpy|cupy]
                                         [--augment] [--limit N]

--augment moves every training image by a random 0 to 2 pixels each way at every step
(xpnn.augmentation.Augment(shift=2), inside fit; the test images are left as they are).
What it changes: the network never sees the same training image twice, so it cannot
memorise them; the training accuracy climbs more slowly and stays lower, and the gap
between training and test accuracy (printed at the end) shrinks. Whether the test
accuracy itself gains depends on how much the network overfits without it: run both
ways with the same --seed to compare. Clothes could also be mirrored (Augment(flip=True)),
digits not.

Needs the Fashion-MNIST IDX files (Debian: apt-get install dataset-fashion-mnist, or
see xpnn.load_fashion_mnist for where to put them).
"""

import argparse
import time

import xpnn
from xpnn.architectures import cnn
from xpnn.augmentation import Augment


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--augment", action="store_true", help="random shifts of up to 2 pixels for the training images")
    p.add_argument("--data-home", default=None)
    args = p.parse_args(argv)

    (X, y), (X_test, y_test) = xpnn.load_fashion_mnist(data_home=args.data_home)  # (n, 1, 28, 28)
    if args.limit:
        X, y = X[: args.limit], y[: args.limit]
    model = cnn(X.shape[1:], 10, backend=args.backend, seed=args.seed)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=args.lr), metrics=["accuracy"])
    # one callback for the whole run: its generator goes on from epoch to epoch
    callbacks = [Augment(shift=2, seed=args.seed)] if args.augment else []
    print(
        f"{model.count_params():,} params, {X.shape[0]} training images, backend {model.backend.name}, "
        f"{'augmented: ' + repr(callbacks[0]) if callbacks else 'no augmentation'}"
    )
    best = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        logs = model.fit(
            X, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=args.batch_size, verbose=0, callbacks=callbacks
        )
        seconds = time.perf_counter() - start
        test = model.evaluate(X_test, y_test)
        best = max(best, test["accuracy"])
        print(
            f"epoch {epoch + 1:2d}: {seconds:6.1f} s, train loss {logs.history['loss'][-1]:.4f}, "
            f"train acc {logs.history['accuracy'][-1]:.4f}, test acc {test['accuracy']:.4f}",
            flush=True,
        )
    gap = logs.history["accuracy"][-1] - test["accuracy"]
    print(
        f"final test accuracy {test['accuracy']:.4f} (best epoch {best:.4f}); train - test accuracy {gap:+.4f}"
        f"{' (train accuracy measured on augmented images)' if callbacks else ''}"
    )
    return test["accuracy"]


if __name__ == "__main__":
    main()
