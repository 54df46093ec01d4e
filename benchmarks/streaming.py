"""Streaming rows of the benchmarks: one epoch of the 784-128-10 MLP (batch 128, Adam) from
a 300,000 x 784 uint8 ``.npy`` opened with ``np.load(mmap_mode="r")``:

    xpnn (in memory)     the whole set as a float32 array in memory (loaded before the clock)
    xpnn (streamed)      model.fit(X_memmap, y): read, converted and prefetched batch by batch
    torch DataLoader w0  a PyTorch DataLoader over the same memmap (a batch sampler: one
    torch DataLoader w2  read per batch), 0 and 2 worker processes, training torch's MLP

Each row runs in its own process, one epoch per process, the rows interleaved round-robin
``repeats`` times (the machine's load drifts: compare rows of one run). Wall time is the
epoch (fit or the loop) alone. Memory: peak growth of ``RssAnon`` (anonymous memory, sampled
every 2 ms by a thread) over its value just before the epoch: the file-backed pages of a
memmap are page cache that the kernel may drop, not a copy, so RSS would overstate them.
For the DataLoader with workers, the workers' own RssAnon is summed in.

    python benchmarks/run.py --suite streaming      # as part of a run (JSON "streaming" rows)
    python benchmarks/streaming.py [--samples 300000] [--repeats 3]   # alone, a table on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SAMPLES = 300_000
ROWS = ("xpnn (in memory)", "xpnn (streamed)", "torch DataLoader w0", "torch DataLoader w2")
BATCH = 128
FEATURES = 784


def make_data(folder: str, samples: int, seed: int = 0) -> tuple[str, str]:
    """X.npy (samples, 784) uint8 and y.npy (samples,) int64, written in chunks (never whole
    in memory). Random pixels; labels from a fixed linear rule so the epoch learns something."""
    import numpy as np

    rng = np.random.default_rng(seed)
    xp, yp = os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy")
    X = np.lib.format.open_memmap(xp, mode="w+", dtype=np.uint8, shape=(samples, FEATURES))
    y = np.lib.format.open_memmap(yp, mode="w+", dtype=np.int64, shape=(samples,))
    W = rng.standard_normal((FEATURES, 10)).astype(np.float32)
    for lo in range(0, samples, 50_000):
        hi = min(lo + 50_000, samples)
        chunk = rng.integers(0, 256, (hi - lo, FEATURES), dtype=np.uint8)
        X[lo:hi] = chunk
        y[lo:hi] = (chunk.astype(np.float32) @ W).argmax(axis=1)
    X.flush()
    y.flush()
    del X, y
    return xp, yp


def _anon(pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakAnon:
    """The peak of RssAnon (this process plus its children) while in the ``with`` block."""

    def __init__(self):
        self.base = self.peak = _anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _total(self) -> int:
        total = _anon()
        for pid in _children():
            try:
                total += _anon(pid)
            except OSError:
                pass
        return total

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.002)

    def __enter__(self):
        self.base = self.peak = self._total()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._total())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _children() -> list:
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            return f.read().split()
    except OSError:
        return []


def worker(row: str, xp: str, yp: str, threads: int, seed: int) -> dict:
    """One epoch of ``row`` in this process: {"seconds", "anon_growth_mib", "loss"}."""
    import numpy as np

    X = np.load(xp, mmap_mode="r")
    y = np.load(yp)
    if row.startswith("xpnn"):
        import xpnn

        model = xpnn.NeuralNetwork(FEATURES, [128], 10, seed=seed).compile("softmax_cross_entropy", "adam")
        data = np.asarray(X, dtype=np.float32) if row == "xpnn (in memory)" else X
        with PeakAnon() as mem:
            t0 = time.perf_counter()
            history = model.fit(data, y, epochs=1, batch_size=BATCH, verbose=0)
            seconds = time.perf_counter() - t0
        return {"seconds": seconds, "anon_growth_mib": mem.growth_mib, "loss": history.history["loss"][-1]}
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, X, y):
            self.X, self.y = X, y

        def __len__(self):
            return self.X.shape[0]

        def __getitem__(self, idx):  # a list of indices: the batch sampler's batch
            idx = np.sort(np.asarray(idx))
            return torch.from_numpy(self.X[idx].astype(np.float32)), torch.from_numpy(self.y[idx])

    workers = int(row[-1])
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(X.shape[0])), BATCH, False)
    loader = torch.utils.data.DataLoader(Rows(X, y), sampler=sampler, batch_size=None, num_workers=workers)
    net = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    total, n = 0.0, 0
    with PeakAnon() as mem:
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss) * len(yb)
            n += len(yb)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "anon_growth_mib": mem.growth_mib, "loss": total / n}


def run(samples: int = 300_000, repeats: int = 3, threads: int | None = None, seed: int = 0, log=print) -> list:
    """The streaming rows, each a dict with the times and memory of every repeat."""
    threads = threads or os.cpu_count() or 1
    found: dict = {row: [] for row in ROWS}
    errors: dict = {}
    with tempfile.TemporaryDirectory(prefix="xpnn-stream-") as folder:
        xp, yp = make_data(folder, samples, seed)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        for r in range(repeats):
            order = ROWS[r % len(ROWS) :] + ROWS[: r % len(ROWS)]
            for row in order:
                if row in errors:
                    continue
                job = json.dumps({"row": row, "xp": xp, "yp": yp, "threads": threads, "seed": seed})
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--worker", job],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
                if proc.returncode != 0 or not last:
                    errors[row] = (proc.stderr or proc.stdout)[-2000:]
                    log(f"  streaming  {row:22s} error: {errors[row].strip().splitlines()[-1:]}")
                    continue
                ans = json.loads(last[0])
                found[row].append(ans)
                log(
                    f"  streaming  {row:22s} {ans['seconds']:.2f} s, RssAnon peak +{ans['anon_growth_mib']:.0f} MiB, "
                    f"loss {ans['loss']:.4f}"
                )
    rows = []
    for row in ROWS:
        runs = found[row]
        out = {"case": "stream-mlp", "label": row, "samples": samples, "batch_size": BATCH, "repeats": repeats}
        if not runs:
            out.update(status="error", reason=errors.get(row, "no run"))
        else:
            secs = [a["seconds"] for a in runs]
            out.update(
                status="ok",
                times_s=secs,
                min_s=min(secs),
                median_s=statistics.median(secs),
                anon_growth_mib=[a["anon_growth_mib"] for a in runs],
                peak_anon_growth_mib=max(a["anon_growth_mib"] for a in runs),
                loss=runs[-1]["loss"],
            )
        rows.append(out)
    return rows


NOTE = (
    "Peak RssAnon growth: anonymous memory sampled every 2 ms during the epoch, minus its value just before; "
    "a memmap's pages are file cache, not counted. The DataLoader with workers adds its worker processes' "
    "RssAnon, which counts their copy-on-write pages of the parent in full. In-memory: the float32 array "
    "(samples x 784 x 4 bytes) was made before the epoch and is not counted."
)


def render(rows: list) -> str:
    """A markdown table of the streaming rows, times relative to xpnn in memory."""
    base = next((r for r in rows if r["label"] == ROWS[0] and r["status"] == "ok"), None)
    lines = [
        f"One epoch, 784-128-10 MLP, batch {BATCH}, from a {rows[0]['samples']:,} x {FEATURES} uint8 memmap",
        "",
        "| | median s | min s | vs in-memory (median) | peak RssAnon growth |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['status']} | | | |")
            continue
        ratio = f"{r['median_s'] / base['median_s']:.2f}x" if base else "–"
        lines.append(
            f"| {r['label']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {ratio} | {r['peak_anon_growth_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=SAMPLES)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(worker(job["row"], job["xp"], job["yp"], job["threads"], job["seed"])))
        return 0
    rows = run(args.samples, args.repeats, args.threads, args.seed, log=lambda m: print(m, file=sys.stderr))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    print(render(rows))
    print()
    print(NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
