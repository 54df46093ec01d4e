"""Many workers on one study: worker processes at once on a journal file and on PostgreSQL
(the trials add up, numbers and parameter sets distinct), a worker killed mid-trial (its
trial failed and retried once, nothing lost), heartbeats, Ctrl-C; and the study's integrity:
another parameter space refused before any trial is stored, bad storage URLs as one line,
passwords masked, a failing build_fn reported once.

PostgreSQL: bash .ci/run starts a throw-away server and sets XPNN_TEST_POSTGRES_URL; without
it these tests skip, except under CI=true or XPNN_REQUIRE_ORACLES=1, where they fail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings

import pytest

optuna = pytest.importorskip("optuna")

import xpnn
from xpnn.model_selection import BayesSearch, IntUniform, LogUniform, mask_url, open_storage
from xpnn.model_selection.storage import close

HERE = os.path.dirname(__file__)
WORKER = os.path.join(HERE, "_search_worker.py")
SRC = os.path.join(HERE, "..", "..", "src")
SPACE = {"hidden": IntUniform(2, 24), "lr": LogUniform(1e-3, 0.3)}
FIT = {"epochs": 1, "batch_size": 32}
State = optuna.trial.TrialState
COMPLETE, FAIL, WAITING = State.COMPLETE, State.FAIL, State.WAITING


def _storage_url(kind, request, tmp_path) -> str:
    """A storage URL of a kind: a fresh journal file, or the test PostgreSQL server (studies
    get unique names there)."""
    if kind == "journal":
        return f"journal:{tmp_path / 'study.journal'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["journal", "postgresql"])
def storage(request, tmp_path):
    return _storage_url(request.param, request, tmp_path)


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = xpnn.load_digits(flatten=True)
    return X[:120], y[:120]


def build(hidden=8, lr=0.03):
    model = xpnn.NeuralNetwork(64, hidden, 10, seed=0)
    return model.compile("softmax_cross_entropy", xpnn.Adam(lr=lr))


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def _worker(url, study, n_iter, *extra):
    return subprocess.Popen(
        [sys.executable, WORKER, url, study, str(n_iter), *map(str, extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _finish(proc, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _trials(url, name) -> list:
    """The study's trials, read with a storage closed afterwards."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    finally:
        close(storage)


# random on PostgreSQL is left out to keep the file short: TPE's first trials are random draws
@pytest.mark.parametrize(
    ("kind", "sampler"),
    [("journal", "tpe"), ("journal", "random"), ("journal", "grid"), ("postgresql", "tpe"), ("postgresql", "grid")],
)
def test_two_workers_at_once_add_up_without_repeating(kind, sampler, request, tmp_path):
    storage = _storage_url(kind, request, tmp_path)
    name, n = f"two-{uuid.uuid4().hex[:8]}", 3
    start = time.time() + 4.0  # both imported by then: their trials run side by side
    # the same seed for both: the hard case for distinct candidates
    procs = [_worker(storage, name, n, "--sampler", sampler, "--start-at", start) for _ in range(2)]
    runs = [_finish(p) for p in procs]
    trials = _trials(storage, name)
    assert [t.state for t in trials] == [COMPLETE] * (2 * n)
    assert sorted(runs[0]["mine"] + runs[1]["mine"]) == list(range(2 * n))  # every number once
    assert all(len(r["mine"]) == n for r in runs)
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 2 * n  # no candidate run twice
    assert max(r["results"] for r in runs) == 2 * n  # the last to finish saw the whole study


