"""One command that checks xpnn on a CUDA GPU and writes what it found to one JSON and one markdown table.

On any machine with a CUDA GPU, CuPy (``pip install "xpnn[cuda12]"``, or ``[cuda13]``) and
xpnn's test dependencies (``pip install -e ".[test]"``), from the repository root:

    python benchmarks/gpu_check.py --out gpu-check.json

Its two long steps stop at time limits (``--tests-timeout``, ``--bench-timeout``).
A GPU machine without access to a package index can take the pure-Python dependencies it
lacks as wheels: download them on a machine with network into the repository's ``.whl/``
folder (ignored by git), copy the repository to the GPU machine, and pass ``--install``,
which installs them with pip, offline, into a folder of their own (``/tmp/site``) put first
on the path; the system's packages are not touched:

    pip download --no-deps --only-binary=:all: -d .whl array-api-compat array-api-extra array-api-strict threadpoolctl
    python benchmarks/gpu_check.py --install --out gpu-check.json

The dependencies check names the ``pip download`` line for whatever it finds missing (for a
package with compiled code, such as NumPy, add the GPU machine's ``--platform`` and
``--python-version`` to it). The
JSON, its markdown table (.md), the benchmark results (-bench.json) and the GPU suite's log
(-pytest.log) are written beside each other; keep them in benchmarks/results/ under the
run's date.

The checks, each one function that returns {"name", "status", "seconds", ...}:

    dependencies  xpnn's runtime and test dependencies importable (after installing .whl/)
    gpu-tests     pytest -m gpu with XPNN_REQUIRE_GPU=1: any failure or skip fails the check
    sync-probe    one training step (MLP with Dropout, clipping, Adam) on CuPy under
                  cupyx.allow_synchronize(False): no device->host sync inside a step
    adam-ulps     the fused CuPy Adam kernel against the generic formula, in float32 ulps
    save-load     a model trained on NumPy, loaded and predicted on CuPy, saved there and
                  loaded on NumPy again: predictions within 1e-5
    mixed-precision  the digits MLP in mixed_float16 on CuPy and mixed_bfloat16 on torch CUDA
                  against float32 on the same backend: test accuracy within 1 point, weights
                  finite, the loss scale reported
    benchmarks    benchmarks/run.py --backend cupy,cupy@mixed_float16,torch:cuda,torch:cuda@mixed_bfloat16,
                  cupy+jit,torch:cuda+jit,jax:gpu+jit --peers torch,numpy-ref,keras-jax --quick --synthetic:
                  float32 and mixed-precision rows, and compiled steps (a CUDA graph on CuPy,
                  torch.compile, jax.jit) beside torch, Keras on JAX and the CuPy loop (the torch
                  and JAX jit rows and Keras need them with CUDA: where one is missing its rows say
                  so, not a failure)

``--dry-run`` (and any run where no CUDA device is visible) reports every GPU part as
"skipped: <reason>" and still runs the CPU parts: the dependency report, the Adam
comparison on NumPy (its fast path against the generic formula: a smoke test of the
comparison itself), the save/load round trip NumPy -> NumPy and mixed_float16 on NumPy.
Exit code: 0 when every
check passed, or, with --dry-run, when every check that ran passed; 1 when a check failed;
2 when nothing failed but GPU checks were skipped without --dry-run (no GPU found).

Nothing here imports xpnn or its dependencies at module level: they may only become
importable after the install step.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
WHEELS = os.path.join(ROOT, ".whl")
SITE = "/tmp/site"  # where --install puts the wheels: a folder of their own (site-packages may be read-only)

# (distribution, module): pyproject.toml's [project].dependencies, then the test tools the GPU
# suite needs (tests/backends/test_gpu_check.py checks these lists against pyproject.toml)
RUNTIME_DEPS = [
    ("numpy", "numpy"),
    ("array-api-compat", "array_api_compat"),
    ("array-api-extra", "array_api_extra"),
    ("safetensors", "safetensors"),
    ("tqdm", "tqdm"),
    ("threadpoolctl", "threadpoolctl"),
]
TEST_DEPS = [
    ("pytest", "pytest"),
    ("array-api-strict", "array_api_strict"),
    ("hypothesis", "hypothesis"),
    ("pytest-xdist", "xdist"),
]
# reported, never required: the GPU libraries and the optional extras the GPU image should have
EXTRAS = [
    ("cupy-cuda13x", "cupy"),
    ("cupy-cuda12x", "cupy"),
    ("torch", "torch"),
    ("onnxruntime", "onnxruntime"),
    ("mpi4py", "mpi4py"),
]
# on a machine with network: the pure-Python wheels of what is missing, for --install to install offline
DOWNLOAD_WHEELS = "pip download --no-deps --only-binary=:all: -d .whl"

CHECKS = ("dependencies", "gpu-tests", "sync-probe", "adam-ulps", "save-load", "mixed-precision", "benchmarks")
MIXED_MAX_DROP = 0.01  # mixed precision may cost at most 1 point of test accuracy against float32
ADAM_MAX_ULPS = 8  # see check_adam_ulps: a few roundings of the step apart, never a different formula
ROUND_TRIP_TOL = 1e-5


# ---- install: make the carried wheels and src/ importable -------------------------------------------


def missing_modules(deps) -> list:
    """The distributions among ``deps`` whose module cannot be found (nothing is imported)."""
    return [dist for dist, module in deps if importlib.util.find_spec(module) is None]


def use_paths(paths) -> None:
    """Put ``paths`` first on sys.path here and on PYTHONPATH for every subprocess (pytest,
    benchmarks/run.py and its workers)."""
    for p in reversed(paths):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *old])
    importlib.invalidate_caches()


def wheels_command(missing) -> str:
    """The command, for a machine with network, that puts the wheels for ``missing`` into .whl/."""
    return " ".join([DOWNLOAD_WHEELS, *missing])


def install_wheels(missing, folder: str = WHEELS) -> dict:
    """pip-install every wheel of ``folder`` into SITE (offline, no dependency resolution)."""
    wheels = sorted(glob.glob(os.path.join(folder, "*.whl")))
    if not wheels:
        out = {"ran": False, "note": f"no wheels in {folder}"}
        if missing:  # harmless when everything is installed already
            out["error"] = (
                f"no wheels in {folder}: on a machine with network run `{wheels_command(missing)}` "
                f"in the repository, then copy its .whl folder here"
            )
        return out
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        SITE,
        *wheels,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = {
        "ran": True,
        "wheels": [os.path.basename(w) for w in wheels],
        "target": SITE,
        "rc": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if proc.returncode != 0:
        out["error"] = f"pip install failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}"
    return out


# ---- the GPU --------------------------------------------------------------------------------------------


def find_gpu() -> tuple:
    """``(reason, info)``: reason is None when CuPy sees a CUDA device, else why not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CuPy whose CUDA libraries are missing
        return f"no CUDA device: cupy not importable ({exc})", {}
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no CUDA device: cupy.cuda.runtime.getDeviceCount() failed ({type(exc).__name__}: {exc})", {}
    if count == 0:
        return "no CUDA device: CuPy sees 0 devices", {}
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return None, {
        "devices": count,
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
    }


