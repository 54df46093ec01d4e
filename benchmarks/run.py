"""Time xpnn's training against PyTorch, Keras 3, scikit-learn and hand-written loops.

    python benchmarks/run.py                       # every suite, CPU, every peer found
    python benchmarks/run.py --suite mlp,xor --peers numpy-ref --repeats 3
    python benchmarks/run.py --backend numpy,torch,jax   # xpnn on NumPy, torch and JAX arrays (CPU)
    python benchmarks/run.py --backend numpy,jax+jit,torch+jit  # "+jit": compile(..., jit=True)
    python benchmarks/run.py --backend cupy,torch:cuda,jax:gpu  # GPU: xpnn three ways, torch on CUDA, CuPy loop
    python benchmarks/run.py --quick               # a smoke run of a few seconds
    python benchmarks/run.py --suite streaming     # one epoch streamed from a uint8 memmap (streaming.py)
    python benchmarks/report.py results.json       # the markdown table again

Backends. ``--backend`` lists the arrays xpnn trains on, each ``name`` or ``name:device``:
numpy; torch, torch:cuda, torch:cuda:1, torch:mps; jax, jax:gpu, jax:gpu:1; cupy, cupy:1.
A bare name is the CPU (cupy: GPU 0); "@dtype" trains xpnn in another model dtype, e.g.
``--backend torch,torch@mixed_bfloat16,jax@mixed_bfloat16`` or ``cupy@mixed_float16`` (mixed
precision: low-precision compute, float32 master weights). xpnn runs once per backend; the peers (torch's own
autograd, scikit-learn, the hand-written loop) run once per device class, CPU or GPU, in
the same interleaved runs as every xpnn backend of that class: CPU peers beside
numpy/torch/jax, and torch on CUDA plus the CuPy loop beside cupy/torch:cuda/jax:gpu.
A backend whose library or device is missing gets a "skipped" row with the reason.

How a case is timed. Every implementation (xpnn and each peer) gets its own worker
process, so that thread pools, allocator state and peak memory do not leak from one
library into another. The workers of a case start together, load the data, build the
model and do an untimed warm-up; then the parent asks them in turn for one timed run
each, round-robin, ``repeats`` times, so slow drift in the machine's load hits every
implementation alike. Min and median are reported, and "compile": the untimed warm-up
run's time beyond what its steps cost in steady state (jax.jit, torch.compile and Keras's
XLA compilation, and other first-run costs), so steady state and compile time are apart; ratios use the minimum, the
least noisy estimate of what the code costs. Every BLAS/OpenMP pool and torch get the same
thread count (``--threads``, default os.cpu_count()); JAX's XLA thread pool is sized by XLA
and not limited. Queued device work (and JAX's asynchronous dispatch, on the CPU too) is
waited for before a clock stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402

PREFIX = "@@xpnn-bench "  # marks protocol lines in a worker's stdout (libraries may print too)
SCHEMA = 2  # 2: xpnn rows per backend ("backend"), every row with its "device" class


# ---- command line -----------------------------------------------------------------------------


def parse_args(argv=None):
    from peers import PEERS

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Results: JSON (--out) and a markdown table on stdout; progress on stderr.",
    )
    p.add_argument(
        "--suite",
        default=",".join([*harness.SUITES, "streaming"]),
        help=f"comma-separated suites (default: all): {','.join(harness.SUITES)},streaming",
    )
    p.add_argument(
        "--backend",
        default="numpy",
        help="comma-separated xpnn backends, name or name:device (default numpy): numpy, torch, jax, "
        "cupy, torch:cuda, jax:gpu, ... (a bare name is the CPU; cupy is GPU 0)",
    )
    p.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated peers (default: all; missing ones are skipped): {','.join(PEERS)}; "
        f"'none' for xpnn alone",
    )
    p.add_argument("--out", default="results.json", help="where to write the JSON (default results.json)")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per implementation (default: per case, 3-5; 2 with --quick)",
    )
    p.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP/torch threads (default os.cpu_count())")
    p.add_argument("--quick", action="store_true", help="a few batches per case: a smoke run of seconds")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="random data shaped like Fashion-MNIST instead of the data set (timings barely change)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-report", action="store_true", help="do not print the markdown table")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    def split(text):
        return [t.strip() for t in text.split(",") if t.strip()]

    args.suites = split(args.suite)
    args.backends = list(dict.fromkeys(split(args.backend)))
    bad = [f"{b}: {harness.backend_error(b)}" for b in args.backends if harness.backend_error(b)]
    if bad:
        p.error(
            f"--backend: {'; '.join(bad)}; choose from {', '.join(harness.BACKEND_DEVICES)}, "
            f"optionally with :device (torch:cuda, jax:gpu) and @dtype (torch@mixed_bfloat16)"
        )
    args.peer_list = [] if args.peers.strip() == "none" else split(args.peers)
    bad = [x for x in args.peer_list if x not in PEERS]
    if bad:
        p.error(f"--peers: unknown peer(s) {bad}; choose from {','.join(PEERS)} (or none)")
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats must be >= 1, found {args.repeats}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, found {args.threads}")
    return args


# ---- the worker: one implementation of one case -----------------------------------------------


def _reply(obj) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_main() -> int:
    """Read a job (one JSON line), set up, warm up, then time one run per 'run' line."""
    job = json.loads(sys.stdin.readline())
    try:
        if job["kind"] == "gemm":
            _reply(gemm_unavailable(job) or gemm_peak(job))
            return 0
        _worker_case(job)
    except Exception as exc:
        _reply(
            {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        )
    return 0


def _worker_case(job) -> None:
    from peers import IMPLS

    impl = IMPLS[job["impl"]]
    case = next(c for c in harness.CASES if c.name == job["case"])
    target, threads = job["target"], job["threads"]
    reason = impl.unavailable(target) or impl.supports(case)
    if reason:
        _reply({"status": "skipped", "reason": reason})
        return
    import numpy as np
    import numpy.random  # noqa: F401  (library code loaded before the memory baseline)

    X = y = None
    if job.get("data"):
        X, y = np.load(job["data"] + "/X.npy"), np.load(job["data"] + "/y.npy")
    harness.limit_threads(threads)
    base_rss = harness.rss_now()  # data loaded: what follows is the model and its training
    runner = impl.build(case, X, y, target, job["seed"])
    limiter = harness.limit_threads(threads)  # again: building may have loaded another BLAS
    gpu = harness.GpuMemory(runner.timer)
    gpu.reset()
    clear = harness.reset_peak_rss()
    with gpu.live_tracking():  # CuPy's live-bytes hook costs time: the warm-up only, never a timed run
        warm = harness.time_once(runner, job["warmup"])
    _reply({"status": "ready", "warmup_s": warm["seconds"]})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        _reply(harness.time_once(runner, job["n"]))
    peak = harness.peak_rss()
    memory = {
        "peak_rss_mib": peak / 2**20,
        "rss_before_model_mib": None if base_rss is None else base_rss / 2**20,
        "peak_rss_covers": "warm-up and timed runs" if clear else "whole process (clear_refs unavailable)",
    }
    if base_rss is not None:
        memory["extra_rss_mib"] = (peak - base_rss) / 2**20
    memory.update(gpu.read())
    _reply(
        {
            "status": "ok",
            "loss": runner.loss(),
            "memory": memory,
            "threads": harness.thread_info(),
            "timer": "time.perf_counter" if runner.timer == "cpu" else "CUDA events",
        }
    )
    del limiter


def gemm_unavailable(job) -> dict | None:
    """A 'skipped' answer when the library or its device is missing here."""
    from peers import numpy_ref, torch_peer, xpnn_runner

    lib, device = job["library"], job["device"]
    if lib == "torch":
        reason = torch_peer.unavailable(device)
    elif lib == "jax":
        reason = xpnn_runner.unavailable("jax:gpu" if device == "gpu" else "jax")
    else:
        reason = numpy_ref.unavailable(device)
    return {"status": "skipped", "reason": reason} if reason else None


def gemm_peak(job) -> dict:
    """Best fp32 matmul rate of one library on the device class: 2 n^3 FLOPs per product."""
    lib, n, repeats, gpu = job["library"], job["n"], job["repeats"], job["device"] == "gpu"
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    if lib == "torch":
        import torch

        torch.set_num_threads(job["threads"])
        dev = "cuda" if gpu else "cpu"
        torch.backends.cuda.matmul.allow_tf32 = False
        A = torch.from_numpy(a).to(dev)
        out = torch.empty_like(A)

        def mm():
            torch.matmul(A, A, out=out)
            if gpu:
                torch.cuda.synchronize()
    elif lib == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "float32")  # no TF32, as the others
        A = jax.device_put(a, jax.devices("gpu" if gpu else "cpu")[0])

        def mm():
            (A @ A).block_until_ready()  # no out=: JAX arrays are immutable
    else:
        xp = np
        if lib == "cupy":
            import cupy as xp
        A = xp.asarray(a)
        out = xp.empty_like(A)

        def mm():
            xp.matmul(A, A, out=out)
            if lib == "cupy":
                xp.cuda.get_current_stream().synchronize()

    harness.limit_threads(job["threads"])
    mm()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm()
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "status": "ok",
        "library": lib,
        "device": job["device"],
        "n": n,
        "min_s": best,
        "tflops": 2 * n**3 / best / 1e12,
    }


# ---- the parent: start workers, interleave their timed runs ----------------------------------


class Worker:
    """A worker process and its line protocol."""

    def __init__(self, job: dict):
        self.job = job
        # JAX would otherwise take 75% of the GPU's memory up front, starving the other workers
        env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            cwd=os.getcwd(),
        )
        self.send(json.dumps(job))

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def recv(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                return {"status": "error", "reason": f"worker exited with code {code} without answering"}
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
            sys.stderr.write(line)  # a library printed something: pass it on

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_case(case, device: str, backends: list, peers: list, args, data_dir) -> list:
    """One case on one device class: xpnn on each of its backends and every peer once, set up
    side by side, then timed round-robin so that slow drift in the machine's load hits all alike."""
    p = harness.plan(case, device, args.quick)
    repeats = args.repeats or (2 if args.quick else case.repeats)
    threads = args.threads or os.cpu_count()
    job = {
        "kind": "case",
        "case": case.name,
        "device": device,
        "n": p["n"],
        "warmup": p["warmup"],
        "threads": threads,
        "seed": args.seed,
        "data": None if case.kind == "xor" else data_dir,
    }
    # label -> (implementation, where it runs): xpnn per backend, each peer per device class
    entries = {f"xpnn ({b})": ("xpnn", b) for b in backends}
    entries.update({name: (name, device) for name in peers})
    labels = list(entries)
    workers = {label: Worker(dict(job, impl=impl, target=target)) for label, (impl, target) in entries.items()}
    answers = {label: w.recv() for label, w in workers.items()}
    warmups = {label: answers[label].get("warmup_s") for label in labels}  # the untimed first run
    live = [label for label in labels if answers[label].get("status") == "ready"]
    times = {label: [] for label in live}
    walls = {label: [] for label in live}
    for r in range(repeats):
        order = live[r % len(live) :] + live[: r % len(live)] if live else []
        for label in order:  # round-robin, starting one further each repeat
            time.sleep(0.02 if args.quick else 0.1)  # let the last worker's spinning BLAS threads go idle
            workers[label].send("run")
            t = workers[label].recv()
            if "seconds" not in t:
                answers[label] = t
                live.remove(label)
                break
            times[label].append(t["seconds"])
            walls[label].append(t["wall_seconds"])
    for label in live:
        workers[label].send("done")
        answers[label] = workers[label].recv()
    for w in workers.values():
        w.close()

    flops = harness.train_flops_per_sample(case)
    rows = []
    for label, (impl, target) in entries.items():
        ans = answers[label]
        row = {
            "case": case.name,
            "suite": case.suite,
            "description": case.description,
            "device": device,
            "impl": impl,
            "backend": target if impl == "xpnn" else None,
            "label": label,
            "status": ans.get("status", "error"),
            "batch_size": case.batch_size,
            "n_per_run": p["n"],
            "n_kind": "steps" if case.kind == "xor" else "batches",
            "samples_per_run": p["samples_per_run"],
            "unit": p["unit"],
            "unit_scale": p["unit_scale"],
            "repeats": repeats,
            "warmup": p["warmup"],
        }
        if row["status"] != "ok":
            row["reason"] = ans.get("reason", "unknown")
            if "traceback" in ans:
                row["traceback"] = ans["traceback"]
            rows.append(row)
            log(f"  {case.name:10s} {device:4s} {label:20s} {row['status']}: {row['reason']}")
            continue
        ts = times[label]
        s = harness.summarize(ts)
        # one optimizer step per batch (per XOR step): the time a step costs, dispatch included
        row.update(
            times_s=ts,
            wall_times_s=walls[label],
            **s,
            per_step_min_s=s["min_s"] / p["n"],
            per_unit_min_s=s["min_s"] * p["unit_scale"],
            per_unit_median_s=s["median_s"] * p["unit_scale"],
            samples_per_s=p["samples_per_run"] / s["min_s"],
            loss=ans["loss"],
            memory=ans["memory"],
            threads=ans["threads"],
            timer=ans["timer"],
        )
        if warmups[label] is not None:
            # the warm-up run's time beyond what its steps cost in steady state: compilation
            # (jax.jit, torch.compile, Keras's XLA step) and other one-time costs
            row["warmup_s"] = warmups[label]
            row["compile_s"] = max(0.0, warmups[label] - p["warmup"] * row["per_step_min_s"])
        if flops:
            row["train_flops_per_sample"] = flops
            row["tflops"] = flops * p["samples_per_run"] / s["min_s"] / 1e12
        rows.append(row)
        log(
            f"  {case.name:10s} {device:4s} {label:20s} min {s['min_s']:.4f}s median {s['median_s']:.4f}s "
            f"({row['per_unit_min_s']:.3f}s per {p['unit']}, {row['per_step_min_s'] * 1e6:.0f} µs per step) "
            f"compile {row.get('compile_s', float('nan')):.2f}s "
            f"loss {ans['loss']:.4f} peak+{ans['memory'].get('extra_rss_mib', float('nan')):.0f} MiB"
        )
    return rows


