"""Variable-length sequences, padded to one length, with a padding mask through fit.

Each sample is a sequence of 4 to 12 real tokens from 1..15, padded at the end to 12
positions. Label 1 if the first token occurs again among the *real* tokens, 0 if not:

    real: [ 7  3 12  7  5]        padded: [ 7  3 12  7  5 | 9 14  7  2 11  7  4]   -> 1
    real: [ 7  3 12  4]           padded: [ 7  3 12  4 | 6  7 10  7  1 13  8  5]   -> 0

The padding is filled with left-over tokens, often copies of the first one, so a model that
cannot tell padding from real tokens cannot tell which copies count. The
mask (batch, 12), True for real tokens, is passed to fit, evaluate and predict as
``mask=``; it is batched and shuffled with X and routed to the attention inside the
Transformer block, whose keys at padded positions then get zero weight. Two runs of the
same model, seed and data:

- with the mask: the query attends to the real tokens only, and learns the task;
- without it: padding and real tokens look alike, so it cannot tell which copies count.

    python examples/padded_sequences.py [--backend numpy] [--seed 0] [--epochs 12] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xpnn
from xpnn.layers import Dense, Embedding, PositionalEncoding, SequencePool, TransformerEncoderBlock

LENGTH, VOCAB, SHORTEST = 12, 16, 4


def make_sequences(n: int, rng: np.random.Generator):
    """(ids (n, LENGTH) int64, mask (n, LENGTH) bool, labels (n,) int64); about half are 1."""
    lengths = rng.integers(SHORTEST, LENGTH + 1, n)
    mask = np.arange(LENGTH)[None, :] < lengths[:, None]
    ids = rng.integers(1, VOCAB, (n, LENGTH))
    query = ids[:, :1]
    real_rest = mask[:, 1:]
    rest = ids[:, 1:]  # a view: writing it writes ids
    # no copy of the query among the real tokens ...
    copies = (rest == query) & real_rest
    other = (query - 1 + rng.integers(1, VOCAB - 1, rest.shape)) % (VOCAB - 1) + 1  # 1..15, never the query
    rest[copies] = other[copies]
    # ... the padding often holds copies of it (left-over data: a trap for a model that
    # cannot tell padding from tokens) ...
    pad_copies = ~real_rest & (rng.random(rest.shape) < 0.4)
    rest[pad_copies] = np.broadcast_to(query, rest.shape)[pad_copies]
    # ... then one at a random real position, in the positive half
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        rest[i, rng.integers(0, lengths[i] - 1)] = query[i, 0]
    return ids.astype(np.int64), mask, y.astype(np.int64)


def build(backend, seed):
    layers = [
        Embedding(VOCAB, 32, init="normal(std=1.0)"),
        PositionalEncoding(LENGTH),
        TransformerEncoderBlock(32, 4, 64),
        SequencePool("first"),
        Dense(32, 2),
    ]
    model = xpnn.Sequential(layers, backend=backend, seed=seed)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=3e-3), metrics=["accuracy"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a small run of seconds (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train, args.test = 2, 256, 128
    rng = np.random.default_rng(args.seed)
    X, M, y = make_sequences(args.train, rng)
    X_test, M_test, y_test = make_sequences(args.test, rng)
    results = {}
    for label, use_mask in (("with the mask", True), ("without it", False)):
        model = build(args.backend, args.seed)
        start = time.perf_counter()
        fit_inputs = {"mask": M} if use_mask else {}
        model.fit(X, y, epochs=args.epochs, batch_size=64, verbose=0, **fit_inputs)
        test_inputs = {"mask": M_test} if use_mask else {}
        accuracy = model.evaluate(X_test, y_test, **test_inputs)["accuracy"]
        results[label] = accuracy
        print(
            f"{label:14s} test accuracy {accuracy:.3f}  ({time.perf_counter() - start:.1f} s, "
            f"{args.epochs} epochs of {args.train} sequences on {model.backend})"
        )
    return results


if __name__ == "__main__":
    main()