# ---- running a subprocess with a deadline --------------------------------------------------------------


def run_command(cmd, timeout, env=None) -> dict:
    """Run ``cmd`` in the repo root; {"rc", "output" (stdout+stderr), "seconds", "timed_out"}.
    Its own process group, so that a timeout also ends what it started (xdist's workers)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        timed_out = True
    return {
        "rc": proc.returncode,
        "output": output or "",
        "seconds": round(time.perf_counter() - t0, 2),
        "timed_out": timed_out,
    }


# ---- pytest's output --------------------------------------------------------------------------------------

_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?|rerun)\b")
_SUMMARY = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in ([\d.]+)s")
_SKIP_LINE = re.compile(r"^SKIPPED \[(\d+)\] (.+?): (.*)$")


def parse_pytest_counts(text: str) -> dict | None:
    """The counts of pytest's final summary line ("3 passed, 2 skipped, 700 deselected in
    9.1s"), with "error"/"warning" made plural and the seconds; None if there is no such line."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        found = _SUMMARY.match(line)
        if not found:
            continue
        counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "deselected": 0, "xfailed": 0, "xpassed": 0}
        for n, word in _COUNT.findall(line):
            word = {"error": "errors", "warning": "warnings"}.get(word, word)
            counts[word] = counts.get(word, 0) + int(n)
        counts["seconds"] = float(found.group(1))
        return counts
    return None


