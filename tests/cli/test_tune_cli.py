"""xpnn tune: the files a run writes, --show, space files and storage URLs as one-line
errors, two commands at once on one journal file, Ctrl-C, TensorBoard runs per trial, and
a storage password that appears in no file, line or message.

Tiny runs (the digits, 1-2 epochs, 2 folds): a few seconds each."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

optuna = pytest.importorskip("optuna")

import xpnn
from xpnn.cli import main
from xpnn.model_selection.storage import close, open_storage

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
TINY = ["--cv", "2", "--epochs", "1"]
SPACE = {"hidden": {"int": [8, 32], "log": True}, "lr": {"float": [1e-3, 1e-1], "log": True}}


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("XPNN_STORAGE", None)  # only where a test sets it
    return {**env, **extra}


def _trials(url, name="xpnn"):
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    finally:
        close(storage)


def _space(tmp_path, spec=SPACE, name="space.json"):
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return str(path)


def test_a_run_writes_the_best_model_the_table_and_the_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XPNN_STORAGE", raising=False)
    out = tmp_path / "run"
    args = ["tune", "--trials", "3", "--space", _space(tmp_path), "--out", str(out), *TINY]
    assert main(args) == 0
    printed = capsys.readouterr().out
    progress = [line for line in printed.splitlines() if line.startswith("[BayesSearch ")]
    assert [line.split("]")[0] for line in progress] == [f"[BayesSearch {i}/3, trial {i - 1}" for i in (1, 2, 3)]
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    best = json.loads((out / "best.json").read_text())
    top = max(rows, key=lambda r: float(r["mean_accuracy"]))
    assert best["best_trial"] == int(top["number"]) and best["best_cv_score"] == float(top["mean_accuracy"])
    assert f"accuracy {best['best_cv_score']:.4f}" in printed
    model = xpnn.load(str(out / "best.safetensors"))
    assert model.count_params() == 64 * best["best_params"]["hidden"] + best["best_params"]["hidden"] + (
        best["best_params"]["hidden"] * 10 + 10
    )
    assert (out / "history.png").stat().st_size > 1000 and (out / "study.journal").exists()
    # its data noted: xpnn evaluate on another data set names it
    assert xpnn.io.read_notes(out / "best.safetensors") == {
        "data": "digits",
        "data_flags": ["--data", "digits"],
        "input_shape": [64],
    }
    # a second worker later: the same study, 2 more trials; --show prints all 5 and runs none
    assert main(args[:2] + ["2"] + args[3:]) == 0
    capsys.readouterr()
    assert main(["tune", "--show", "--space", _space(tmp_path), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert sum(line.startswith("| ") for line in table.splitlines()) == 5 + 1  # header and 5 trials
    assert len(_trials(f"journal:{out / 'study.journal'}")) == 5


def test_nsga2_writes_the_pareto_front_and_prune_runs_with_hyperband(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XPNN_STORAGE", raising=False)
    space = _space(tmp_path)
    out = tmp_path / "nsga"
    assert main(["tune", "--trials", "4", "--sampler", "nsga2", "--space", space, "--out", str(out), *TINY]) == 0
    assert (out / "pareto.png").stat().st_size > 1000
    assert "n_params" in (out / "trials.csv").read_text().splitlines()[0]
    out = tmp_path / "hb"
    args = ["tune", "--trials", "3", "--prune", "hyperband", "--space", space, "--out", str(out), "--cv", "2"]
    assert main([*args, "--epochs", "3"]) == 0
    assert len(_trials(f"journal:{out / 'study.journal'}")) == 3


@pytest.mark.parametrize(
    ("spec", "name", "expected"),
    [
        ('{"lr": ', "s.json", "not valid JSON"),
        ("lr = [", "s.toml", "not valid TOML"),
        ({"width": [1, 2]}, "s.json", "width: unknown parameter; expected one of hidden"),
        ({"hidden": {"int": [16]}}, "s.json", "hidden: int expects [low, high]"),
        ({"hidden": {"int": [16.5, 32]}}, "s.json", "hidden: int expects [low, high]"),
        ({"lr": {"float": [0, 1], "log": True}}, "s.json", "lr: a log scale needs low > 0"),
        ({"lr": {"float": [1, 0.1]}}, "s.json", "lr: float expects low < high"),
        ({"lr": {"float": [0.1, 1], "step": 2}}, "s.json", "lr: unknown field 'step'"),
        ({"lr": {"range": [0.1, 1]}}, "s.json", 'lr: expected a list of values, {"int"'),
        ({"activation": []}, "s.json", "activation: expected a non-empty list"),
        ([1, 2], "s.json", "expected a table of parameters"),
        ('[hidden]\nint = [16, "x"]\n', "s.toml", "hidden: int expects [low, high]"),
    ],
)
def test_a_bad_space_file_is_one_line_naming_the_key(tmp_path, capsys, spec, name, expected):
    path = _space(tmp_path, spec, name)
    assert main(["tune", "--trials", "1", "--space", path, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"xpnn tune: error: --space {path}") and expected in err
    assert not (tmp_path / "o").exists()  # refused before anything is made


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--storage", "postgres//me:hunter2@h/db"],
            "--storage: storage must be None (in memory), 'sqlite:///FILE.db'",
        ),
        (["--storage", "journal:"], "names no file"),
        (["--sampler", "grid"], "sampler='grid' needs a list of values or an IntUniform for every parameter"),
        (["--prune", "--sampler", "cmaes"], "--prune works with --sampler tpe, random or grid"),
        (["--cv", "1"], "--cv must be at least 2"),
        (["--space", "/nonexistent/space.json"], "--space /nonexistent/space.json: cannot read it"),
        (["--space", "/"], "is a folder"),
        (["--data", "nothing.txt"], "--data must be one of"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, expected):
    assert main(["tune", "--trials", "1", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err
    assert "hunter2" not in err


def test_trials_is_required_without_show(capsys):
    assert main(["tune"]) == 2
    assert "--trials N is required" in capsys.readouterr().err


def test_two_commands_at_once_on_one_journal_file(tmp_path):
    out, n = tmp_path / "shared", 3
    cmd = [sys.executable, "-m", "xpnn.cli", "tune", "--trials", str(n), "--space", _space(tmp_path), "--out", str(out)]
    procs = [subprocess.Popen([*cmd, *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())]
    procs.append(subprocess.Popen([*cmd, *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
        assert sum(line.startswith("[BayesSearch ") for line in stdout.splitlines()) == n
    trials = _trials(f"journal:{out / 'study.journal'}")
    assert [t.number for t in trials] == list(range(2 * n))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 2 * n
    assert len({t.user_attrs["xpnn:worker"] for t in trials}) == 2  # both ran trials
    with open(out / "trials.csv", newline="") as f:  # whoever wrote it last saw the whole study
        assert len(list(csv.DictReader(f))) >= n + 1


def test_ctrl_c_ends_the_worker_cleanly_and_the_study_goes_on(tmp_path):
    out = tmp_path / "ctrl-c"
    cmd = [sys.executable, "-m", "xpnn.cli", "tune", "--space", _space(tmp_path), "--out", str(out), "--cv", "2"]
    long_trials = [*cmd, "--trials", "20", "--epochs", "30"]
    proc = subprocess.Popen(long_trials, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    for line in proc.stdout:  # after the first trial: the second is running
        if line.startswith("[BayesSearch 1/20"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr
    again = subprocess.run([*cmd, "--trials", "1", "--epochs", "1"], capture_output=True, text=True, env=_env())
    assert again.returncode == 0, again.stderr
    states = [t.state for t in _trials(f"journal:{out / 'study.journal'}")]
    assert optuna.trial.TrialState.RUNNING not in states and states.count(optuna.trial.TrialState.COMPLETE) >= 2


def test_tensorboard_has_one_run_per_trial_with_every_epoch(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.delenv("XPNN_STORAGE", raising=False)
    logs = tmp_path / "tb"
    args = ["tune", "--trials", "2", "--space", _space(tmp_path), "--out", str(tmp_path / "o"), "--cv", "2"]
    assert main([*args, "--epochs", "3", "--tensorboard", str(logs)]) == 0
    assert sorted(os.listdir(logs)) == ["trial-0", "trial-1"]
    for run in ("trial-0", "trial-1"):
        acc = event_accumulator.EventAccumulator(str(logs / run))
        acc.Reload()
        assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2, 3]  # the first fold's fit only


def test_the_password_appears_nowhere(tmp_path, postgres_url):
    """Every file the run writes, its output and its errors: the password is masked."""
    password = postgres_url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    assert password, "the test server's URL must carry a password"
    study, out = f"pw-{uuid.uuid4().hex[:8]}", tmp_path / "run"
    cmd = [sys.executable, "-m", "xpnn.cli", "tune", "--study", study, "--out", str(out), "--space", _space(tmp_path)]
    runs = [
        # the URL from the environment (kept out of the process list), with TensorBoard logs
        subprocess.run(
            [*cmd, "--trials", "2", *TINY, "--tensorboard", str(out / "tb")],
            capture_output=True,
            env=_env(XPNN_STORAGE=postgres_url),
        ),
        subprocess.run([*cmd, "--show", "--storage", postgres_url], capture_output=True, env=_env()),
        # errors: another space on the study, and a wrong database name
        subprocess.run(
            [*cmd, "--trials", "1", "--storage", postgres_url, "--space", _space(tmp_path, {"lr": [0.1]}, "o.json")],
            capture_output=True,
            env=_env(),
        ),
        subprocess.run(
            [*cmd, "--trials", "1", "--storage", postgres_url.rpartition("/")[0] + "/nosuchdb"],
            capture_output=True,
            env=_env(),
        ),
    ]
    assert [r.returncode for r in runs] == [0, 0, 2, 2], runs[0].stderr.decode()
    masked = postgres_url.replace(password, "***")
    assert masked.encode() in runs[0].stdout and masked.encode() in runs[2].stderr
    written = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files]
    assert any(path.endswith("best.json") for path in written) and any("tfevents" in p for p in written)
    for path in written:
        with open(path, "rb") as f:
            assert password.encode() not in f.read(), path
    for r in runs:
        assert password.encode() not in r.stdout + r.stderr
        assert b"Traceback" not in r.stderr
