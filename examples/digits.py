"""The bundled 8x8 digits with an MLP: train, evaluate, and print a classification report.

python examples/digits.py [--hidden 256 128] [--epochs 30] [--backend numpy|cupy]
"""

import argparse

import xpnn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    (X, y), (X_test, y_test) = xpnn.load_digits(flatten=True)  # (n, 64) in [0, 1]
    model = xpnn.NeuralNetwork(
        64, args.hidden, 10, activation="relu", init="he_uniform", backend=args.backend, seed=args.seed
    )
    model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    history = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, validation_split=0.1, verbose=0)
    test = model.evaluate(X_test, y_test)
    print(
        f"train acc {history.history['accuracy'][-1]:.4f}, val acc {history.history['val_accuracy'][-1]:.4f}, "
        f"test acc {test['accuracy']:.4f}"
    )
    print(xpnn.metrics.classification_report(y_test, model.predict_classes(X_test)))
    return test["accuracy"]


if __name__ == "__main__":
    main()
