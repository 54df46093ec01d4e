"""The ``xpnn`` command run for real, in a subprocess: bad labels and first rows of CSV
files, run folders that must not mix two runs, Ctrl-C during training, predict's --out,
NaN inputs, and out-of-memory. Every failure is one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnn
from xpnn.cli import MAX_CLASSES, _new_run_folder, main
from xpnn.datasets import load_csv

TIMEOUT = 120


def xpnn_cli(*argv, cwd=None):
    """The finished ``python -m xpnn.cli ARGV`` (returncode, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "xpnn.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


def one_error_line(done, code=2):
    """The only stderr line of a failed command, checked: exit code, no traceback."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def labelled_csv(path, labels, header=True):
    """A small CSV (2 features, last column the label); the labels are written as given."""
    rows = [f"{i % 7}.5,{i % 3},{label}" for i, label in enumerate(labels)]
    path.write_text("\n".join((["a,b,label"] if header else []) + rows) + "\n")
    return path


# ---- labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, message",
    [
        ("1000000", f"line 7: label 1000000 would make 1,000,001 classes; xpnn train supports at most {MAX_CLASSES:,}"),
        ("1e300", "line 7, column 3: labels must be non-negative integers, found 1e+300 (too large"),
        ("2.5", "line 7, column 3: labels must be non-negative integers, found 2.5"),
        ("-3", "line 7, column 3: labels must be non-negative integers, found -3"),
    ],
)
def test_train_checks_labels_before_building_a_model(tmp_path, label, message):
    labels = [0, 1, 2, 0, 1, label, 2, 0, 1, 2]  # line 1 is the header: the bad label is on line 7
    data = labelled_csv(tmp_path / "my.csv", labels)
    done = xpnn_cli("train", "--data", data, "--epochs", 1, "--out", tmp_path / "run")
    line = one_error_line(done)
    assert line.startswith(f"xpnn train: error: {data}, ")
    assert message in line
    assert "-9223372036854775808" not in line  # 1e300 as int64
    assert not (tmp_path / "run").exists()  # refused before a model was built or a folder made


def test_load_csv_refuses_a_label_too_large_for_int64(tmp_path):
    path = labelled_csv(tmp_path / "big.csv", [0, 1, "1e300"], header=False)
    with pytest.raises(
        ValueError,
        match=r"big\.csv, line 3, column 3: labels must be non-negative integers, "
        r"found 1e\+300 \(too large",
    ):
        load_csv(path)
    _, y = load_csv(labelled_csv(tmp_path / "ok.csv", [0, 1, "9007199254740991"], header=False))  # 2**53 - 1
    assert y.tolist() == [0, 1, 2**53 - 1]


def test_train_warns_about_classes_without_samples(tmp_path):
    data = labelled_csv(tmp_path / "gaps.csv", [0, 1, 5] * 10)
    done = xpnn_cli("train", "--data", data, "--epochs", 1, "--hidden", 4, "--verbose", 0, "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"xpnn train: warning: {data}: no sample has label 2, 3, 4; the model has 6 outputs anyway (labels 0 to 5)\n"
    )


# ---- a CSV file's first row -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,abc,0\n2,3,1\n", "line 1, column 2: expected a number, found 'abc' (a header row must have no numbers"),
        ("\nx1,2020,label\n1,2,0\n", "line 2, column 1: expected a number, found 'x1'"),
        ("1,,0\n2,3,1\n", "line 1, column 2: expected a number, found an empty cell"),
    ],
)
def test_load_csv_first_row_with_some_numbers_is_not_a_header(tmp_path, text, message):
    path = tmp_path / "first.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_csv(path)
    assert str(err.value).startswith(f"{path}, ") and message in str(err.value)


def test_load_csv_header_has_no_numbers(tmp_path):
    (tmp_path / "h.csv").write_text(",name,label\n1,2,0\n3,4,1\n")  # pandas' index column: an empty header cell
    X, y = load_csv(tmp_path / "h.csv")
    assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]


def test_train_and_predict_refuse_a_first_row_that_mixes_numbers_and_text(tmp_path, model_file):
    data = tmp_path / "train.csv"
    data.write_text("0.5,oops,1\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(20)))
    line = one_error_line(xpnn_cli("train", "--data", data, "--epochs", 1, "--out", tmp_path / "run"))
    assert line == (
        f"xpnn train: error: {data}, line 1, column 2: expected a number, found 'oops' "
        f"(a header row must have no numbers in it)"
    )

    inputs = tmp_path / "inputs.csv"
    inputs.write_text(",".join(["0"] * 63 + ["x"]) + "\n" + ",".join(["0"] * 64) + "\n")
    line = one_error_line(xpnn_cli("predict", model_file, inputs))
    assert line.startswith(f"xpnn predict: error: {inputs}, line 1, column 64: expected a number, found 'x'")


# ---- run folders -------------------------------------------------------------------------------


def test_new_run_folder_takes_the_next_free_name(tmp_path):
    stamp = "20250102-030405"
    made = [_new_run_folder(tmp_path / "runs", stamp) for _ in range(3)]
    assert [os.path.basename(p) for p in made] == [stamp, f"{stamp}-2", f"{stamp}-3"]
    assert all(os.path.isdir(p) and not os.listdir(p) for p in made)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    """Another run holds runs/<stamp> for every second this run may start in."""
    now = time.time()
    taken = {time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s)) for s in range(-1, 60)}
    for stamp in taken:
        (tmp_path / "runs" / stamp).mkdir(parents=True)
        (tmp_path / "runs" / stamp / "history.csv").write_text("the other run's\n")
    done = xpnn_cli("train", "--epochs", 1, "--hidden", 8, "--verbose", 0, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    new = [p for p in (tmp_path / "runs").iterdir() if p.name not in taken]
    assert len(new) == 1 and new[0].name.endswith("-2") and new[0].name[:-2] in taken
    wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert (new[0] / "model.safetensors").exists() and wrote[0].endswith(f" to {new[0].relative_to(tmp_path)}")
    assert json.loads((new[0] / "metrics.json").read_text())["interrupted"] is False
    for stamp in taken:  # untouched
        assert [p.name for p in (tmp_path / "runs" / stamp).iterdir()] == ["history.csv"]


def test_out_holding_a_previous_run_needs_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"test_accuracy": 0.5}')
    (out / "model.onnx").write_bytes(b"an older export")
    (out / "notes.txt").write_text("mine")
    line = one_error_line(xpnn_cli("train", "--epochs", 1, "--hidden", 8, "--out", out))
    assert line == (
        f"xpnn train: error: --out {out} already holds a previous run (metrics.json, model.onnx); "
        f"choose another folder, or pass --force to replace that run"
    )
    assert (out / "metrics.json").read_text() == '{"test_accuracy": 0.5}'

    done = xpnn_cli("train", "--epochs", 1, "--hidden", 8, "--verbose", 0, "--out", out, "--force")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert not (out / "model.onnx").exists()  # no file of the old run beside the new one
    assert (out / "notes.txt").read_text() == "mine"  # not a run's file: kept


# ---- Ctrl-C ---------------------------------------------------------------------------------


def start_training(out):
    """A long `xpnn train` (stdout and stderr together), read until its first epoch ended."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xpnn.cli",
            "train",
            "--epochs",
            "1000",
            "--verbose",
            "2",
            "--hidden",
            "16",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Epoch 1/1000"):
            return proc, seen
    proc.wait()
    pytest.fail(f"training ended before its first epoch: {''.join(seen)}")


def finish(proc, seen):
    try:
        rest, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(seen) + rest


def test_ctrl_c_stops_training_and_saves_the_model(tmp_path):
    out = tmp_path / "run"
    proc, seen = start_training(out)
    proc.send_signal(signal.SIGINT)
    output = finish(proc, seen)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert "xpnn train: stopping after this batch" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and 1 <= metrics["epochs"] < 1000
    model = xpnn.load(out / "model.safetensors")
    assert model.epochs_trained == metrics["epochs"]
    assert f"xpnn train: interrupted after {metrics['epochs']} of 1000 epochs" in output
    assert (out / "history.csv").exists()


def test_a_second_ctrl_c_quits_at_once_without_a_traceback(tmp_path):
    proc, seen = start_training(tmp_path / "run")
    proc.send_signal(signal.SIGINT)
    for line in proc.stdout:  # the first one was heard: the next one is a KeyboardInterrupt
        seen.append(line)
        if line.startswith("xpnn train: stopping"):
            break
    proc.send_signal(signal.SIGINT)
    output = finish(proc, seen)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert output.rstrip().endswith("xpnn train: interrupted (Ctrl-C)"), output


# ---- predict --out -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    (X, y), _ = xpnn.load_digits(flatten=True)
    model = xpnn.NeuralNetwork(64, [16], 10, seed=0)
    model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    model.fit(X, y, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    model.save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "inputs.csv"
    X = xpnn.load_digits(flatten=True)[1][0][:5]
    path.write_text("\n".join(",".join(f"{v:g}" for v in row) for row in X) + "\n")
    return path


def test_predict_out_may_not_be_the_input_or_the_model(model_file, inputs):
    before = inputs.read_bytes(), model_file.read_bytes()
    for what, target in (("INPUT", inputs), ("MODEL", model_file)):
        line = one_error_line(xpnn_cli("predict", model_file, inputs, "--out", target, "--force"))
        assert line.startswith(f"xpnn predict: error: --out {target} is the {what} file ")
    assert (inputs.read_bytes(), model_file.read_bytes()) == before


def test_predict_out_overwrites_only_with_force(model_file, inputs, tmp_path):
    target = tmp_path / "pred.csv"
    target.write_text("keep me\n")
    line = one_error_line(xpnn_cli("predict", model_file, inputs, "--out", target))
    assert line == (
        f"xpnn predict: error: --out {target} already exists; choose another file, or pass --force to overwrite it"
    )
    assert target.read_text() == "keep me\n"
    done = xpnn_cli("predict", model_file, inputs, "--out", target, "--force")
    assert done.returncode == 0, done.stderr
    assert target.read_text().splitlines()[0] == "label," + ",".join(f"p{i}" for i in range(10))
    assert len(target.read_text().splitlines()) == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_predict_refuses_nan_inputs(model_file, tmp_path):
    X = np.zeros((4, 64), dtype=np.float32)
    X[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", X)
    line = one_error_line(xpnn_cli("predict", model_file, tmp_path / "nan.npy"))
    assert line.startswith("xpnn predict: error: ") and "NaN or inf" in line


# ---- out of memory, Ctrl-C anywhere ------------------------------------------------------------------


def test_out_of_memory_is_one_line(tmp_path):
    # a 64 x 10**11 weight matrix: NumPy refuses to allocate it at once
    line = one_error_line(xpnn_cli("train", "--hidden", 10**11, "--epochs", 1, "--out", tmp_path / "run"))
    assert line.startswith("xpnn train: error: out of memory")
    assert line.endswith("try a smaller --batch-size, --hidden or data set")


@pytest.mark.parametrize(
    "exc, code, message",
    [
        (MemoryError(), 2, "xpnn info: error: out of memory; try a smaller input\n"),
        (KeyboardInterrupt(), 130, "xpnn info: interrupted (Ctrl-C)\n"),
    ],
)
def test_main_turns_memory_error_and_ctrl_c_into_one_line(monkeypatch, capsys, exc, code, message):
    def raise_it(args):
        raise exc

    monkeypatch.setattr("xpnn.cli.cmd_info", raise_it)
    assert main(["info"]) == code
    assert capsys.readouterr().err == message


# ---- missing cells: --impute -----------------------------------------------------------------------


def csv_with_holes(path, holes, n=50, label_holes=()):
    """A CSV (header a,b,c,label; 50 samples of 3 features) with the cells in ``holes``
    ({(row, column): text}, rows and columns from 0) replaced by that text (a missing value)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3)) + [0, 5, -5]
    y = (X[:, 0] > 0).astype(int)
    rows = []
    for i in range(n):
        cells = [f"{v:.4f}" for v in X[i]] + [str(y[i])]
        for (r, c), text in holes.items():
            if r == i:
                cells[c] = text
        rows.append(",".join(cells))
    path.write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    return path


HOLES = {(3, 0): "", (4, 2): "NA", (10, 0): "nan", (11, 2): " n/a ", (20, 0): "", (30, 2): "NULL", (41, 0): "NaN"}


def test_load_csv_reads_missing_cells_as_nan_when_asked(tmp_path):
    path = csv_with_holes(tmp_path / "holes.csv", HOLES)
    X, y = load_csv(path, missing=True)
    assert X.shape == (50, 3) and y.shape == (50,)
    assert sorted(map(tuple, np.argwhere(np.isnan(X)).tolist())) == sorted(HOLES)
    with pytest.raises(
        ValueError,
        match=r"line 5, column 1: expected a number, found an empty cell \(a missing "
        r"value\)",
    ):  # the first one, in file order (line 1 is the header)
        load_csv(path)
    (tmp_path / "inf.csv").write_text("1,,0\n2,inf,1\n")  # a first row with an empty cell is data, not a header
    with pytest.raises(ValueError, match="line 2, column 2: expected a finite number, found 'inf'"):
        load_csv(tmp_path / "inf.csv", missing=True)
    (tmp_path / "first.csv").write_text("1,,0\n2,3,1\n")
    X, y = load_csv(tmp_path / "first.csv", missing=True)
    assert np.isnan(X[0, 1]) and X[1].tolist() == [2, 3] and y.tolist() == [0, 1]


def test_train_imputes_missing_cells_from_the_training_split(tmp_path):
    data = csv_with_holes(tmp_path / "holes.csv", HOLES)
    out = tmp_path / "run"
    done = xpnn_cli(
        "train", "--data", data, "--impute", "mean", "--epochs", 1, "--hidden", 4, "--verbose", 0, "--out", out
    )
    assert done.returncode == 0, done.stderr
    # which cells landed in which split: the CLI's split (seed 0, 20% test)
    X, y = load_csv(data, missing=True)
    X_train, X_test, _, _ = xpnn.train_test_split(X, y, test_size=0.2, seed=0)
    n_train, n_test = int(np.isnan(X_train).sum()), int(np.isnan(X_test).sum())
    assert n_train + n_test == len(HOLES) and n_test > 0
    assert done.stdout.splitlines()[0] == (
        f"xpnn: {data}: imputed {len(HOLES)} missing cells ({n_train} in the training split, {n_test} in the test "
        f"split; columns 1, 3) with each column's mean over the training split (--impute mean)"
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["impute"] == "mean" and metrics["imputed_cells"] == {"train": n_train, "test": n_test}
    # the fill values are the training split's means: the test samples did not leak into them
    fill = np.array(metrics["imputer"]["stats"]["statistics_"])
    np.testing.assert_allclose(fill, np.nanmean(X_train.astype(np.float64), axis=0), rtol=1e-6)  # summed in float64
    assert not np.allclose(fill, np.nanmean(X, axis=0), rtol=1e-4)
    assert 0 <= metrics["test_accuracy"] <= 1


def test_train_refuses_missing_cells_without_impute(tmp_path):
    data = csv_with_holes(tmp_path / "holes.csv", HOLES)
    line = one_error_line(xpnn_cli("train", "--data", data, "--epochs", 1, "--out", tmp_path / "run"))
    assert line == (
        f"xpnn train: error: {data}, line 5, column 1: expected a number, found an empty cell (a missing "
        f"value); pass --impute mean, median or most_frequent to fill missing feature cells from the "
        f"training split"
    )
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_missing_label_even_with_impute(tmp_path):
    data = csv_with_holes(tmp_path / "nolabel.csv", {(7, 3): "", (12, 0): ""})
    line = one_error_line(
        xpnn_cli("train", "--data", data, "--impute", "median", "--epochs", 1, "--out", tmp_path / "run")
    )
    assert line == (
        f"xpnn train: error: {data}, line 9, column 4: the label is missing; every sample needs one "
        f"(only feature cells may be missing)"
    )
    # without --impute: the same cell, and no advice to impute it
    line = one_error_line(xpnn_cli("train", "--data", data, "--epochs", 1, "--out", tmp_path / "run"))
    assert line == (
        f"xpnn train: error: {data}, line 9, column 4: expected a number, found an empty cell (a missing value)"
    )


def test_train_refuses_a_column_without_values_in_the_training_split(tmp_path):
    data = csv_with_holes(tmp_path / "empty.csv", {(i, 1): "" for i in range(50)})
    line = one_error_line(
        xpnn_cli("train", "--data", data, "--impute", "median", "--epochs", 1, "--out", tmp_path / "run")
    )
    assert line == (
        f"xpnn train: error: {data}: column 2 has no value in any of the 40 samples of the training "
        f"split, so --impute median has nothing to fill it from; remove that column"
    )


def test_impute_on_data_without_missing_cells_says_so(tmp_path):
    done = xpnn_cli(
        "train", "--impute", "most_frequent", "--epochs", 1, "--hidden", 8, "--verbose", 0, "--out", tmp_path / "run"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "xpnn: --impute most_frequent: digits has no missing cells; nothing imputed"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["imputed_cells"] == {"train": 0, "test": 0} and "imputer" not in metrics


# ---- --augment, and the defaults per data set --------------------------------------------------------


def test_train_augment(tmp_path):
    runs = {}
    for name, flags in (("plain", []), ("augmented", ["--augment"])):
        done = xpnn_cli("train", *flags, "--epochs", 2, "--hidden", 16, "--verbose", 1, "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text()), done.stdout
    metrics, stdout = runs["augmented"]
    assert "xpnn: augmenting the training images: random shifts of up to 1 pixel (seed 0)" in stdout
    assert metrics["augment"] == {"shift": 1, "flip": False, "noise": 0.0} and runs["plain"][0]["augment"] is None
    assert metrics["test_loss"] != runs["plain"][0]["test_loss"]  # the training images were changed

    data = labelled_csv(tmp_path / "my.csv", [0, 1] * 10)
    line = one_error_line(xpnn_cli("train", "--data", data, "--augment", "--out", tmp_path / "run"))
    assert line == f"xpnn train: error: --augment needs image data (digits, fashion-mnist, mnist), found --data {data}"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--data", "fashion-mnist"], ([128], 20, 128)),
        (["--data", "mnist", "--model", "cnn"], ([128], 20, 128)),
        (["--data", "digits"], ([256, 128], 30, 32)),
        (["--data", "my.csv"], ([256, 128], 30, 32)),
        (["--data", "mnist", "--batch-size", "32", "--hidden", "64", "64", "--epochs", "3"], ([64, 64], 3, 32)),
    ],
)
def test_train_defaults_per_data_set(argv, expected):
    from xpnn.cli import _resolve_defaults, build_parser

    args = build_parser().parse_args(["train", *argv])
    _resolve_defaults(args)
    assert (args.hidden, args.epochs, args.batch_size) == expected


def test_train_help_states_the_defaults_per_data_set(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")  # argparse's width: no line breaks inside the phrases
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in (
        (
            "default: 128 for fashion-mnist and mnist, as examples/fashion_mnist_mlp.py; 256 128 for "
            "digits and CSV files"
        ),
        "default: 20 for fashion-mnist and mnist",
        "30 for digits and CSV files",
        "default: 128 for fashion-mnist and mnist, as examples/fashion_mnist_mlp.py; 32 for digits",
    ):
        assert default in text, text
    assert "--impute {none,mean,median,most_frequent}" in text and "--augment" in text
