"""``xpnn train/evaluate/predict`` on data files streamed from disk: .npy pairs
(memory-mapped), .npz, HDF5 and zarr, with the same split and the same model from each."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from xpnn.cli import main

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    y = (X.astype(np.float64) @ rng.normal(size=(16, 3))).argmax(axis=1)
    np.save(d / "X.npy", X)
    np.save(d / "y.npy", y)
    np.savez(d / "d.npz", X=X, y=y)
    with h5py.File(d / "d.h5", "w") as f:
        f["feats"], f["labels"] = X, y
    group = zarr.open_group(str(d / "d.zarr"), mode="w")
    group["X"], group["y"] = X, y
    return d


SOURCES = {
    "npy": ["--data", "X.npy", "--labels", "y.npy"],
    "npz": ["--data", "d.npz"],
    "h5": ["--data", "d.h5", "--x-key", "feats", "--y-key", "labels"],
    "zarr": ["--data", "d.zarr"],
}


def test_train_evaluate_predict_give_the_same_model_from_every_format(folder):
    results = {}
    for name, args in SOURCES.items():
        args = [a if not a.endswith(("npy", "npz", "h5", "zarr")) else folder / a for a in args]
        out = folder / f"run-{name}"
        code, stdout, stderr = run("train", *args, "--epochs", 2, "--verbose", 0, "--out", out, "--seed", 3)
        assert code == 0, stderr
        metrics = json.loads((out / "metrics.json").read_text())
        code, stdout, stderr = run("evaluate", out / "model.safetensors", *args)
        assert code == 0, stderr
        evaluated = json.loads(stdout)
        assert evaluated["accuracy"] == pytest.approx(metrics["test_accuracy"])  # the same held-out split
        results[name] = evaluated
        keys = ["--x-key", "feats"] if name == "h5" else []  # predict names the features' array the same way
        code, stdout, stderr = run("predict", out / "model.safetensors", args[1], *keys)
        assert code == 0, stderr
        assert len(stdout.splitlines()) == 301
    assert all(r == results["npy"] for r in results.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "X.npy"], "pass its labels with --labels y.npy"),
        (["train", "--data", "d.h5"], "d.h5 has no array 'X'; it holds 'feats', 'labels'"),
        (["train", "--data", "d.npz", "--impute", "mean"], "--impute fills the missing cells of CSV files"),
        (["train", "--data", "d.npz", "--model", "cnn"], "--model cnn needs images (n, channels, height, width)"),
        (["train", "--data", "missing.npy"], "No such file or directory"),
        (["train", "--data", "X.npy", "--labels", "X.npy"], "expected features (n, ...) and labels (n,)"),
    ],
)
def test_bad_files_are_one_line_errors(folder, args, message, monkeypatch):
    monkeypatch.chdir(folder)
    code, _, stderr = run(*args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
