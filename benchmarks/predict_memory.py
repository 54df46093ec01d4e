"""Peak memory of inference: xpnn's ``predict`` vs PyTorch's ``torch.no_grad()`` forward.

The default CNN of ``xpnn train --model cnn`` (two 3x3 conv blocks with batch norm,
ReLU and max-pool, dropout, a 128-unit dense head; 422K params) predicts the 10,000
Fashion-MNIST test images, in float32, batch by batch. The same network in PyTorch (eval
mode, under ``torch.no_grad()``) does the same. Each run is its own process, so its peak
resident memory (``ru_maxrss``) is its own; what is reported is the peak minus the
resident memory just before the first prediction (the model built, the data loaded):
what inference itself costs. xpnn keeps nothing after an inference forward, so its
peak is one batch's largest activations: for this CNN the second convolution's im2col
matrix, (32*9 + 1) x (28*28 * batch) floats.

    python benchmarks/predict_memory.py [--batch-sizes 128,256,1024] [--synthetic] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_mib() -> float:
    """The current resident memory of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _images(synthetic: bool):
    import numpy as np

    if synthetic:
        return np.random.default_rng(0).random((10_000, 1, 28, 28), dtype=np.float32)
    import xpnn

    _, (X, _) = xpnn.load_fashion_mnist(flatten=False, download=False)
    return np.ascontiguousarray(X[:10_000], dtype=np.float32)


def _torch_cnn():
    import torch
    from torch import nn

    return (
        nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, 10),
        )
        .eval()
        .to(torch.float32)
    )


def worker(impl: str, batch: int, synthetic: bool, threads: int) -> dict:
    """One measurement in this process: returns the result as a dict."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    X = _images(synthetic)
    if impl == "xpnn":
        from xpnn.architectures import cnn

        model = cnn((1, 28, 28), 10, seed=0)
        model.predict(X[:8], batch_size=8)  # warm: lazily made state exists before the baseline
        run = lambda: model.predict(X, batch_size=batch)
    else:
        import torch

        torch.set_num_threads(threads)
        net = _torch_cnn()
        Xt = torch.from_numpy(X)

        def run():
            with torch.no_grad():
                return torch.cat([net(Xt[i : i + batch]) for i in range(0, len(Xt), batch)]).numpy()

        with torch.no_grad():
            net(Xt[:8])
    before = _rss_mib()
    start = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - start
    return {
        "impl": impl,
        "batch": batch,
        "peak_over_baseline_mib": round(_peak_mib() - before, 1),
        "baseline_mib": round(before, 1),
        "seconds": round(seconds, 3),
        "outputs": list(out.shape),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="128,256,1024")
    p.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("--worker", nargs=2, metavar=("IMPL", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.synthetic, args.threads)))
        return 0
    results = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for impl in ("xpnn", "torch"):
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                impl,
                str(batch),
                "--threads",
                str(args.threads),
            ] + (["--synthetic"] if args.synthetic else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{impl} batch {batch}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| batch | xpnn predict, peak MiB over baseline | torch no_grad, peak MiB | xpnn s | torch s |")
    print("|---:|---:|---:|---:|---:|")
    for batch in sorted({r["batch"] for r in results}):
        row = {r["impl"]: r for r in results if r["batch"] == batch}
        x, t = row.get("xpnn", {}), row.get("torch", {})
        print(
            f"| {batch} | {x.get('peak_over_baseline_mib', '-')} | {t.get('peak_over_baseline_mib', '-')} | "
            f"{x.get('seconds', '-')} | {t.get('seconds', '-')} |"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"images": 10_000, "synthetic": args.synthetic, "threads": args.threads, "results": results},
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