def test_workers_starting_together_on_an_empty_database_both_create_and_join(postgres_url):
    """Optuna creates its tables when a storage first opens a database: two workers doing it
    at once collided ("duplicate key value violates unique constraint"); the second now
    waits on an advisory lock."""
    import sqlalchemy

    database = f"xpnn_fresh_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    url = postgres_url.rpartition("/")[0] + "/" + database
    try:
        start = time.time() + 4.0
        procs = [_worker(url, "fresh", 2, "--seed", seed, "--start-at", start) for seed in (0, 1)]
        runs = [_finish(p) for p in procs]
        assert sorted(runs[0]["mine"] + runs[1]["mine"]) == [0, 1, 2, 3]
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def test_a_killed_worker_s_trial_is_failed_and_retried_once(storage):
    name = f"kill-{uuid.uuid4().hex[:8]}"
    ready = os.path.join(os.path.dirname(storage.partition(":")[2]) if storage.startswith("journal:") else "/tmp", name)
    doomed = _worker(storage, name, 5, "--hang-at-trial", 2, "--ready", ready)
    deadline = time.time() + 120
    while not os.path.exists(ready):
        assert doomed.poll() is None and time.time() < deadline, doomed.communicate()[1]
        time.sleep(0.1)
    doomed.send_signal(signal.SIGKILL)  # mid-trial: trial 2 is running
    doomed.communicate()  # reaps it and closes its pipes
    os.remove(ready)
    before = _trials(storage, name)
    assert [t.state for t in before] == [COMPLETE, COMPLETE, optuna.trial.TrialState.RUNNING]
    run = _finish(_worker(storage, name, 3))
    trials = _trials(storage, name)
    assert trials[2].state == FAIL  # found dead at the new worker's start
    retry = trials[3]
    assert retry.state == COMPLETE and retry.system_attrs["failed_trial"] == 2 and retry.params == trials[2].params
    assert run["mine"] == [3, 4, 5]  # the retry first, then its own
    for old, now in zip(before[:2], trials[:2]):  # completed trials kept as they were
        assert now.state == COMPLETE and now.values == old.values and now.params == old.params
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, FAIL, COMPLETE, COMPLETE, COMPLETE]


def test_a_running_worker_retries_the_trial_of_a_worker_that_died_meanwhile(tmp_path):
    """Found after the running worker's next trial, not only when a worker starts."""
    url, name = f"journal:{tmp_path / 'study.journal'}", "meanwhile"
    ready = str(tmp_path / "ready")
    doomed = _worker(url, name, 3, "--hang-at-trial", 0, "--ready", ready)
    while not os.path.exists(ready):
        assert doomed.poll() is None, doomed.communicate()[1]
        time.sleep(0.1)
    gate = tmp_path / "gate"  # the survivor's second trial waits for the kill: it has trials left
    survivor = _worker(url, name, 6, "--gate", gate)  # starts while trial 0 is still alive, running
    deadline = time.time() + 120
    while not any(t.state == COMPLETE for t in _trials(url, name)):  # the survivor is under way
        assert survivor.poll() is None and time.time() < deadline, survivor.communicate()[1]
        time.sleep(0.1)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    gate.touch()
    run = _finish(survivor)
    trials = _trials(url, name)
    assert trials[0].state == FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == COMPLETE and retry[0].number in run["mine"]
    assert [t.state for t in trials].count(COMPLETE) == 6


def test_heartbeat_fails_a_silent_trial_of_another_machine_and_retries_it(postgres_url, digits):
    """A trial whose worker stops its heartbeat (a lost machine: no process to look up here)
    is failed after the grace period by the next worker, which runs it again."""
    name = f"beat-{uuid.uuid4().hex[:8]}"
    storage = open_storage(postgres_url, heartbeat_interval=1)  # stale after 2 s
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    with warnings.catch_warnings():  # the heartbeat is meant for optimize: here it is done by hand
        warnings.simplefilter("ignore", UserWarning)
        lost = study.ask()
    lost.suggest_int("hidden", 2, 24)
    lost.suggest_float("lr", 1e-3, 0.3, log=True)
    lost.set_user_attr("xpnn:worker", "another-machine:1234")
    storage.record_heartbeat(lost._trial_id)
    time.sleep(2.5)
    search = BayesSearch(build, SPACE, n_iter=2, cv=2, fit_kwargs=FIT, storage=storage, study_name=name, pruning=False)
    search.fit(*digits)
    trials = search.study_.trials
    close(storage)
    assert trials[0].state == FAIL
    assert trials[1].state == COMPLETE and trials[1].system_attrs["failed_trial"] == 0
    assert trials[1].params == trials[0].params
    assert [r["number"] for r in search.results_] == [1, 2]


