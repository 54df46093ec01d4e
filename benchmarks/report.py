"""Markdown tables from a results JSON written by run.py.

    python benchmarks/report.py results.json [more.json ...]

One table per backend: each case's implementations with min and median time per timed run,
the time scaled to one epoch (or to 10,000 steps for XOR), throughput, achieved TFLOP/s,
the ratio xpnn / implementation (of the minima: lower is better for xpnn, 1.00 is a tie),
and peak extra host memory (plus GPU pool peak on the GPU).
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
    pool_text = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                          for p in pools) if isinstance(pools, list) else str(pools)
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    cfg = data.get("config", {})
    load = data.get("load_average", {})
    busy = []
    before, cores = load.get("before"), m.get("cpu_count") or 1
    if before and before[0] > 0.25 * cores:
        busy = [f"- **Warning**: load average {before[0]} on {cores} cores when the run began: other processes "
                f"competed for the CPU, and multi-threaded timings (torch's OpenMP above all) suffer most."]
    return busy + [
        f"- Machine: {m.get('cpu_model')}, {m.get('cpu_count')} cores, {m.get('memory_gib')} GiB, "
        f"GPU: {m.get('gpu') or 'none'}; {m.get('platform')}",
        f"- Threads: {cfg.get('threads')} for every BLAS/OpenMP pool and torch; pools: {pool_text}",
        f"- Versions: Python {m.get('python')}, {versions}",
        f"- Date: {m.get('date')}; load average before {load.get('before')}, after {load.get('after')}; "
        f"{'quick run; ' if cfg.get('quick') else ''}{'synthetic data; ' if cfg.get('synthetic') else ''}"
        f"wall time {data.get('wall_seconds', 0):.0f} s",
    ]


def render(data) -> str:
    out = ["## xpnn benchmarks", ""] + machine_lines(data) + [""]
    results = data.get("results", [])
    peaks = {(g["backend"], g["library"]): g for g in data.get("gemm_peak", []) if g.get("status") == "ok"}
    backends = list(dict.fromkeys(r["backend"] for r in results))
    for backend in backends:
        rows = [r for r in results if r["backend"] == backend]
        device = "CPU" if backend == "numpy" else "GPU"
        out += [f"### backend {backend} ({device})", "",
                "| case | timed run | implementation | min | median | per epoch* | samples/s** | TFLOP/s "
                "| xpnn ÷ impl | extra RSS MiB | GPU peak MiB |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        skipped = []
        for case in dict.fromkeys(r["case"] for r in rows):
            group = [r for r in rows if r["case"] == case]
            mine = next((r for r in group if r["impl"] == "xpnn" and r["status"] == "ok"), None)
            for r in group:
                if r["status"] != "ok":
                    skipped.append(f"- {case} / {r['impl']}: {r['status']}: {r.get('reason')}")
                    continue
                ratio = mine["min_s"] / r["min_s"] if mine else None
                mem = r.get("memory", {})
                label = "cupy-ref" if r["impl"] == "numpy-ref" and backend == "cupy" else r["impl"]
                out.append(
                    f"| {case} | {_run_label(r)} | {label} | {_time(r['min_s'])} | {_time(r['median_s'])} "
                    f"| {_time(r['per_unit_min_s'])} | {_throughput(r)} "
                    f"| {_f(r.get('tflops'), '{:.3f}')} | {_f(ratio, '{:.2f}')} "
                    f"| {_f(mem.get('extra_rss_mib'), '{:.0f}')} | {_f(mem.get('gpu_peak_mib'), '{:.0f}')} |")
        if not any(r["status"] == "ok" for r in rows):
            out.append("| (nothing ran on this backend: see below) | | | | | | | | | | |")
        out.append("")
        out.append("\\* per epoch = min time scaled to 60,000 samples (XOR: to 10,000 steps). "
                   "xpnn ÷ impl compares minima: below 1 xpnn is faster. "
                   "\\*\\* from the min time.")
        gem = [g for (b, _), g in peaks.items() if b == backend]
        if gem:
            out.append("")
            out.append("fp32 GEMM peak measured in the same run: " + "; ".join(
                f"{g['library']} {g['n']}×{g['n']}: {g['tflops']:.3f} TFLOP/s" for g in gem))
            own = {"xpnn": "numpy", "numpy-ref": "numpy", "sklearn": "numpy", "torch": "torch"}
            if backend == "cupy":
                own.update(xpnn="cupy", **{"numpy-ref": "cupy"})
            wide = [r for r in rows if r["suite"] == "mlp-wide" and r["status"] == "ok"]
            parts = []
            for r in wide:
                g = peaks.get((backend, own.get(r["impl"], "")))
                if g and r.get("tflops"):
                    parts.append(f"{r['impl']} {100 * r['tflops'] / g['tflops']:.0f}% of {g['library']}'s")
            if parts:
                out.append("mlp-wide achieved / GEMM peak: " + ", ".join(parts) + ".")
        out.append("")
        out.append("TFLOP/s formula: " + data.get("flops_formula", "") + ".")
        if skipped:
            out += ["", "Not run:"] + skipped
        out.append("")
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
