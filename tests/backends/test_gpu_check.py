"""benchmarks/gpu_check.py without a GPU: its dry run end to end (every check named in the
JSON, the GPU ones skipped with the reason, the CPU ones passed, the markdown written), and
the pieces a real run depends on: pytest's summary and skip lines parsed, the dependency
lists kept equal to pyproject.toml, the ulp measure, the exit code."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")

_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)  # no side effects: it imports nothing of xpnn at module level

GPU_CHECKS = ("gpu-tests", "sync-probe", "benchmarks")
CPU_CHECKS = ("dependencies", "adam-ulps", "save-load", "mixed-precision")


# ---- the dry run, end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "check.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    with open(out) as f:
        return proc, json.load(f), out


def test_dry_run_exits_0_and_names_every_check(dry_run):
    proc, report, _ = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert [c["name"] for c in report["checks"]] == list(gpu_check.CHECKS)
    assert report["dry_run"] is True and report["exit_code"] == 0 and report["verdict"].startswith("PASS")
    for c in report["checks"]:
        assert c["status"] in ("pass", "fail", "skipped") and c["seconds"] >= 0, c


def test_dry_run_skips_every_gpu_check_naming_what_is_missing(dry_run):
    _, report, _ = dry_run
    gpu = report["gpu"]
    checks = {c["name"]: c for c in report["checks"]}
    for name in GPU_CHECKS:
        assert checks[name]["status"] == "skipped", checks[name]
        reason = checks[name]["reason"]
        assert reason.startswith("--dry-run"), reason
        if not gpu["visible"]:  # this machine: the reason says which piece is missing
            assert gpu["reason"] in reason and "no CUDA device" in reason
            assert "cupy" in reason.lower()


def test_dry_run_runs_the_cpu_parts(dry_run):
    _, report, _ = dry_run
    checks = {c["name"]: c for c in report["checks"]}
    for name in CPU_CHECKS:
        assert checks[name]["status"] == "pass", checks[name]
    deps = checks["dependencies"]
    assert deps["missing"] == []
    assert set(deps["versions"]) == {d for d, _ in gpu_check.RUNTIME_DEPS + gpu_check.TEST_DEPS}
    adam = checks["adam-ulps"]
    assert "NumPy" in adam["compared"] and 0 <= max(adam["max_ulps"].values()) <= adam["bound_ulps"]
    assert checks["save-load"]["path"] == "numpy -> numpy -> numpy"
    assert checks["save-load"]["max_abs_diff_on_target"] <= 1e-5


def test_dry_run_writes_the_markdown_beside_the_json_and_prints_it(dry_run):
    proc, _, out = dry_run
    md = out.with_suffix(".md")
    assert md.exists()
    text = md.read_text()
    assert "| check | status | seconds | details |" in text
    for name in gpu_check.CHECKS:
        assert re.search(rf"^\| {name} \| ", text, re.MULTILINE), name
    assert "| gpu-tests | skipped: --dry-run" in text
    assert text.strip() in proc.stdout
    assert not out.with_name("check-bench.json").exists()  # the benchmarks did not run


# ---- pytest's output -----------------------------------------------------------------------------------

QUIET = """\
........s.....F.....
=========================== short test summary info ============================
SKIPPED [2] tests/test_layers.py:41: backend unavailable: cupy: RuntimeError: backend "cupy" needs CuPy
SKIPPED [1] tests/test_onnx.py:12: could not import 'onnxruntime': No module named 'onnxruntime'
FAILED tests/test_model.py::test_fit[cupy] - AssertionError: assert 1 == 2
1 failed, 17 passed, 3 skipped, 703 deselected, 2 warnings in 12.34s
"""

VERBOSE = """\
tests/test_a.py::test_x[cupy] PASSED
================= 1324 passed, 703 deselected in 151.02s (0:02:31) =================
"""

XDIST_ERRORS = """\
created: 8/8 workers
8 workers [1324 items]
....E...
==================================== ERRORS ====================================
___________ ERROR at setup of test_y[torch-cuda] ___________
E   RuntimeError: CUDA error
1320 passed, 1 error, 3 xfailed in 98.70s (0:01:38)
"""

USAGE_ERROR = """\
ERROR: XPNN_REQUIRE_GPU is set, but these GPU backends cannot start here: cupy: RuntimeError: no CUDA GPU
"""


def test_summary_line_counts():
    counts = gpu_check.parse_pytest_counts(QUIET)
    assert counts == {
        "passed": 17,
        "failed": 1,
        "skipped": 3,
        "errors": 0,
        "deselected": 703,
        "xfailed": 0,
        "xpassed": 0,
        "warnings": 2,
        "seconds": 12.34,
    }


def test_summary_line_between_equals_signs_and_with_minutes():
    counts = gpu_check.parse_pytest_counts(VERBOSE)
    assert counts["passed"] == 1324 and counts["skipped"] == 0 and counts["seconds"] == 151.02


def test_singular_error_counts_as_errors():
    counts = gpu_check.parse_pytest_counts(XDIST_ERRORS)
    assert counts["errors"] == 1 and counts["passed"] == 1320 and counts["xfailed"] == 3
    assert "error" not in counts


def test_no_summary_line_is_none():
    assert gpu_check.parse_pytest_counts(USAGE_ERROR) is None
    assert gpu_check.parse_pytest_counts("") is None
    assert gpu_check.parse_pytest_counts("8 workers [1324 items]\n") is None


def test_skip_lines_with_their_counts_and_reasons():
    skips = gpu_check.parse_skip_reasons(QUIET)
    assert skips == [
        {
            "count": 2,
            "where": "tests/test_layers.py:41",
            "reason": 'backend unavailable: cupy: RuntimeError: backend "cupy" needs CuPy',
        },
        {
            "count": 1,
            "where": "tests/test_onnx.py:12",
            "reason": "could not import 'onnxruntime': No module named 'onnxruntime'",
        },
    ]
    assert sum(s["count"] for s in skips) == gpu_check.parse_pytest_counts(QUIET)["skipped"]
    assert gpu_check.parse_skip_reasons(VERBOSE) == []


# ---- the other pieces ------------------------------------------------------------------------------------


def _names(block: str) -> list:
    return [re.split(r"[<>=!~;\[ ]", item, maxsplit=1)[0] for item in re.findall(r'"([^"]+)"', block)]


def test_dependency_lists_follow_pyproject():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    runtime = _names(re.search(r"^dependencies = \[(.*?)\]", text, re.DOTALL | re.MULTILINE).group(1))
    # the list ends at the "]" that ends a line (extras such as "xpnn[tune]" hold brackets too)
    test_extra = _names(re.search(r"^test = \[(.*?)\]$", text, re.DOTALL | re.MULTILINE).group(1))
    assert [d for d, _ in gpu_check.RUNTIME_DEPS] == runtime
    assert {d for d, _ in gpu_check.TEST_DEPS} <= set(test_extra)


def test_missing_wheels_say_which_command_to_run(tmp_path):
    found = gpu_check.install_wheels(["array-api-compat", "array-api-extra"], str(tmp_path))
    assert found["ran"] is False
    command = "pip download --no-deps --only-binary=:all: -d .whl array-api-compat array-api-extra`"
    assert command in found["error"] and "copy its .whl folder here" in found["error"]
    assert "error" not in gpu_check.install_wheels([], str(tmp_path))  # nothing missing: nothing to do


def test_ulp_error_counts_against_the_largest_operand():
    f32 = np.float32
    old = np.array([1e-3, 1.0, -2.0], f32)
    ref = np.array([1e-10, 1.0, -2.0], f32)  # the first update cancels to almost zero
    off = ref + np.spacing(np.float32(1e-3)) * np.array([1, 0, 0], f32)  # one ulp of the operand
    assert gpu_check.ulp_error(off, ref, old) == pytest.approx(1.0, abs=0.01)
    two = np.array([1e-10, np.nextafter(np.nextafter(f32(1.0), f32(2)), f32(2)), -2.0], f32)
    assert gpu_check.ulp_error(two, ref, old) == 2.0
    assert gpu_check.ulp_error(np.array([np.nan, 1, -2], f32), ref, old) == float("inf")


def test_exit_codes():
    def checks(*statuses):
        return [{"name": f"c{i}", "status": s} for i, s in enumerate(statuses)]

    assert gpu_check.verdict(checks("pass", "pass"), dry_run=False)[0] == 0
    assert gpu_check.verdict(checks("pass", "skipped"), dry_run=True)[0] == 0
    assert gpu_check.verdict(checks("pass", "skipped"), dry_run=False)[0] == 2  # no GPU, and not asked to skip
    assert gpu_check.verdict(checks("fail", "skipped"), dry_run=True) == (1, "FAIL (c0)")
