"""The ``xpnn`` command, called in-process through ``xpnn.cli.main``: train end to end on
the bundled digits (a few epochs), evaluate and predict on the model it wrote, and bad
input -> exit code 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import xpnn
from xpnn.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def run(argv):
    """(exit code, stdout, stderr) of ``xpnn ARGV`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `xpnn train` run on the digits (3 epochs), shared by the tests below."""
    out = tmp_path_factory.mktemp("run")
    code, stdout, stderr = run(["train", "--epochs", 3, "--seed", 1, "--out", out])
    return code, out, stdout, stderr


@pytest.fixture(scope="module")
def digits_test():
    return xpnn.load_digits(flatten=True)[1]


# ---- train ------------------------------------------------------------------------------------


def test_train_writes_model_history_metrics_and_plots(trained, digits_test):
    code, out, stdout, stderr = trained
    assert code == 0 and stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png",
        "curves.png",
        "history.csv",
        "metrics.json",
        "model.safetensors",
        "samples.npy",
    ]
    lines = stdout.splitlines()
    assert lines[0].startswith("xpnn: digits: 1438 training and 359 test samples, 10 classes")
    assert [line.split(" - ")[0] for line in lines[1:4]] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert lines[-4].startswith("wrote model.safetensors, history.csv, metrics.json, samples.npy, curves.png")
    assert lines[-3:-1] == ["next:", f"  xpnn evaluate {out / 'model.safetensors'} --data digits"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "test_loss", "epochs", "seconds", "backend", "seed"} <= set(metrics)
    assert metrics["epochs"] == 3 and metrics["backend"] == "numpy" and metrics["seed"] == 1
    assert isinstance(metrics["seconds"], float) and metrics["seconds"] >= 0
    assert 0.9 < metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    # the numbers are the saved model's, on the digits test split
    X_test, y_test = digits_test
    result = xpnn.load(out / "model.safetensors").evaluate(X_test, y_test)
    assert result["accuracy"] == metrics["test_accuracy"]
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)

    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert float(rows[2]["loss"]) < float(rows[0]["loss"])

    for name in ("curves.png", "confusion_matrix.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000


def test_train_is_reproducible_from_its_seed(tmp_path):
    results = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        code, _, stderr = run(
            [
                "train",
                "--epochs",
                2,
                "--hidden",
                16,
                "--batch-size",
                64,
                "--seed",
                seed,
                "--out",
                tmp_path / name,
                "--verbose",
                0,
            ]
        )
        assert code == 0, stderr
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        results.append((metrics["test_accuracy"], metrics["test_loss"]))
    assert results[0] == results[1] and results[0] != results[2]


def test_train_on_array_api_strict(tmp_path):
    code, stdout, stderr = run(
        [
            "train",
            "--backend",
            "array_api_strict",
            "--epochs",
            1,
            "--hidden",
            16,
            "--batch-size",
            128,
            "--out",
            tmp_path,
            "--verbose",
            0,
        ]
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["backend"] == "array_api_strict" and metrics["hidden"] == [16]
    assert (tmp_path / "model.safetensors").exists()


def test_train_cnn_on_digits_then_evaluate(tmp_path):
    code, _, stderr = run(
        ["train", "--model", "cnn", "--epochs", 2, "--batch-size", 64, "--out", tmp_path, "--verbose", 0]
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and metrics["test_accuracy"] > 0.8  # two epochs of a 38K-param CNN
    code, stdout, stderr = run(["evaluate", tmp_path / "model.safetensors"])
    assert code == 0, stderr
    assert json.loads(stdout)["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_train_on_a_csv_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = tmp_path / "data.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", fmt="%.5f", header="a,b,c,label", comments="")
    code, _, stderr = run(
        ["train", "--data", path, "--epochs", 5, "--hidden", 8, "--out", tmp_path / "run", "--verbose", 0]
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == str(path) and metrics["test_accuracy"] >= 0.5


# ---- evaluate and predict --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_evaluate(trained, backend):
    _, out, _, _ = trained
    code, stdout, stderr = run(["evaluate", out / "model.safetensors", "--backend", backend])
    assert code == 0 and stderr == ""
    result = json.loads(stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert result["loss"] == pytest.approx(metrics["test_loss"], abs=1e-6)


def _check_predictions(text, model, X):
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["label", *[f"p{i}" for i in range(10)]]
    labels = np.array([int(row[0]) for row in rows[1:]])
    probs = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(labels, model.predict_classes(X))
    np.testing.assert_allclose(probs, model.predict(X), atol=1e-6)


def test_predict_npy_to_stdout(trained, digits_test, tmp_path):
    _, out, _, _ = trained
    X = digits_test[0][:7]
    np.save(tmp_path / "x.npy", X)
    code, stdout, stderr = run(["predict", out / "model.safetensors", tmp_path / "x.npy"])
    assert code == 0 and stderr == ""
    _check_predictions(stdout, xpnn.load(out / "model.safetensors"), X)


def test_predict_csv_to_a_file(trained, digits_test, tmp_path):
    _, out, _, _ = trained
    X = digits_test[0][:9]
    np.savetxt(
        tmp_path / "x.csv", X, delimiter=",", fmt="%.9g", header=",".join(f"px{i}" for i in range(64)), comments=""
    )
    target = tmp_path / "pred.csv"
    code, stdout, stderr = run(
        ["predict", out / "model.safetensors", tmp_path / "x.csv", "--out", target, "--backend", "array_api_strict"]
    )
    assert code == 0 and stderr == ""
    assert stdout.strip() == f"wrote 9 predictions to {target}"
    _check_predictions(target.read_text(), xpnn.load(out / "model.safetensors"), X)


# ---- bad input: exit code 2, one line on stderr ------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "ragged.csv").write_text("1,2,0\n3,4,1\n5,6\n")
    (d / "negative.csv").write_text("1,2,0\n3,4,1\n5,6,-1\n7,8,1\n")
    (d / "good.csv").write_text("".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    rng = np.random.default_rng(0)
    np.savetxt(d / "label12.csv", np.c_[rng.random((6, 64)), [0, 1, 2, 12, 3, 4]], delimiter=",", fmt="%g")
    (d / "notamodel.safetensors").write_text("not a model")
    np.save(d / "x.npy", rng.random((3, 64)).astype(np.float32))
    np.save(d / "narrow.npy", rng.random((3, 10)).astype(np.float32))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "ragged_features.csv").write_text("1,2\n3\n")
    (d / "x.txt").write_text("1 2 3\n")
    (d / "a_file").write_text("")
    return d


MODEL = "{model}"  # replaced by the trained model's path

BAD = [
    (["train", "--data", "nope"], "--data must be one of digits, fashion-mnist, mnist or a path ending in .csv, .npy"),
    (["train", "--data", "{bad}/ragged.csv"], "ragged.csv, line 3: expected 3 comma-separated values"),
    (["train", "--data", "{bad}/negative.csv"], "negative.csv, line 3, column 3: labels must be non-negative"),
    (["train", "--data", "{bad}/missing.csv"], "missing.csv does not exist (expected a CSV file)"),
    (["train", "--epochs", "0"], "--epochs must be a positive integer, found 0"),
    (["train", "--model", "cnn", "--data", "{bad}/good.csv"], "--model cnn needs image data"),
    (["train", "--batch-size", "0"], "--batch-size must be a positive integer, found 0"),
    (["train", "--backend", "nope"], "backend must be one of"),
    (["train", "--hidden", "0"], "hidden_sizes[0] must be a positive integer, found 0"),
    (["train", "--optimizer", "nope"], "optimizer must be one of"),
    (["train", "--out", "{bad}/a_file", "--epochs", "1"], "a_file is a file, not a folder"),
    (["evaluate", MODEL, "--data", "{bad}/label12.csv"], r"labels must be integers in [0, 10), found 12"),
    (["evaluate", "{bad}/notamodel.safetensors"], "notamodel.safetensors: not an xpnn model file"),
    (["evaluate", "{bad}/missing.safetensors"], "missing.safetensors does not exist (expected an xpnn model file"),
    (["predict", "{bad}/notamodel.safetensors", "{bad}/x.npy"], "not an xpnn model file"),
    (["predict", MODEL, "{bad}/x.txt"], "INPUT must be a .csv, .npy, .npz, .h5, .hdf5 or .zarr file"),
    (["predict", MODEL, "{bad}/narrow.npy"], "narrow.npy holds samples of shape (10,); give it samples like those of"),
    (["predict", MODEL, "{bad}/objects.npy"], "objects.npy: Object arrays cannot be loaded"),
    (["predict", MODEL, "{bad}/ragged_features.csv"], "ragged_features.csv, line 2: expected 2"),
    (["predict", MODEL, "{bad}/missing.npy"], "missing.npy does not exist"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:3]).replace("{bad}/", "") for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_code_2(trained, bad_files, tmp_path, argv, message):
    argv = [a.format(bad=bad_files, model=trained[1] / "model.safetensors") for a in argv]
    if argv[0] == "train" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run"), "--verbose", "0"]
    code, stdout, stderr = run(argv)
    assert code == 2
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"xpnn {argv[0]}: error: ")
    assert message in lines[0]


def test_usage_errors_exit_2():
    code, _, stderr = run(["train", "--epochs", "many"])
    assert code == 2 and "invalid int value: 'many'" in stderr
    code, _, _ = run([])
    assert code == 2


# ---- info ------------------------------------------------------------------------------------


def test_info_in_process():
    code, stdout, stderr = run(["info"])
    assert code == 0 and stderr == ""
    assert stdout.splitlines()[0] == f"xpnn {xpnn.__version__}"
    assert "backend numpy: available, devices cpu\n" in stdout
    assert "backend array_api_strict: available, devices CPU_DEVICE, device1, device2\n" in stdout
    for name in ("cupy", "torch", "jax"):  # each with its devices or why it is unavailable
        line = next(line for line in stdout.splitlines() if line.startswith(f"backend {name}: "))
        assert "available, devices " in line or "unavailable (" in line


@pytest.mark.parametrize("backend, device", [("torch", "cpu"), ("jax", None)])
def test_train_evaluate_predict_on_another_library(tmp_path, backend, device):
    pytest.importorskip(backend)
    flags = ["--backend", backend] + (["--device", device] if device else [])
    code, stdout, stderr = run(["train", "--epochs", 1, "--hidden", 16, "--out", tmp_path, *flags])
    assert code == 0, stderr
    assert f"params on backend {backend} (" in stdout.splitlines()[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["backend"] == backend
    code, stdout, stderr = run(["evaluate", tmp_path / "model.safetensors", *flags])
    assert code == 0, stderr
    inputs = tmp_path / "x.npy"
    np.save(inputs, xpnn.load_digits(flatten=True)[1][0][:3])
    code, stdout, stderr = run(["predict", tmp_path / "model.safetensors", inputs, *flags])
    assert code == 0 and len(stdout.splitlines()) == 4, stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "tensorflow"], "backend must be one of"),
        (["--backend", "numpy", "--device", "cuda"], 'backend "numpy" runs on the CPU only'),
        (["--backend", "array_api_strict", "--device", "gpu"], 'backend "array_api_strict": device must be one of'),
    ],
)
def test_bad_backend_or_device_is_one_line_and_exit_2(tmp_path, argv, message):
    for command in (["train", "--epochs", 1, "--out", tmp_path], ["evaluate", tmp_path / "none.safetensors"]):
        code, stdout, stderr = run([*command, *argv])
        assert code == 2 and message in stderr and stderr.count("\n") == 1 and stdout == ""


def test_info_console_script():
    exe = shutil.which("xpnn")
    if exe is None:
        pytest.skip("the xpnn console script is not installed")
    done = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"xpnn {xpnn.__version__}\n")


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "xpnn.cli", "evaluate", "missing.safetensors"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
