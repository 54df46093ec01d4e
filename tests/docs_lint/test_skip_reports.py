"""A skip names the test it skipped: ``pytest -rs`` lists the test file and line, and the
reason says which fixture or library was missing, whether the skip came from the test, a
fixture of tests/conftest.py or ``pytest.importorskip``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_skip_located_outside_the_test_moves_to_the_test_and_names_the_place(request, root_conftest):
    item = request.node
    path, line = item.reportinfo()[:2]
    inside_pytest = ("/usr/lib/python3/site-packages/_pytest/fixtures.py", 1234, "could not import 'x'")
    moved = root_conftest.skip_location(inside_pytest, item)
    assert moved == (str(path), line + 1, "could not import 'x' (skipped in _pytest/fixtures.py:1234)")
    in_conftest = (str(ROOT / "tests" / "conftest.py"), 201, "backend unavailable: cupy")
    assert (
        root_conftest.skip_location(in_conftest, item)[2]
        == "backend unavailable: cupy (skipped in tests/conftest.py:201)"
    )
    in_the_test = (str(path), 17, "no float16")
    assert root_conftest.skip_location(in_the_test, item) == in_the_test


def test_skips_from_fixtures_are_reported_at_the_test_with_the_fixture_named():
    """A child run without XPNN_TEST_POSTGRES_URL: the session-scoped postgres_url fixture
    of tests/conftest.py skips two tests in two areas, and each ``SKIPPED`` line names
    that test's module and line, and the fixture."""
    env = {k: v for k, v in os.environ.items() if k not in ("XPNN_TEST_POSTGRES_URL", "CI", "XPNN_REQUIRE_ORACLES")}
    env.pop("XPNN_TEST_BACKEND", None)
    tests = [
        "tests/model_selection/test_shared_study.py::test_workers_starting_together_on_an_empty_database_both_create_and_join",
        "tests/cli/test_tune_cli.py::test_the_password_appears_nowhere",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", *tests],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(lines) == 2, run.stdout[-3000:]
    for line, test in zip(sorted(lines), sorted(tests)):
        where = test.split("::")[0]
        assert re.match(
            rf"SKIPPED \[1\] {re.escape(where)}:\d+: needs PostgreSQL \(the postgres_url fixture\)", line
        ), line


def test_xdist_runs_whole_files_unless_dist_is_named(root_conftest):
    # -n N alone gets whole files per worker (JAX's compiles shared in a file); --dist wins
    assert not root_conftest.dist_named(["-n", "2", "tests"])
    assert root_conftest.dist_named(["-n", "2", "--dist", "load"])
    assert root_conftest.dist_named(["--dist=worksteal"])
    assert not root_conftest.dist_named(["--distribution-notes"])
