"""The benchmark harness still runs: a --quick --synthetic run of the xor and mlp suites
against the NumPy reference loop, its JSON structure, and the markdown report.

Timings are not checked (they are benchmarks, not tests); what is checked is that every
case ran, the numbers are sane, and xpnn and the hand-written loop computed the same
losses (same seed, same initial weights, same shuffling, same math), so a broken
reference or a broken harness cannot pass unnoticed.
"""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "benchmarks", "run.py")
REPORT = os.path.join(ROOT, "benchmarks", "report.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            RUN,
            "--quick",
            "--synthetic",
            "--suite",
            "xor,mlp",
            "--peers",
            "numpy-ref",
            "--repeats",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        data = json.load(f)
    return data, proc.stdout


def test_json_records_the_machine_and_config(results):
    data, _ = results
    assert data["schema"] == 2
    machine = data["machine"]
    for key in ("date", "cpu_model", "cpu_count", "python", "threads", "versions"):
        assert key in machine, key
    assert machine["cpu_count"] == os.cpu_count()
    assert "numpy" in machine["versions"] and "xpnn" in machine["versions"]
    assert data["config"]["quick"] is True and data["config"]["synthetic"] is True
    assert data["config"]["implementations"] == ["xpnn", "numpy-ref"]
    assert data["config"]["devices"] == {"cpu": ["numpy"]}
    assert len(data["load_average"]["before"]) == 3


def test_every_case_and_implementation_ran(results):
    data, _ = results
    rows = {(r["case"], r["impl"]): r for r in data["results"]}
    assert set(rows) == {(c, i) for c in ("mlp-b128", "mlp-b1024", "xor") for i in ("xpnn", "numpy-ref")}
    for (case, impl), r in rows.items():
        assert r["status"] == "ok", (case, impl, r.get("reason"), r.get("traceback"))
        assert r["device"] == "cpu" and r["backend"] == ("numpy" if impl == "xpnn" else None)
        assert r["per_step_min_s"] == pytest.approx(r["min_s"] / r["n_per_run"])
        assert len(r["times_s"]) == 2 and all(t > 0 for t in r["times_s"])
        assert r["min_s"] == min(r["times_s"]) <= r["median_s"] <= r["max_s"] == max(r["times_s"])
        assert r["per_unit_min_s"] == pytest.approx(r["min_s"] * r["unit_scale"])
        assert r["memory"]["peak_rss_mib"] > 0
        assert r["timer"] == "time.perf_counter"
        assert math.isfinite(r["loss"])
        threads = r["threads"]["threadpools"]
        assert any(p["user_api"] == "blas" for p in threads)
    mlp = rows[("mlp-b128", "xpnn")]
    assert mlp["unit"] == "epoch" and mlp["samples_per_run"] == mlp["n_per_run"] * 128
    assert mlp["unit_scale"] == pytest.approx(60_000 / mlp["samples_per_run"])
    assert mlp["train_flops_per_sample"] == 6 * (784 * 128 + 128 * 10)
    assert rows[("xor", "xpnn")]["n_kind"] == "steps" and "tflops" not in rows[("xor", "xpnn")]


def test_xpnn_and_the_reference_loop_compute_the_same_training(results):
    data, _ = results
    rows = {(r["case"], r["impl"]): r for r in data["results"]}
    for case in ("mlp-b128", "mlp-b1024", "xor"):
        assert rows[(case, "xpnn")]["loss"] == pytest.approx(rows[(case, "numpy-ref")]["loss"], rel=1e-4), case


def test_report_prints_a_table_with_ratios(results, tmp_path):
    data, stdout = results
    assert "| case |" in stdout  # run.py prints the report too
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, REPORT, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| xor |")]
    assert len(lines) == 2
    cells = {line.split("|")[3].strip(): line.split("|")[11].strip() for line in lines}  # label -> ÷ loop
    assert cells["numpy-ref"] == "1.00"
    rows = {(r["case"], r["impl"]): r for r in data["results"]}
    expected = rows[("xor", "xpnn")]["min_s"] / rows[("xor", "numpy-ref")]["min_s"]
    assert float(cells["xpnn (numpy)"]) == pytest.approx(expected, abs=0.006)


def test_report_shows_each_xpnn_backend_and_its_per_step_cost(results, monkeypatch):
    """Rows of a second xpnn backend (made up here: no second library is run) get their own
    line, their ratios and the per-step difference to the first backend."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import report

    data, _ = results
    data = json.loads(json.dumps(data))
    xor = next(r for r in data["results"] if r["case"] == "xor" and r["impl"] == "xpnn")
    slow = dict(xor, backend="jax", label="xpnn (jax)", min_s=3 * xor["min_s"], per_step_min_s=None)
    data["results"].append(slow)
    text = report.render(data)
    assert "### CPU: xpnn on numpy, jax" in text
    line = next(line for line in text.splitlines() if line.startswith("| xor |") and "xpnn (jax)" in line)
    ref = next(r for r in data["results"] if r["case"] == "xor" and r["impl"] == "numpy-ref")
    assert float(line.split("|")[11]) == pytest.approx(slow["min_s"] / ref["min_s"], abs=0.006)
    assert "Per-step cost of each xpnn backend over xpnn (numpy)" in text and "xor: jax +" in text


def test_xpnn_runs_on_torch_and_jax_arrays(tmp_path):
    backends = ["numpy"] + [name for name in ("torch", "jax") if _importable(name)]
    if len(backends) == 1:
        pytest.skip("neither torch nor jax installed")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            RUN,
            "--quick",
            "--synthetic",
            "--suite",
            "xor",
            "--peers",
            "numpy-ref",
            "--repeats",
            "1",
            "--backend",
            ",".join(backends),
            "--no-report",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["label"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {f"xpnn ({b})" for b in backends} | {"numpy-ref"}
    for label, r in rows.items():
        assert r["status"] == "ok", (label, r.get("reason"), r.get("traceback"))
        assert r["loss"] == pytest.approx(rows["numpy-ref"]["loss"], rel=1e-4), label


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_bad_arguments_are_named():
    proc = subprocess.run(
        [sys.executable, RUN, "--suite", "nope", "--no-report"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode != 0 and "nope" in proc.stderr and "mlp-wide" in proc.stderr
    proc = subprocess.run(
        [sys.executable, RUN, "--peers", "tensorflow"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2 and "tensorflow" in proc.stderr and "numpy-ref" in proc.stderr
    proc = subprocess.run(
        [sys.executable, RUN, "--backend", "numpy,torch:tpu,mxnet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "'tpu'" in proc.stderr and "mxnet" in proc.stderr