def test_ctrl_c_fails_the_running_trial_queues_it_again_and_the_study_goes_on(tmp_path, digits):
    url = f"journal:{tmp_path / 'study.journal'}"
    calls = []

    def interrupted_build(hidden=8, lr=0.03):
        calls.append(hidden)
        if len(calls) == 3:  # the second trial's first fold (cv=2)
            raise KeyboardInterrupt
        return build(hidden, lr)

    search = BayesSearch(interrupted_build, SPACE, n_iter=3, cv=2, fit_kwargs=FIT, storage=url, pruning=False)
    with pytest.raises(KeyboardInterrupt):
        search.fit(*digits)
    trials = _trials(url, "xpnn")
    assert [t.state for t in trials] == [COMPLETE, FAIL, WAITING]  # nothing left running
    assert trials[2].params == trials[1].params
    again = BayesSearch(build, SPACE, n_iter=2, cv=2, fit_kwargs=FIT, storage=url, pruning=False).fit(*digits)
    assert [t.state for t in again.study_.trials] == [COMPLETE, FAIL, COMPLETE, COMPLETE]
    assert [r["number"] for r in again.results_] == [0, 2, 3]


def test_n_trials_total_stops_every_worker(tmp_path, digits):
    url = f"journal:{tmp_path / 'study.journal'}"
    make = lambda: BayesSearch(
        build, SPACE, n_iter=5, cv=2, fit_kwargs=FIT, storage=url, pruning=False, n_trials_total=7
    )
    first = make().fit(*digits)
    assert len(first.results_) == 5
    second = make().fit(*digits)  # stops once the study holds 7
    assert len(second.results_) == 7
    third = make().fit(*digits)  # runs none: the best of the 7 is refit
    assert len(third.results_) == 7 and third.best_params_ == second.best_params_


# ---- the study's integrity --------------------------------------------------------------


def test_another_space_is_refused_before_any_trial_is_stored(tmp_path, digits):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make = lambda space: BayesSearch(build, space, n_iter=2, cv=2, fit_kwargs=FIT, storage=url, pruning=False)
    make(SPACE).fit(*digits)
    for other in (
        {"hidden": IntUniform(2, 24)},  # a parameter less
        {"hidden": IntUniform(2, 48), "lr": LogUniform(1e-3, 0.3)},  # another range
        {**SPACE, "width": [1, 2]},  # a parameter more
    ):
        with pytest.raises(ValueError, match="was made with another parameter space"):
            make(other).fit(*digits)
        assert len(_trials(url, "xpnn")) == 2  # nothing stored
    again = make(SPACE).fit(*digits)  # the original search still loads its study
    assert len(again.results_) == 4


@pytest.mark.parametrize(
    "bad", ["not a url", "postgres//user@host/db", "nosuchdb://u:hunter2@h/db", "journal:", "sqlite:/x.db"]
)
def test_a_bad_storage_url_is_one_line_naming_the_argument_and_the_forms(bad):
    with pytest.raises(ValueError) as info:
        BayesSearch(build, SPACE, storage=bad)
    message = str(info.value)
    assert message.startswith("BayesSearch: storage") and "\n" not in message
    assert "journal:FILE" in message or "names no file" in message
    assert "hunter2" not in message


def test_an_unreachable_database_is_one_line_with_the_password_masked(digits):
    url = "postgresql://me:hunter2@127.0.0.1:1/db"  # nothing listens on port 1
    search = BayesSearch(build, SPACE, n_iter=1, cv=2, fit_kwargs=FIT, storage=url)
    with pytest.raises(RuntimeError) as info:
        search.fit(*digits)
    message = str(info.value)
    assert "postgresql://me:***@127.0.0.1:1/db" in message and "hunter2" not in message
    assert "\n" not in message and info.value.__cause__ is None and info.value.__suppress_context__


def test_mask_url():
    assert mask_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert mask_url("journal:a:b@c") == "journal:a:b@c"


def test_a_failing_build_fn_is_reported_once_with_its_traceback(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import xpnn\n"
        "from xpnn.model_selection import BayesSearch, IntUniform\n"
        "def build(hidden):\n"
        "    raise ValueError('build_fn exploded here')\n"
        "(X, y), _ = xpnn.load_digits(flatten=True)\n"
        f"BayesSearch(build, {{'hidden': IntUniform(2, 8)}}, n_iter=1, cv=2, storage='sqlite:///{tmp_path}/s.db')"
        ".fit(X[:60], y[:60])\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("ValueError: build_fn exploded here") == 1, result.stderr
    assert result.stderr.count("Traceback") == 1
