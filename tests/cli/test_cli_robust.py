"""The command never shows a traceback for bad input: a fuzz test drives ``xpnn.cli.main``
with random argument lists and random file contents; files of the wrong kind, class
counts, the imputer a model carries, and predictions of a regressor."""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.cli import main


def run(argv):
    """(exit code, stdout, stderr) of ``xpnn ARGV`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own usage errors, and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def one_error_line(code, stderr, command, *parts):
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"xpnn {command}: error: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]


def write_csv(path, rows, header="a,b,label"):
    path.write_text("\n".join([header, *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def small_rows(n=40, seed=0, gaps=False):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b = rng.normal(size=2)
        label = int(a + b > 0)
        cells = [f"{a:.3f}", f"{b:.3f}", label]
        if gaps and i % 7 == 3:
            cells[i % 2] = ""
        rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def imputed_run(tmp_path_factory):
    """`xpnn train --impute mean` on a small CSV with gaps: its folder and the CSV."""
    d = tmp_path_factory.mktemp("imputed")
    data = write_csv(d / "gaps.csv", small_rows(gaps=True))
    code, stdout, stderr = run(
        ["train", "--data", data, "--impute", "mean", "--epochs", 2, "--hidden", 4, "--verbose", 0, "--out", d / "run"]
    )
    assert code == 0, stderr
    return d / "run", data


# ---- files of the wrong kind ----------------------------------------------------------------


def test_a_folder_as_data_is_named(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    code, _, err = run(["train", "--data", tmp_path / "folder.csv", "--out", tmp_path / "o"])
    one_error_line(code, err, "train", "folder.csv is a folder, not a CSV file")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_as_model_or_input_is_named(device, imputed_run):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    code, _, err = run(["evaluate", device])
    one_error_line(code, err, "evaluate", f"{device} is not a regular file (a device or a pipe)")
    model = imputed_run[0] / "model.safetensors"
    code, _, err = run(["predict", model, device])
    one_error_line(code, err, "predict", "INPUT must be a .csv, .npy")


def test_a_non_utf8_csv_is_named(tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"a,b,label\n1,2,0\n3,\xe94,1\n")
    code, _, err = run(["train", "--data", bad, "--out", tmp_path / "o"])
    one_error_line(code, err, "train", "latin.csv, line 3: not a UTF-8 text file (byte 0xe9")


def test_a_one_row_csv_is_named(tmp_path):
    one = write_csv(tmp_path / "one.csv", [[1, 2, 0]])
    code, _, err = run(["train", "--data", one, "--out", tmp_path / "o"])
    one_error_line(code, err, "train", "one.csv: 1 data row; xpnn needs at least 5")


def test_a_value_too_large_for_float32_is_named_by_line_and_column(tmp_path):
    rows = small_rows(10)
    rows[4][1] = "1e39"
    big = write_csv(tmp_path / "big.csv", rows)
    code, _, err = run(["train", "--data", big, "--out", tmp_path / "o"])
    one_error_line(code, err, "train", "big.csv, line 6, column 2: 1e+39 is too large for float32")


def test_out_that_is_a_file_is_refused(tmp_path):
    code, _, err = run(["train", "--out", "/dev/null", "--epochs", 1])
    one_error_line(code, err, "train", "--out /dev/null is a file, not a folder")


def test_device_without_backend_names_the_backend_it_applies_to(tmp_path, monkeypatch):
    monkeypatch.delenv("XPNN_BACKEND", raising=False)
    monkeypatch.delenv("XPNN_DEVICE", raising=False)
    code, _, err = run(["train", "--device", "cuda:3", "--out", tmp_path / "o"])
    one_error_line(code, err, "train", "--device cuda:3 applies to", "default backend 'numpy'", "pass --backend too")


# ---- only sensible models ---------------------------------------------------------------------


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(label=st.integers(0, 7), n=st.integers(5, 12))
def test_a_csv_of_one_class_is_refused(tmp_path, label, n):
    data = write_csv(tmp_path / f"one_class_{label}_{n}.csv", [[i, -i, label] for i in range(n)])
    code, _, err = run(["train", "--data", data, "--out", tmp_path / f"o{label}_{n}", "--epochs", 1])
    one_error_line(code, err, "train", f"every training sample has label {label}; a classifier needs at least two")


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 6), outputs=st.just(1))
def test_a_softmax_cross_entropy_needs_two_outputs(n, outputs):
    loss = xpnn.get_loss("softmax_cross_entropy")
    with pytest.raises(ValueError, match="pred has 1 column; a softmax cross-entropy needs at least 2 outputs"):
        loss.forward(np.zeros((n, outputs), np.float32), np.zeros(n, np.int64))


def test_predict_prints_labels_and_probabilities_only_for_a_classifier(tmp_path):
    model = xpnn.NeuralNetwork(3, [4], 2)
    model.compile("mse", "adam")
    path = tmp_path / "reg.safetensors"
    model.save(path)
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    code, out, err = run(["predict", path, tmp_path / "x.npy"])
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header == "y0,y1" and len(rows) == 4
    np.testing.assert_allclose(np.array([r.split(",") for r in rows], float), model.predict(X), rtol=1e-4)


# ---- the imputer travels with the model -------------------------------------------------------


def test_a_model_trained_with_impute_carries_its_imputer(imputed_run, tmp_path):
    run_dir, data = imputed_run
    model = xpnn.load(run_dir / "model.safetensors")
    (imputer,) = model.preprocessing
    saved = json.loads((run_dir / "metrics.json").read_text())["imputer"]
    assert imputer.to_dict() == saved
    # evaluate: the CSV with gaps, its test split filled by the saved imputer
    code, out, err = run(["evaluate", run_dir / "model.safetensors", "--data", data])
    assert code == 0, err
    assert 0.0 <= json.loads(out)["accuracy"] <= 1.0
    # predict: a gap in a new input is filled with the training split's mean
    gaps = tmp_path / "new.csv"
    gaps.write_text("a,b\n0.5,\n,0.25\n")
    code, out, err = run(["predict", run_dir / "model.safetensors", gaps])
    assert code == 0, err
    filled = np.array([[0.5, np.nan], [np.nan, 0.25]], np.float32)
    filled = np.asarray(imputer.transform(filled))
    rows = [r.split(",") for r in out.splitlines()[1:]]
    np.testing.assert_allclose(np.array([r[1:] for r in rows], float), model.predict(filled), atol=2e-6)


def test_a_model_without_imputer_refuses_gaps_naming_the_sample(tmp_path):
    model = xpnn.NeuralNetwork(2, [4], 2)
    model.compile()
    model.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", np.array([[1.0, 2.0], [np.nan, 1.0]], np.float32))
    code, _, err = run(["predict", tmp_path / "m.safetensors", tmp_path / "x.npy"])
    one_error_line(code, err, "predict", "nan at sample 1")


def test_a_damaged_imputer_in_the_model_file_is_refused(tmp_path):
    from xpnn.preprocessing import SimpleImputer

    model = xpnn.NeuralNetwork(2, [4], 2)
    model.compile()
    model.preprocessing = [SimpleImputer().fit(np.array([[1.0, 2.0]], np.float32))]
    model.save(tmp_path / "m.safetensors")
    assert xpnn.load(tmp_path / "m.safetensors").preprocessing[0].statistics_.tolist() == [1.0, 2.0]
    cfg, tensors = xpnn.io.read(tmp_path / "m.safetensors")
    cfg["preprocessing"][0]["stats"]["statistics_"] = [1.0]  # one value for two features
    from safetensors.numpy import save_file

    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"format": xpnn.io.FORMAT, "xpnn": json.dumps(cfg)})
    with pytest.raises(ValueError, match=r"'preprocessing\[0\]' is not a fitted SimpleImputer"):
        xpnn.load(tmp_path / "bad.safetensors")


# ---- the fuzz test ---------------------------------------------------------------------------

CELLS = st.sampled_from(["1", "0", "-2.5", "", "NA", "nan", "inf", "1e39", "x", '"q"', "3", "1e400", "٣"])
FLAGS = {
    "train": [
        "--data",
        "--hidden",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--activation",
        "--validation-split",
        "--impute",
        "--seed",
        "--model",
        "--backend",
        "--device",
        "--verbose",
    ],
    "evaluate": ["--data", "--backend", "--device"],
    "predict": ["--backend", "--device", "--force"],
    "info": [],
}
VALUES = st.sampled_from(
    ["{csv}", "{npy}", "{folder}", "/dev/null", "{model}", "0", "1", "-1", "2", "0.5", "nan", "1e9", "", "numpy",
     "cuda", "mean", "cnn", "mlp", "relu", "sgd", "zzz", "digits", "{missing}"]
)  # fmt: skip


@st.composite
def argv_and_files(draw):
    command = draw(st.sampled_from(sorted(FLAGS)))
    argv = [command]
    if command in ("evaluate", "predict"):
        argv.append(draw(st.sampled_from(["{model}", "{csv}", "{folder}", "/dev/null", "{missing}"])))
    if command == "predict":
        argv.append(draw(st.sampled_from(["{csv}", "{npy}", "{folder}", "{missing}", "/dev/null"])))
    for _ in range(draw(st.integers(0, 4))):
        argv.append(draw(st.sampled_from(FLAGS[command] or ["--help"])))
        if draw(st.booleans()):
            argv.append(draw(VALUES))
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), min_size=0, max_size=8))
    npy = draw(
        st.sampled_from(
            [np.zeros((3, 2)), np.array([[np.nan, 1.0]]), np.ones(4), np.array([["a"]]), np.full((2, 2), 1e39)]
        )
    )
    return argv, rows, npy


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=argv_and_files())
def test_fuzz_the_command_exits_0_or_2_without_a_traceback(case, tmp_path_factory, imputed_run):
    argv, rows, npy = case
    d = tmp_path_factory.mktemp("fuzz")
    (d / "f.csv").write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    np.save(d / "f.npy", npy)
    (d / "folder.csv").mkdir()
    paths = {
        "csv": d / "f.csv",
        "npy": d / "f.npy",
        "folder": d / "folder.csv",
        "model": imputed_run[0] / "model.safetensors",
        "missing": d / "missing.csv",
    }
    argv = [a.format(**paths) for a in argv]
    if argv[0] == "train":
        argv = [*argv, "--epochs", "1", "--hidden", "3", "--out", str(d / "out")]  # tiny: the last flags win
    code, _, stderr = run(argv)
    assert code in (0, 2), (argv, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    if code == 2 and not stderr.startswith("usage:"):  # argparse's usage errors are its own two lines
        assert len(stderr.splitlines()) == 1 and stderr.startswith(f"xpnn {argv[0]}: error: "), (argv, stderr)