def gemm_jobs(device: str, backends: list, peers: list, args) -> list:
    """The fp32 GEMM peak of every library that computes on this device class in this run."""
    libs = [harness.split_backend(b)[0] for b in backends]
    if "numpy-ref" in peers:
        libs.append("cupy" if device == "gpu" else "numpy")
    if "sklearn" in peers and device == "cpu":
        libs.append("numpy")
    if "torch" in peers:
        libs.append("torch")
    libs = list(dict.fromkeys(libs))
    if args.quick:
        n, repeats = (2048 if device == "gpu" else 512), 2
    else:
        n, repeats = (8192 if device == "gpu" else 2048), 5
    out = []
    for lib in libs:
        w = Worker(
            {
                "kind": "gemm",
                "library": lib,
                "device": device,
                "n": n,
                "repeats": repeats,
                "threads": args.threads or os.cpu_count(),
            }
        )
        ans = w.recv()
        w.close()
        ans.setdefault("library", lib)
        ans.setdefault("device", device)
        out.append(ans)
        if ans.get("status") == "ok":
            log(f"  gemm       {device:4s} {lib:20s} {n}x{n} fp32: {ans['tflops']:.3f} TFLOP/s")
        else:
            log(f"  gemm       {device:4s} {lib:20s} {ans.get('status')}: {ans.get('reason')}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main()
    cases = harness.cases_for([s for s in args.suites if s != "streaming"])
    impls = ["xpnn"] + args.peer_list
    started = time.perf_counter()
    load_before = harness.loadavg()
    devices: dict = {}  # device class -> its xpnn backends; the peers run once per class
    for b in args.backends:
        devices.setdefault(harness.device_class(b), []).append(b)
    log(
        f"xpnn benchmarks: suites {args.suites}, backends {devices}, implementations {impls}, "
        f"load average {load_before}"
    )
    uses_torch = "torch" in args.peer_list or any(harness.split_backend(b)[0] == "torch" for b in args.backends)
    machine = harness.machine_info(load_torch=uses_torch)
    threads = args.threads or os.cpu_count()
    results, gemm = [], []
    with tempfile.TemporaryDirectory(prefix="xpnn-bench-") as data_dir:
        if any(c.kind != "xor" for c in cases):  # one copy of the data, loaded by every worker
            import numpy as np

            need = max(
                harness.plan(c, d, args.quick)["samples_per_run"] for c in cases if c.kind != "xor" for d in devices
            )
            X, y = harness.load_data(args.synthetic, need, args.seed)
            np.save(os.path.join(data_dir, "X.npy"), X)
            np.save(os.path.join(data_dir, "y.npy"), y)
            del X, y
        for device, backends in devices.items():
            if any(c.suite == "mlp-wide" for c in cases):
                gemm += gemm_jobs(device, backends, args.peer_list, args)
            for case in cases:
                results += run_case(case, device, backends, args.peer_list, args, data_dir)
    out = {
        "schema": SCHEMA,
        "command": ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)],
        "config": {
            "suites": args.suites,
            "backends": args.backends,
            "devices": devices,
            "implementations": impls,
            "repeats": args.repeats,
            "threads": threads,
            "quick": args.quick,
            "synthetic": args.synthetic,
            "seed": args.seed,
            "isolation": "one worker process per implementation and case",
        },
        "machine": machine,
        "load_average": {"before": load_before, "after": harness.loadavg()},
        "wall_seconds": time.perf_counter() - started,
        "flops_formula": "training FLOPs per sample ~= 6 x multiply-adds of the forward pass "
        "(2 forward + 4 backward for dX and dW); MLP: 6 x number of weights",
        "gemm_peak": gemm,
        "results": results,
    }
    if "streaming" in args.suites:  # its own processes and data file: see streaming.py
        import streaming

        log("streaming: one epoch of the 784-128-10 MLP from a uint8 memmap, each row its own process")
        samples = 20_000 if args.quick else streaming.SAMPLES
        out["streaming"] = streaming.run(
            samples, args.repeats or (1 if args.quick else 3), args.threads, args.seed, log
        )
        out["wall_seconds"] = time.perf_counter() - started
    with open(args.out, "w") as f:
        f.write(harness.dumps(out))
    log(f"wrote {args.out} in {out['wall_seconds']:.0f}s (load average after: {out['load_average']['after']})")
    if not args.no_report:
        import report

        print(report.render(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
