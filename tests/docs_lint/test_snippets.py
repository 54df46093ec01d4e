"""Every Python code block in README.md and docs/ runs as written: documentation that
cannot rot. A block that only illustrates (names undefined variables, needs a GPU) is
marked with ``<!-- illustrative -->`` on the line before its opening fence, and is
compiled (so it is at least valid Python) but not run."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARK = "<!-- illustrative -->"
FENCE = re.compile(r"^```python\s*$")


def blocks(path: pathlib.Path):
    """(first line number, code, illustrative) for each ```python block of a markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            start, i = i + 1, i + 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            yield start + 1, "\n".join(lines[start:i]) + "\n", before == MARK
        i += 1


def documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


CASES = [
    pytest.param(path, line, code, illustrative, id=f"{path.relative_to(ROOT)}:{line}")
    for path in documents()
    for line, code, illustrative in blocks(path)
]


def test_the_collector_finds_the_readme_blocks():
    found = [c for c in CASES if c.values[0].name == "README.md"]
    assert len(found) >= 2 and any(c.values[3] for c in found) and any(not c.values[3] for c in found)


@pytest.mark.parametrize("path, line, code, illustrative", CASES)
def test_documented_python_runs(path, line, code, illustrative, tmp_path, monkeypatch):
    compiled = compile(code, f"{path.name}:{line}", "exec")  # every block is valid Python
    if illustrative:
        return
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands in a temporary folder
    exec(compiled, {"__name__": "__snippet__"})
