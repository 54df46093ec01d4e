"""Markdown tables from a results JSON written by run.py.

    python benchmarks/report.py results.json [more.json ...]

One table per device class (CPU, GPU): for each case, xpnn on each backend beside the peers,
with min and median time per timed run, the time per optimizer step, the time scaled to one
epoch (or to 10,000 steps for XOR), throughput, achieved TFLOP/s, the same-run ratios of each
row to torch autograd and to the hand-written loop (of the minima: above 1 is slower), and
peak extra host memory, and on the GPU the allocator's peak reserved bytes and peak live
bytes (the same two measures for CuPy and torch: reserved against reserved, live
against live). Below each table, what
each xpnn backend's per-step cost adds over the first one (numpy on the CPU).
"""

from __future__ import annotations

import json
import sys


def _f(x, fmt="{:.3f}", none="–"):
    return none if x is None else fmt.format(x)


def _time(s):
    """Seconds in a readable unit."""
    if s is None:
        return "–"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def _throughput(row) -> str:
    """Samples per second; XOR (4 samples a step) reports steps per second instead."""
    if row["n_kind"] == "steps":
        return f"{row['n_per_run'] / row['min_s']:,.0f} steps/s"
    return f"{row['samples_per_s']:,.0f}"


def _run_label(row) -> str:
    if row["n_kind"] == "steps":
        return f"{row['n_per_run']:,} steps"
    n = row["n_per_run"]
    if row["unit_scale"] == 1.0:
        return f"{n} batches = 1 epoch"
    return f"{n} batches, ×{row['unit_scale']:.2f} per epoch"


def machine_lines(data) -> list:
    m = data.get("machine", {})
    th = m.get("threads", {})
    pools = th.get("threadpools")
    pool_text = (
        ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)" for p in pools)
        if isinstance(pools, list)
        else str(pools)
    )
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    cfg = data.get("config", {})
    load = data.get("load_average", {})
    busy = []
    before, cores = load.get("before"), m.get("cpu_count") or 1
    if before and before[0] > 0.25 * cores:
        busy = [
            f"- **Warning**: load average {before[0]} on {cores} cores when the run began: other processes "
            f"competed for the CPU, and multi-threaded timings (torch's OpenMP above all) suffer most."
        ]
    return busy + [
        f"- Machine: {m.get('cpu_model')}, {m.get('cpu_count')} cores, {m.get('memory_gib')} GiB, "
        f"GPU: {m.get('gpu') or 'none'}; {m.get('platform')}",
        f"- Threads: {cfg.get('threads')} for every BLAS/OpenMP pool and torch; pools: {pool_text}",
        f"- Versions: Python {m.get('python')}, {versions}",
        f"- Date: {m.get('date')}; load average before {load.get('before')}, after {load.get('after')}; "
        f"{'quick run; ' if cfg.get('quick') else ''}{'synthetic data; ' if cfg.get('synthetic') else ''}"
        f"wall time {data.get('wall_seconds', 0):.0f} s",
    ]


def _device(row) -> str:
    """'cpu' or 'gpu'; schema-1 files name only the backend (numpy or cupy) for every row."""
    return row.get("device") or ("cpu" if row.get("backend") == "numpy" else "gpu")


def _label(row) -> str:
    if row.get("label"):
        return row["label"]
    if row["impl"] == "xpnn":  # schema 1
        return f"xpnn ({row['backend']})"
    return "cupy-ref" if row["impl"] == "numpy-ref" and _device(row) == "gpu" else row["impl"]


def _library(row) -> str:
    """The array library a row computes with, to match it with that library's GEMM peak."""
    if row["impl"] == "xpnn":
        return row["backend"].removesuffix("+jit").split(":")[0]
    if row["impl"] == "torch":
        return "torch"
    return "cupy" if _device(row) == "gpu" else "numpy"


def _per_step(row) -> float:
    """Seconds per optimizer step: one per batch (per XOR step), from the min time."""
    return row.get("per_step_min_s") or row["min_s"] / row["n_per_run"]


def _signed(s) -> str:
    return ("+" if s >= 0 else "−") + _time(abs(s))