def parse_skip_reasons(text: str) -> list:
    """The ``-rs`` lines ("SKIPPED [2] tests/test_x.py:10: reason") as {"count", "where", "reason"}."""
    out = []
    for line in text.splitlines():
        found = _SKIP_LINE.match(line.strip())
        if found:
            out.append({"count": int(found.group(1)), "where": found.group(2), "reason": found.group(3)})
    return out


# ---- the checks --------------------------------------------------------------------------------------------


def check_dependencies(install: dict | None) -> dict:
    """Import each runtime and test dependency; report versions, and the missing ones by name."""
    from importlib import metadata

    found, missing = {}, []
    for dist, module in RUNTIME_DEPS + TEST_DEPS:
        try:
            importlib.import_module(module)
            found[dist] = metadata.version(dist)
        except Exception as exc:  # not installed, or installed but broken
            missing.append(dist)
            found[dist] = f"missing ({type(exc).__name__}: {exc})"
    extras = {}
    for dist, module in EXTRAS:
        try:
            extras[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist.startswith("cupy") and importlib.util.find_spec(module) is not None:
                continue  # the other CuPy wheel
            extras[dist] = None
    result = {
        "name": "dependencies",
        "status": "fail" if missing else "pass",
        "versions": found,
        "missing": missing,
        "extras": extras,
        "install": install,
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }
    have = ", ".join(f"{k} {v}" for k, v in extras.items() if v) or "none"
    if missing:
        result["reason"] = (
            f"missing: {', '.join(missing)}; pip install them, or (offline) run `{wheels_command(missing)}` "
            f"on a machine with network, copy the .whl folder here and pass --install"
        )
        result["summary"] = result["reason"]
    else:
        result["summary"] = f"all {len(found)} importable; GPU/extras: {have}"
    if install and install.get("error"):  # it names the command already
        result["status"] = "fail"
        result["reason"] = install["error"] + (f"; missing: {', '.join(missing)}" if missing else "")
        result["summary"] = result["reason"]
    return result


def check_gpu_tests(log_path: str, timeout: float, workers: int) -> dict:
    """The gpu-marked suite with XPNN_REQUIRE_GPU=1 (a GPU backend that cannot start is an
    error); passes only with no failure, no error and no skip."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider"]
    if workers > 1 and importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(workers)]
    env = dict(os.environ, XPNN_REQUIRE_GPU="1")
    run = run_command(cmd, timeout, env)
    with open(log_path, "w") as f:
        f.write(f"$ XPNN_REQUIRE_GPU=1 {' '.join(cmd)}\n{run['output']}")
    counts = parse_pytest_counts(run["output"])
    skips = parse_skip_reasons(run["output"])
    result = {
        "name": "gpu-tests",
        "command": " ".join(cmd),
        "env": {"XPNN_REQUIRE_GPU": "1"},
        "rc": run["rc"],
        "wall_seconds": run["seconds"],
        "counts": counts,
        "skips": skips,
        "log": log_path,
        "output_tail": run["output"][-3000:],
    }
    if run["timed_out"]:
        result.update(status="fail", reason=f"timed out after {timeout:.0f} s (see {os.path.basename(log_path)})")
    elif counts is None:
        last = run["output"].strip().splitlines()[-1:] or ["no output"]
        result.update(status="fail", reason=f"no pytest summary line (exit {run['rc']}): {last[0][-500:]}")
    else:
        bad = {k: counts[k] for k in ("failed", "errors", "skipped") if counts[k]}
        if bad or run["rc"] != 0 or counts["passed"] == 0:
            why = ", ".join(f"{v} {k}" for k, v in bad.items()) or f"exit {run['rc']}, {counts['passed']} passed"
            if skips:
                why += "; skipped: " + "; ".join(f"[{s['count']}] {s['reason']}" for s in skips[:3])
            result.update(status="fail", reason=why)
        else:
            result["status"] = "pass"
    if counts:
        result["summary"] = (
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors, "
            f"{counts['skipped']} skipped in {counts['seconds']:.0f} s"
        )
        if result["status"] == "fail":
            result["summary"] += f" ({result['reason']})"
    return result


def _mlp(backend, xpnn):
    from xpnn.layers import Dense, Dropout, ReLU

    return xpnn.Sequential(
        [Dense(32, 64), ReLU(), Dropout(0.2), Dense(64, 64), ReLU(), Dense(64, 5)], backend=backend, seed=0
    )


def check_sync_probe() -> dict:
    """One training step on CuPy under cupyx.allow_synchronize(False), which raises on any
    device->host sync (``.get()``, ``float(x)``, a device synchronize): the Trainer's inner
    step (forward, loss, backward, gradient clipping, Adam) must queue work and never wait."""
    import warnings

    import cupy
    import cupyx
    import numpy as np

    import xpnn
    from xpnn.training.data import no_label_check

    model = _mlp("cupy", xpnn)
    model.compile("softmax_cross_entropy", "adam")
    b = model.backend
    rng = np.random.default_rng(0)
    X = b.asarray(rng.standard_normal((256, 32), dtype=np.float32))
    y = b.asarray(rng.integers(0, 5, 256))
    loss_fn = model.loss
    labels = no_label_check(loss_fn)  # fit checks the labels once per fit (a sync), never per step

    def step():  # as Trainer._epoch, with compile(clip_norm=1.0)'s hook
        out = model.run(X, True, {})
        loss = loss_fn.forward(out, y, **labels)
        model.backward(loss_fn.backward(), need_dX=False)
        params, _ = xpnn.clip_grad_norm(model.parameters(), 1.0)
        model.optimizer.step(params)
        return loss

    first = b.to_float(step())  # warm-up: kernels compiled, optimizer state made
    cupy.cuda.Device().synchronize()
    result = {"name": "sync-probe", "model": repr(model), "warmup_loss": first}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # allow_synchronize is marked experimental/deprecated
            with cupyx.allow_synchronize(False):
                loss = step()
    except Exception as exc:
        result.update(status="fail", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
        synced = isinstance(exc, getattr(cupyx, "DeviceSynchronized", ()))
        what = "a device->host sync inside the step" if synced else "the step raised"
        result["summary"] = f"{what}: {result['reason']}"
        return result
    value = b.to_float(loss)
    result.update(
        loss=value,
        status="pass" if np.isfinite(value) else "fail",
        summary=f"no sync in one step (loss {first:.4f} -> {value:.4f})",
    )
    if not np.isfinite(value):
        result["reason"] = f"the step's loss is {value}"
    return result


def ulp_error(a, b, old) -> float:
    """max |a - b| in float32 ulps of the largest operand of the update's final add (old, the
    increment b - old, the results). In ulps of the result alone, an update that cancels to
    near zero would count an ordinary rounding of the increment as thousands of ulps."""
    import numpy as np

    a, b, old = (np.asarray(x, dtype=np.float64) for x in (a, b, old))
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    mag = np.maximum.reduce([np.abs(a), np.abs(b), np.abs(old), np.abs(b - old)])
    return float(np.max(np.abs(a - b) / np.spacing(mag.astype(np.float32)).astype(np.float64)))


def check_adam_ulps(gpu: bool, steps: int = 5) -> dict:
    """The backend's fused Adam (CuPy's one kernel; on the CPU, NumPy's in-place path) against
    the generic formula (base.adam_math) on the same device and float32 inputs: ``steps``
    steps from m = v = 0 (as training starts), each from the same state on both sides, with
    gradients spread over six decades (so that eps matters for some). The two may round the
    step differently (a reciprocal times vs a division, (s m)/d vs s (m/d), fused multiply-adds
    on the GPU): a few ulps; a different formula (say 1 - beta2 rounded to float32: 1.3e-5
    off) shows as hundreds."""
    import math

    import numpy as np

    import xpnn
    from xpnn.backends.base import adam_math

    fast = xpnn.get_backend("cupy" if gpu else "numpy")
    n = 1 << 20 if gpu else 1 << 18  # the CPU run checks the comparison code: fewer elements, faster
    rng = np.random.default_rng(0)
    f32 = np.float32
    param = rng.standard_normal(n, dtype=f32)
    m, v = np.zeros(n, f32), np.zeros(n, f32)
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    worst = {"param": 0.0, "m": 0.0, "v": 0.0}
    for t in range(1, steps + 1):
        grad = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 0, n)).astype(f32)
        hyper = {
            "step_size": lr / (1.0 - beta1**t),
            "beta1": beta1,
            "beta2": beta2,
            "bias2_sqrt": math.sqrt(1.0 - beta2**t),
            "eps": eps,
        }
        inputs = (param, grad, m, v)  # fresh device copies for each side: both update in place
        fused = fast.adam_update(*(fast.asarray(a, copy=True) for a in inputs), **hyper, scratch={})
        generic = adam_math(fast.xp, *(fast.asarray(a, copy=True) for a in inputs), **hyper)
        fused, generic = [fast.to_numpy(a) for a in fused], [fast.to_numpy(a) for a in generic]
        for name, old, a, b in zip(worst, (param, m, v), fused, generic):
            worst[name] = max(worst[name], ulp_error(a, b, old))
        param, m, v = (np.array(a) for a in generic)  # the next step starts both sides from one state
    biggest = max(worst.values())
    what = (
        "CuPy's fused kernel vs the generic formula on CuPy"
        if gpu
        else "NumPy's in-place path vs the generic formula on NumPy (CPU smoke test of the comparison)"
    )
    result = {
        "name": "adam-ulps",
        "compared": what,
        "elements": n,
        "steps": steps,
        "max_ulps": worst,
        "bound_ulps": ADAM_MAX_ULPS,
        "status": "pass" if biggest <= ADAM_MAX_ULPS else "fail",
        "summary": f"max ulps param {worst['param']:g}, m {worst['m']:g}, v {worst['v']:g} "
        f"(bound {ADAM_MAX_ULPS}; {'CuPy fused vs generic' if gpu else 'NumPy fast path vs generic'})",
    }
    if result["status"] == "fail":
        result["reason"] = f"{what}: {biggest:g} ulps > {ADAM_MAX_ULPS}"
    return result


def check_save_load(target: str) -> dict:
    """Train on NumPy, save; load on ``target`` and predict; save there, load on NumPy and
    predict again: both predictions within ROUND_TRIP_TOL of the original model's."""
    with tempfile.TemporaryDirectory(prefix="xpnn-gpu-check-") as workdir:
        return _round_trip(target, workdir)


