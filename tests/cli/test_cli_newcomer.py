"""The ``xpnn`` command as a newcomer meets it: every flag has help, a bad flag shows the
subcommand's usage, a model evaluated on the wrong data says which data it needs, train
ends with the next commands, and ``info`` tells the truth about what is installed."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pathlib
import re
import shlex
import sys

import numpy as np
import pytest

from xpnn.cli import build_parser, main

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(argv):
    """(exit code, stdout, stderr) of ``xpnn ARGV`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _commands(parser, prefix="xpnn"):
    """(name, parser) of the command and of every subcommand, depth first."""
    yield prefix, parser
    for action in parser._actions:  # argparse keeps them there; it has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


# ---- help and usage --------------------------------------------------------------------------


def test_every_flag_and_argument_of_every_subcommand_has_help():
    commands = dict(_commands(build_parser()))
    assert {"xpnn train", "xpnn evaluate", "xpnn predict", "xpnn info", "xpnn tune"} <= set(commands)
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in commands.items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert not missing, "flags without help text: " + ", ".join(missing)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "info", "tune"])
def test_help_of_each_subcommand_shows_each_flag_with_its_text(command):
    code, stdout, _ = run([command, "--help"])
    assert code == 0 and stdout.startswith(f"usage: xpnn {command} ")
    parser = dict(_commands(build_parser()))[f"xpnn {command}"]
    for action in parser._actions:
        first_words = " ".join(action.help.split()[:2]).replace("%%", "%")
        assert first_words in " ".join(stdout.split()), (action.dest, first_words)


@pytest.mark.parametrize(
    "argv", [["train"], ["evaluate", "m.safetensors"], ["predict", "m.safetensors", "x.csv"], ["info"], ["tune"]]
)
def test_a_bad_flag_shows_the_subcommands_usage_and_exits_2(argv):
    command = argv[0]
    code, stdout, stderr = run([*argv, "--bogus", "1"])
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"usage: xpnn {command} ")
    assert f"xpnn {command}: error: unrecognized arguments: --bogus 1" in stderr


def test_a_bad_flag_before_the_subcommand_shows_the_top_level_usage():
    code, stdout, stderr = run(["--bogus", "train"])
    assert code == 2 and stdout == ""
    assert stderr.startswith("usage: xpnn [-h]") and "xpnn: error: unrecognized arguments: --bogus" in stderr


def test_a_bad_value_still_shows_the_subcommands_usage():
    code, _, stderr = run(["train", "--epochs", "many"])
    assert code == 2 and stderr.startswith("usage: xpnn train ") and "invalid int value: 'many'" in stderr


# ---- info ------------------------------------------------------------------------------------


def test_info_reports_array_api_strict_unavailable_when_it_does_not_import(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_strict(name, *args, **kwargs):
        if name.split(".")[0] == "array_api_strict":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_strict)
    code, stdout, stderr = run(["info"])
    assert code == 0 and stderr == ""
    line = next(line for line in stdout.splitlines() if line.startswith("backend array_api_strict: "))
    assert line == (
        'backend array_api_strict: unavailable (backend "array_api_strict" needs array-api-strict: '
        "pip install array-api-strict)"
    )
    assert "backend numpy: available, devices cpu" in stdout  # the others as before


def test_info_reports_array_api_strict_available_when_it_imports():
    pytest.importorskip("array_api_strict")
    code, stdout, _ = run(["info"])
    assert code == 0 and "backend array_api_strict: available, devices CPU_DEVICE, device1, device2\n" in stdout


# ---- train's next steps, and the data a model was trained on -------------------------------------


def _write_csv(path, n=60, features=6, classes=3, seed=0):
    """A labelled CSV the classes of which an MLP separates: the label is the largest of the
    first ``classes`` columns."""
    X = np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)
    y = X[:, :classes].argmax(axis=1)
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.5g")
    return path


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """`xpnn train` on a small generated CSV: (run folder, the CSV, stdout)."""
    folder = tmp_path_factory.mktemp("csv-run")
    data = _write_csv(folder / "six.csv")
    code, stdout, stderr = run(["train", "--data", data, "--hidden", 8, "--epochs", 2, "--out", folder / "run"])
    assert code == 0, stderr
    return folder / "run", data, stdout


def _next_commands(stdout):
    """The commands under "next:" that train printed, as argument lists (comments dropped)."""
    lines = stdout.splitlines()
    tail = lines[lines.index("next:") + 1 :]
    return [shlex.split(line, comments=True) for line in tail if line.strip().startswith("xpnn ")]


def test_train_ends_with_evaluate_and_predict_commands_that_run(csv_run):
    out, data, stdout = csv_run
    evaluate, predict = _next_commands(stdout)
    assert evaluate == ["xpnn", "evaluate", str(out / "model.safetensors"), "--data", str(data)]
    assert predict == ["xpnn", "predict", str(out / "model.safetensors"), str(out / "samples.npy")]

    code, printed, stderr = run(evaluate[1:])
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(printed)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)

    code, printed, stderr = run(predict[1:])
    assert code == 0, stderr
    rows = printed.splitlines()
    assert rows[0] == "label,p0,p1,p2" and len(rows) == 1 + 5
    labels = stdout.split("# 5 test samples, labels ")[1].split()[:5]
    assert all(label in "012" for label in labels)  # the samples' true labels, shown beside the command


def test_train_without_matplotlib_says_how_to_get_the_plots(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    code, stdout, stderr = run(["train", "--epochs", 1, "--hidden", 8, "--verbose", 0, "--out", tmp_path])
    assert code == 0 and stderr == ""
    assert not list(tmp_path.glob("*.png"))
    last = stdout.splitlines()[-1]
    assert "curves.png" in last and "confusion_matrix.png" in last and "train again" in last
    extra = re.search(r'pip install "xpnn\[(\w+)\]"', last)
    assert extra, last
    # the extra it names exists in pyproject.toml and brings matplotlib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(dep.startswith("matplotlib") for dep in pyproject["project"]["optional-dependencies"][extra[1]])


def test_the_run_folder_lists_what_train_wrote(csv_run):
    out, _, stdout = csv_run
    wrote = next(line for line in stdout.splitlines() if line.startswith("wrote "))
    names = wrote[len("wrote ") :].rsplit(" to ", 1)[0].split(", ")
    assert sorted(names) == sorted(p.name for p in out.iterdir())


def test_evaluate_on_other_data_names_the_data_the_model_was_trained_on(csv_run):
    out, data, _ = csv_run
    code, stdout, stderr = run(["evaluate", out / "model.safetensors"])  # --data left at digits
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert f"was trained on {data} (samples of shape (6,))" in stderr
    assert "--data digits holds samples of shape (64,)" in stderr
    assert stderr.rstrip().endswith(f"evaluate it on its data: --data {data}")


def test_predict_on_other_data_names_the_data_the_model_was_trained_on(csv_run, tmp_path):
    out, data, _ = csv_run
    inputs = tmp_path / "digits.npy"
    np.save(inputs, np.zeros((3, 64), np.float32))
    code, stdout, stderr = run(["predict", out / "model.safetensors", inputs])
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert f"was trained on {data} (samples of shape (6,)), but {inputs} holds samples of shape (64,)" in stderr


def test_a_model_file_without_notes_gets_a_hint_at_the_data(csv_run, tmp_path):
    import xpnn

    out, _, _ = csv_run
    old = tmp_path / "old.safetensors"
    xpnn.load(out / "model.safetensors").save(old)  # as files were written before train noted its data
    assert xpnn.io.read_notes(old) == {}
    code, stdout, stderr = run(["evaluate", old])
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "expected (batch, 6)" in stderr  # the layer's own words, then what to do
    assert f"{old} does not record the data it was trained on" in stderr and "give it the --data" in stderr


def test_model_file_notes_round_trip_and_are_checked(tmp_path):
    import xpnn
    from xpnn.io import read_notes, save

    model = xpnn.NeuralNetwork(3, 4, 2, seed=0)
    model.compile("softmax_cross_entropy", "adam")
    save(model, tmp_path / "m.safetensors", notes={"data": "x.csv", "input_shape": [3]})
    assert read_notes(tmp_path / "m.safetensors") == {"data": "x.csv", "input_shape": [3]}
    xpnn.load(tmp_path / "m.safetensors")  # the digest covers the notes: still loads
    with pytest.raises(TypeError, match="notes must be a dict"):
        save(model, tmp_path / "bad.safetensors", notes=["x.csv"])
    assert not (tmp_path / "bad.safetensors").exists()
