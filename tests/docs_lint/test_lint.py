"""The code stays tidy: ruff's lint and format checks and mypy's type check, configured in
pyproject.toml, pass on the whole repository (what CI would otherwise run as separate steps)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["ruff-check", "ruff-format"]
)
def test_ruff(command):
    pytest.importorskip("ruff")  # in the lint extra, which the test extra includes
    done = run(*command)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy():
    pytest.importorskip("mypy")
    done = run("mypy")  # files and options: pyproject.toml [tool.mypy]
    assert done.returncode == 0, done.stdout + done.stderr