def _round_trip(target: str, workdir: str) -> dict:
    import numpy as np

    import xpnn

    rng = np.random.default_rng(1)
    X = rng.standard_normal((512, 32), dtype=np.float32)
    y = rng.integers(0, 5, 512)
    model = _mlp("numpy", xpnn)
    model.compile("softmax_cross_entropy", "adam")
    model.fit(X, y, epochs=2, batch_size=64, verbose=0)
    ref = model.predict(X)
    first = os.path.join(workdir, "trained-on-numpy.safetensors")
    model.save(first)
    there = xpnn.load(first, backend=target)
    diff_there = float(np.max(np.abs(there.predict(X) - ref)))
    second = os.path.join(workdir, f"saved-from-{target}.safetensors")
    there.save(second)
    back = xpnn.load(second, backend="numpy")
    diff_back = float(np.max(np.abs(back.predict(X) - ref)))
    ok = diff_there <= ROUND_TRIP_TOL and diff_back <= ROUND_TRIP_TOL
    result = {
        "name": "save-load",
        "path": f"numpy -> {target} -> numpy",
        "max_abs_diff_on_target": diff_there,
        "max_abs_diff_back_on_numpy": diff_back,
        "tolerance": ROUND_TRIP_TOL,
        "status": "pass" if ok else "fail",
        "summary": f"numpy -> {target}: {diff_there:.2e}, {target} -> numpy: {diff_back:.2e} "
        f"(tolerance {ROUND_TRIP_TOL:g})",
    }
    if not ok:
        result["reason"] = f"predictions differ by more than {ROUND_TRIP_TOL:g} after the round trip"
    return result