def render(data) -> str:
    out = ["## xpnn benchmarks", ""] + machine_lines(data) + [""]
    results = data.get("results", [])
    peaks = {
        (g.get("device") or _device(g), g["library"]): g for g in data.get("gemm_peak", []) if g.get("status") == "ok"
    }
    for device in dict.fromkeys(_device(r) for r in results):
        rows = [r for r in results if _device(r) == device]
        loop = "CuPy loop" if device == "gpu" else "NumPy loop"
        mine = list(dict.fromkeys(r["backend"] for r in rows if r["impl"] == "xpnn"))
        out += [
            f"### {device.upper()}: xpnn on {', '.join(mine) or 'nothing'}",
            "",
            f"| case | timed run | implementation | min | median | per step | per epoch* | samples/s** "
            f"| TFLOP/s | ÷ torch | ÷ {loop} | compile*** | extra RSS MiB | GPU reserved MiB | GPU live MiB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        skipped, overhead = [], []
        for case in dict.fromkeys(r["case"] for r in rows):
            group = [r for r in rows if r["case"] == case]
            ok = [r for r in group if r["status"] == "ok"]
            torch = next((r for r in ok if r["impl"] == "torch"), None)
            ref = next((r for r in ok if r["impl"] == "numpy-ref"), None)
            for r in group:
                if r["status"] != "ok":
                    skipped.append(f"- {case} / {_label(r)}: {r['status']}: {r.get('reason')}")
                    continue
                mem = r.get("memory", {})
                out.append(
                    f"| {case} | {_run_label(r)} | {_label(r)} | {_time(r['min_s'])} | {_time(r['median_s'])} "
                    f"| {_time(_per_step(r))} | {_time(r['per_unit_min_s'])} | {_throughput(r)} "
                    f"| {_f(r.get('tflops'), '{:.3f}')} "
                    f"| {_f(r['min_s'] / torch['min_s'] if torch else None, '{:.2f}')} "
                    f"| {_f(r['min_s'] / ref['min_s'] if ref else None, '{:.2f}')} "
                    f"| {_time(r.get('compile_s'))} "
                    f"| {_f(mem.get('extra_rss_mib'), '{:.0f}')} | {_f(mem.get('gpu_reserved_peak_mib'), '{:.0f}')} "
                    f"| {_f(mem.get('gpu_live_peak_mib'), '{:.0f}')} |"
                )
            xs = [r for r in ok if r["impl"] == "xpnn"]
            if len(xs) > 1 and xs[0]["backend"] == mine[0]:  # what each library adds to the first one's step
                overhead.append(
                    f"{case}: "
                    + ", ".join(f"{r['backend']} {_signed(_per_step(r) - _per_step(xs[0]))}" for r in xs[1:])
                )
        if not any(r["status"] == "ok" for r in rows):
            out.append("| (nothing ran on this device: see below) |" + " |" * 14)
        out.append("")
        out.append(
            "\\* per epoch = min time scaled to 60,000 samples (XOR: to 10,000 steps); per step = min time "
            "÷ optimizer steps (one per batch). ÷ torch and ÷ loop divide the row's min by torch autograd's "
            f"and the hand-written {loop}'s from the same run: above 1 the row is slower. "
            "\\*\\* from the min time. \\*\\*\\* compile = the untimed warm-up run's time beyond what its steps "
            "cost in steady state: compilation (jax.jit, torch.compile, Keras's XLA step) and other first-run costs."
        )
        if device == "gpu":
            out.append("")
            out.append(
                "GPU reserved = the most device memory the allocator held (CuPy's pool total_bytes, torch's "
                "max_memory_reserved); GPU live = the most held by arrays at once (torch's "
                "max_memory_allocated; CuPy's counted by a memory hook over the warm-up run only, as the hook "
                "would slow the timed runs)."
            )
        if overhead:
            out.append("")
            out.append(
                f"Per-step cost of each xpnn backend over xpnn ({mine[0]}), same run: "
                + "; ".join(overhead)
                + ". The same xpnn code runs on every backend, so where the arrays are "
                "small (XOR above all, whose arithmetic is negligible) the difference is each library's "
                "per-operation overhead: dispatch, allocation, asynchronous queueing; where they are large "
                "(mlp-wide) it is the speed of its kernels."
            )
        gem = [g for (d, _), g in peaks.items() if d == device]
        if gem:
            out.append("")
            out.append(
                "fp32 GEMM peak measured in the same run: "
                + "; ".join(f"{g['library']} {g['n']}×{g['n']}: {g['tflops']:.3f} TFLOP/s" for g in gem)
            )
            parts = []
            for r in rows:
                g = peaks.get((device, _library(r)))
                if r["suite"] == "mlp-wide" and r["status"] == "ok" and g and r.get("tflops"):
                    parts.append(f"{_label(r)} {100 * r['tflops'] / g['tflops']:.0f}% of {g['library']}'s")
            if parts:
                out.append("mlp-wide achieved / GEMM peak: " + ", ".join(parts) + ".")
        out.append("")
        out.append("TFLOP/s formula: " + data.get("flops_formula", "") + ".")
        if skipped:
            out += ["", "Not run:"] + skipped
        out.append("")
    if data.get("streaming"):
        import streaming

        out += ["### Streaming from disk", "", streaming.render(data["streaming"]), "", streaming.NOTE, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    for path in argv:
        with open(path) as f:
            print(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
