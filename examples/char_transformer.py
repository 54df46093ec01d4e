"""A character-level Transformer language model on real English text, trained from a stream of windows.

The text becomes one long array of character ids; ``xpnn.data.TokenWindows`` serves its
windows of ``--seq-len`` characters (sample i is ids[i : i + T], its target the same window
shifted by one: one window starts at every character), gathered batch by batch: no window
is ever stored. ``fit`` draws each epoch's batches from a fresh permutation of all the
windows and stops after as many steps as it takes to predict as many characters as the
training text has (``steps_per_epoch``). The model predicts the next character at every
position:

    Embedding(V, E) -> PositionalEncoding -> causal TransformerEncoderBlock x L
        -> LayerNorm -> TimeDistributed(Dense(E, V))   logits (batch, T, V)

trained with the softmax cross-entropy over the vocabulary at every position (labels
(batch, T)). Causal self-attention lets position t see only characters <= t, so the one
forward pass makes T honest next-character predictions.

Every 10th block of 2,000 characters is held out. The validation perplexity (exp of the
mean cross-entropy per character, over non-overlapping windows of the held-out text) is
reported beside a bigram baseline: character pair counts on the training text with
add-one smoothing, scored on the same characters. Then the model writes text, sampling
each character from softmax(logits / temperature) with a seeded generator.

The default corpus is the English fortunes of Debian's ``fortunes`` package (about 2.7 MB
of quotes, jokes and poems; ``apt-get install -y fortunes`` puts them in
/usr/share/games/fortunes); ``--text PATH`` takes any UTF-8 text file (or a folder of them).

    python examples/char_transformer.py [--text PATH] [--epochs 2] [--seq-len 64]
        [--embed 64] [--layers 2] [--heads 4] [--batch-size 32] [--lr 3e-3]
        [--seed 0] [--temperature 0.8] [--prompt TEXT] [--backend numpy] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path

import numpy as np

import xpnn
from xpnn.data import TokenWindows
from xpnn.layers import Dense, Embedding, LayerNorm, PositionalEncoding, TimeDistributed, TransformerEncoderBlock

FORTUNES = Path("/usr/share/games/fortunes")
BLOCK, HELD_OUT_EVERY = 2000, 10  # every 10th block of 2,000 characters is validation text
# as attention_toy.py: Embedding's default U(-0.05, 0.05) would be drowned by the
# positional encoding's values in [-1, 1]
EMBED_INIT = "normal(std=1.0)"


def read_text(path: Path) -> str:
    """The text of a file, or of every file in a folder (sorted; the fortunes' .dat and
    .u8 index files skipped), decoded as UTF-8 (a bad byte becomes U+FFFD)."""
    if not path.exists():
        hint = " (Debian/Ubuntu: apt-get install -y fortunes)" if path == FORTUNES else ""
        raise SystemExit(f"char_transformer: no text at {path}{hint}; pass --text PATH for any text file")
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    files = [p for p in files if p.suffix not in (".dat", ".u8")]
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in files)


def split_text(text: str) -> tuple[str, str]:
    """(training, held-out) text: every HELD_OUT_EVERY-th block of BLOCK characters is
    held out, so both halves cover every part of the corpus (smaller blocks for a text of
    under 100,000 characters, so that it still has at least 5 held-out blocks)."""
    size = max(1, min(BLOCK, len(text) // (5 * HELD_OUT_EVERY)))
    blocks = [text[i : i + size] for i in range(0, len(text), size)]
    held = [b for k, b in enumerate(blocks) if k % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [b for k, b in enumerate(blocks) if k % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return "".join(train), "".join(held)


def bigram_perplexity(train_ids: np.ndarray, prev: np.ndarray, nxt: np.ndarray, V: int) -> float:
    """Perplexity of nxt given prev under character-pair counts of train_ids, add-one smoothed."""
    counts = np.ones((V, V))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(np.exp(-logp[prev, nxt].mean()))


def build_model(V: int, args) -> xpnn.Sequential:
    """Token ids (batch, T) -> next-character logits (batch, T, V)."""
    E = args.embed
    layers = [Embedding(V, E, init=EMBED_INIT), PositionalEncoding(args.seq_len)]
    layers += [TransformerEncoderBlock(E, num_heads=args.heads, ff_dim=4 * E, causal=True) for _ in range(args.layers)]
    layers += [LayerNorm(E), TimeDistributed(Dense(E, V))]  # pre-norm blocks leave their output unnormalised
    return xpnn.Sequential(layers, backend=args.backend, seed=args.seed)


def perplexity(model, windows: TokenWindows, batch: int = 128) -> float:
    """exp(mean cross-entropy per character) over every window of ``windows``."""
    total, count = 0.0, 0
    for start in range(0, len(windows), batch):
        X, y = windows[np.arange(start, min(start + batch, len(windows)))]
        total += model.evaluate(X, y)["loss"] * y.size
        count += y.size
    return math.exp(total / count)


def generate(model, ids: list, n: int, seq_len: int, temperature: float, rng: np.random.Generator) -> list:
    """``ids`` followed by n sampled ids: each from softmax(logits / temperature) of the
    last position, given the last seq_len ids."""
    ids = list(ids)
    for _ in range(n):
        probs = model.predict(np.array([ids[-seq_len:]], dtype=np.int64))[0, -1].astype(np.float64)
        logits = np.log(np.maximum(probs, 1e-30)) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return ids


def one_blas_thread():
    """Small matrices on a busy machine: BLAS's thread hand-offs cost more than they
    bring (a step of the default model took about 6x longer with 2 threads than with 1)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", type=Path, default=FORTUNES, help="a UTF-8 text file or a folder of them")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64, help="characters of context (T)")
    p.add_argument("--stride", type=int, default=1, help="between the starts of training windows")
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--prompt", default="The ")
    p.add_argument("--generate", type=int, default=300, help="characters to write")
    p.add_argument("--quick", action="store_true", help="a tiny run that only shows the script works")
    args = p.parse_args(argv)
    if args.quick:
        args.seq_len, args.embed, args.layers, args.generate = 16, 16, 1, 40

    text = read_text(args.text)
    train_text, val_text = split_text(text)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    V = len(chars)
    encode = lambda s: np.array([index[c] for c in s], dtype=np.uint8 if V <= 256 else np.int32)  # noqa: E731
    train_ids, val_ids = encode(train_text), encode(val_text)

    train = TokenWindows(train_ids, args.seq_len, stride=args.stride)
    val = TokenWindows(val_ids, args.seq_len, stride=args.seq_len)  # each held-out character predicted once
    print(
        f"{args.text}: {len(text):,} characters, {V} distinct; {len(train_ids):,} for training "
        f"({len(train):,} windows of {args.seq_len}, stride {args.stride}), {len(val_ids):,} held out"
    )

    model = build_model(V, args)
    # an epoch: as many predicted characters as the training text has, from random windows
    per_epoch = min(
        math.ceil(len(train_ids) / (args.seq_len * args.batch_size)), math.ceil(len(train) / args.batch_size)
    )
    steps = args.epochs * per_epoch
    lr = xpnn.schedules.LinearWarmup(xpnn.schedules.CosineDecay(args.lr, max(steps - 100, 1)), 100)
    model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr), clip_norm=1.0)
    print(
        f"Transformer: {args.layers} causal blocks, embed {args.embed}, {args.heads} heads, "
        f"{model.count_params():,} params; {args.epochs} epoch(s) of {per_epoch:,} "
        f"steps, batch {args.batch_size}, backend {args.backend}"
    )
    with one_blas_thread():
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(train, epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=per_epoch, verbose=1)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        ppl = perplexity(model, val)
        # the bigram model scores the same characters: each window's targets from their predecessors
        X_val, y_val = val[np.arange(len(val))]
        bigram = bigram_perplexity(train_ids, X_val.reshape(-1), y_val.reshape(-1), V)
        # CPU time beside wall time: on a machine shared with other jobs the wall time is longer
        print(f"trained in {seconds:.0f} s ({cpu:.0f} s of CPU time)")
        print(f"validation perplexity per character: Transformer {ppl:.2f}, bigram (add-one) {bigram:.2f}")
        prompt = [index[c] for c in args.prompt if c in index] or [0]
        rng = np.random.default_rng(args.seed)
        sample = generate(model, prompt, args.generate, args.seq_len, args.temperature, rng)
    print(f"sample (temperature {args.temperature}, seed {args.seed}):")
    print("".join(chars[i] for i in sample))
    return {"perplexity": ppl, "bigram": bigram, "seconds": seconds, "cpu_seconds": cpu, "params": model.count_params()}


if __name__ == "__main__":
    main()