def check_mixed_precision(gpu: bool) -> dict:
    """The digits MLP (64-128-10, Adam, 10 epochs; 3 on the CPU) in a mixed-precision policy and in float32
    on the same backend: mixed_float16 on CuPy and mixed_bfloat16 on torch CUDA (on the CPU,
    for a dry run: mixed_float16 on NumPy). Passes when every accuracy is within
    MIXED_MAX_DROP of float32's and the weights are finite."""
    import numpy as np

    import xpnn

    (X, y), (Xt, yt) = xpnn.load_digits(flatten=True)
    cases = (
        [("cupy", None, "mixed_float16"), ("torch", "cuda", "mixed_bfloat16")]
        if gpu
        else [("numpy", None, "mixed_float16")]
    )
    rows, bad = [], []
    for name, device, policy in cases:
        found = {}
        for dtype in ("float32", policy):
            model = xpnn.NeuralNetwork(64, 128, 10, backend=name, device=device, seed=0, dtype=dtype)
            model.compile("softmax_cross_entropy", "adam", ["accuracy"])
            t0 = time.perf_counter()
            model.fit(X, y, epochs=10 if gpu else 3, batch_size=64, verbose=0)  # NumPy's float16 is slow
            seconds = time.perf_counter() - t0
            finite = all(
                np.all(np.isfinite(np.asarray(model.backend.to_numpy(w), dtype=np.float64)))
                for w in model.get_weights()
            )
            found[dtype] = {
                "accuracy": model.evaluate(Xt, yt)["accuracy"],
                "fit_seconds": round(seconds, 3),
                "finite": finite,
                "loss_scale": None if model.loss_scale is None else model.loss_scale.state(),
            }
        drop = found["float32"]["accuracy"] - found[policy]["accuracy"]
        row = {
            "backend": f"{name}{':' + device if device else ''}",
            "policy": policy,
            "drop": drop,
            **{k: v for k, v in found.items()},
        }
        rows.append(row)
        if drop > MIXED_MAX_DROP or not all(f["finite"] for f in found.values()):
            mixed, plain = found[policy]["accuracy"], found["float32"]["accuracy"]
            bad.append(f"{row['backend']} {policy}: accuracy {mixed:.4f} vs float32 {plain:.4f}")
    result = {
        "name": "mixed-precision",
        "rows": rows,
        "status": "fail" if bad else "pass",
        "summary": "; ".join(_mixed_summary(r) for r in rows),
    }
    if bad:
        result["reason"] = "; ".join(bad)
    return result


def _mixed_summary(row: dict) -> str:
    mixed, plain = row[row["policy"]], row["float32"]
    return (
        f"{row['backend']} {row['policy']}: accuracy {mixed['accuracy']:.4f} (float32 {plain['accuracy']:.4f}), "
        f"fit {mixed['fit_seconds']:.2f} s (float32 {plain['fit_seconds']:.2f} s)"
    )


def check_benchmarks(bench_json: str, timeout: float, full: bool) -> dict:
    """benchmarks/run.py on the GPU: xpnn on CuPy (float32 and mixed_float16) and on torch CUDA
    (float32 and mixed_bfloat16), and with compiled steps (a CUDA graph on CuPy, torch.compile,
    jax.jit), against torch on CUDA, Keras 3 on JAX and the CuPy loop."""
    cmd = [
        sys.executable,
        "benchmarks/run.py",
        "--backend",
        ",".join(("cupy,cupy@mixed_float16,torch:cuda,torch:cuda@mixed_bfloat16,cupy+jit", *OPTIONAL_BACKENDS)),
        "--peers",
        ",".join(("torch", "numpy-ref", *OPTIONAL_PEERS)),
        "--synthetic",
        "--out",
        bench_json,
    ]
    if not full:
        cmd.append("--quick")
    run = run_command(cmd, timeout)
    result = {
        "name": "benchmarks",
        "command": " ".join(cmd),
        "rc": run["rc"],
        "wall_seconds": run["seconds"],
        "json": bench_json,
    }
    if run["timed_out"] or run["rc"] != 0 or not os.path.exists(bench_json):
        why = f"timed out after {timeout:.0f} s" if run["timed_out"] else f"exit {run['rc']}"
        result.update(status="fail", reason=f"{why}: {run['output'].strip()[-500:]}", summary=f"run.py failed: {why}")
        return result
    with open(bench_json) as f:
        data = json.load(f)
    keys = (
        "case",
        "label",
        "status",
        "min_s",
        "per_step_min_s",
        "per_unit_min_s",
        "unit",
        "samples_per_s",
        "tflops",
        "reason",
    )
    rows = [{k: r[k] for k in keys if k in r} for r in data.get("results", [])]
    gemm = [
        {k: g.get(k) for k in ("library", "status", "n", "tflops", "reason") if k in g}
        for g in data.get("gemm_peak", [])
    ]
    for r, full_row in zip(rows, data.get("results", [])):
        if r["status"] == "skipped" and (_no_such_case(full_row) or _optional(full_row)):
            r["status"] = "n/a"
    bad = [
        f"{r['case']} / {r['label']}: {r['status']}: {r.get('reason', '')}"
        for r in rows
        if r["status"] not in ("ok", "n/a")
    ]
    counted = [r for r in rows if r["status"] != "n/a"]
    report = run["output"][run["output"].find("## xpnn benchmarks") :] if "## xpnn benchmarks" in run["output"] else ""
    result.update(
        rows=rows,
        gemm_peak=gemm,
        report=report,
        status="fail" if bad or not counted else "pass",
        summary=f"{len(counted) - len(bad)}/{len(counted)} rows ok in {run['seconds']:.0f} s",
    )
    if bad or not counted:
        result["reason"] = "; ".join(bad[:4]) or "no result rows"
        result["summary"] += f" ({result['reason']})"
    return result


# rows that need a library the GPU image may lack (JAX with CUDA, Keras): skipped, not failed
OPTIONAL_BACKENDS = ("torch:cuda+jit", "jax:gpu+jit")
OPTIONAL_PEERS = ("keras-jax",)


def _optional(row) -> bool:
    return row.get("backend") in OPTIONAL_BACKENDS or row.get("impl") in OPTIONAL_PEERS


def _no_such_case(row) -> bool:
    """Whether a skipped row is a peer without a version of that case (the CuPy loop has no
    CNN): its reason is the peer's own ``supports(case)`` answer. Not a failure."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import harness
    from peers import IMPLS

    case = next((c for c in harness.CASES if c.name == row.get("case")), None)
    impl = IMPLS.get(row.get("impl"))
    return case is not None and impl is not None and impl.supports(case) == row.get("reason")


def run_check(fn, *args) -> dict:
    """Time one check; an exception is its failure, with the traceback kept."""
    name = fn.__name__.replace("check_", "").replace("_", "-")
    t0 = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as exc:
        result = {
            "name": name,
            "status": "fail",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-3000:],
        }
        result["summary"] = result["reason"]
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result.setdefault("summary", result.get("reason", ""))
    return result


def skipped(name: str, reason: str) -> dict:
    return {"name": name, "status": "skipped", "reason": reason, "seconds": 0.0, "summary": ""}


# ---- the report --------------------------------------------------------------------------------------------


def render_markdown(report: dict) -> str:
    gpu = report["gpu"]
    where = (
        f"{gpu['name']} (CuPy {gpu['cupy']}, CUDA runtime {gpu['cuda_runtime']})"
        if gpu.get("name")
        else f"none ({gpu['reason']})"
    )
    run = "dry run" if report["dry_run"] else "real run"
    out = [
        f"## xpnn GPU check, {report['date']}",
        "",
        f"GPU: {where}; Python {report['python']}; {run}; {report['seconds']:.0f} s",
        "",
        "| check | status | seconds | details |",
        "|---|---|---:|---|",
    ]
    for c in report["checks"]:
        status = f"skipped: {c['reason']}" if c["status"] == "skipped" else c["status"]
        details = (c.get("summary") or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| {c['name']} | {status.replace('|', '/')} | {c['seconds']:.1f} | {details} |")
    out += ["", f"Result: {report['verdict']}"]
    bench = next((c for c in report["checks"] if c["name"] == "benchmarks" and c.get("report")), None)
    if bench:
        out += ["", bench["report"].replace("## xpnn benchmarks", "### Benchmarks (benchmarks/run.py)", 1).rstrip()]
    return "\n".join(out) + "\n"


def verdict(checks, dry_run: bool) -> tuple:
    """(exit code, words): see the module docstring."""
    failed = [c["name"] for c in checks if c["status"] == "fail"]
    skips = [c["name"] for c in checks if c["status"] == "skipped"]
    if failed:
        return 1, f"FAIL ({', '.join(failed)})"
    if skips and not dry_run:
        return 2, f"INCOMPLETE: skipped without --dry-run ({', '.join(skips)})"
    return 0, "PASS" + (f" (dry run; skipped: {', '.join(skips)})" if skips else "")


# ---- main --------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Offline GPU machine: on a machine with network, in the repository: "
        f"{DOWNLOAD_WHEELS} array-api-compat array-api-extra array-api-strict threadpoolctl; "
        "copy the repository over, then: python benchmarks/gpu_check.py --install",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help=f"pip-install .whl/*.whl into {SITE} first (done anyway when a dependency is missing)",
    )
    p.add_argument("--wheels", default=WHEELS, help="the folder of wheels --install installs (default .whl/)")
    p.add_argument(
        "--dry-run", action="store_true", help="skip every GPU part; run the CPU parts (exit 0 if they pass)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="the JSON to write (default benchmarks/results/gpu-check-DATE.json); the .md, "
        "-bench.json and -pytest.log go beside it",
    )
    p.add_argument("--skip", default="", help=f"comma-separated checks not to run: {', '.join(CHECKS[1:])}")
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="pytest-xdist workers for the GPU suite (default min(8, cpus); 1: no xdist)",
    )
    p.add_argument("--tests-timeout", type=float, default=270, help="seconds for the GPU suite (default 270)")
    p.add_argument("--bench-timeout", type=float, default=150, help="seconds for the benchmarks (default 150)")
    p.add_argument("--full-bench", action="store_true", help="benchmarks without --quick (minutes more)")
    args = p.parse_args(argv)
    args.skip_set = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip_set - set(CHECKS[1:])
    if unknown:
        p.error(f"--skip: unknown check(s) {sorted(unknown)}; choose from {', '.join(CHECKS[1:])}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    date = time.strftime("%Y-%m-%d")
    out = os.path.abspath(args.out or os.path.join(HERE, "results", f"gpu-check-{date}.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    stem = out.removesuffix(".json")

    # 1. make everything importable before the first import of xpnn or its dependencies
    missing = missing_modules(RUNTIME_DEPS + TEST_DEPS)
    install = install_wheels(missing, args.wheels) if (args.install or missing) else None
    use_paths([SITE, SRC] if install and install.get("ran") else [SRC])

    gpu_reason, gpu_info = find_gpu()
    # why the GPU parts are skipped (None: they run), naming the missing piece where one is
    skip_gpu = "; ".join(r for r in ("--dry-run" if args.dry_run else None, gpu_reason) if r) or None
    dry_run = skip_gpu is not None
    print(
        f"gpu_check: GPU: {gpu_info.get('name') or gpu_reason}; "
        f"{'GPU parts skipped: ' + skip_gpu if dry_run else 'running every check'}",
        file=sys.stderr,
        flush=True,
    )

    # name -> (needs the GPU, the check and its arguments)
    plan = {
        "gpu-tests": (True, check_gpu_tests, f"{stem}-pytest.log", args.tests_timeout, args.workers),
        "sync-probe": (True, check_sync_probe),
        "adam-ulps": (False, check_adam_ulps, not dry_run),
        "save-load": (False, check_save_load, "numpy" if dry_run else "cupy"),
        "mixed-precision": (False, check_mixed_precision, not dry_run),
        "benchmarks": (True, check_benchmarks, f"{stem}-bench.json", args.bench_timeout, args.full_bench),
    }
    checks = [run_check(check_dependencies, install)]
    for name, (gpu_only, fn, *fn_args) in plan.items():
        reason = "--skip" if name in args.skip_set else skip_gpu if gpu_only else None
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        c = skipped(name, reason) if reason else run_check(fn, *fn_args)
        checks.append(c)
        print(
            f"gpu_check: {name}: {c['status']}{': ' + c['reason'] if c.get('reason') else ''}",
            file=sys.stderr,
            flush=True,
        )

    code, words = verdict(checks, args.dry_run)
    report = {
        "tool": "benchmarks/gpu_check.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": [os.path.relpath(__file__, ROOT), *(sys.argv[1:] if argv is None else argv)],
        "dry_run": dry_run,
        "dry_run_reason": skip_gpu,
        "python": sys.version.split()[0],
        "gpu": {"visible": gpu_reason is None, "reason": gpu_reason, **gpu_info},
        "checks": checks,
        "exit_code": code,
        "verdict": words,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with open(out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    markdown = render_markdown(report)
    with open(stem + ".md", "w") as f:
        f.write(markdown)
    print(markdown)
    print(f"gpu_check: wrote {out} and {stem}.md; exit {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
