"""MkDocs hooks of the xpnn site: what the pages show is made from the code at build time.

- ``<!-- xpnn:help train -->`` on a line of its own becomes a text block holding the real
  ``xpnn train --help`` (likewise ``evaluate``, ``predict``, ``info``, or nothing for the
  top-level help), so the CLI page always shows the installed command's options.
- ``<!-- xpnn:benchmark-report benchmarks/results/NAME.json -->`` becomes the markdown
  report that ``benchmarks/report.py`` prints for that results file (its headings moved
  down a level to fit the page), in a ``wide-report`` block (compact tables).
- Math written as ``\\( ... \\)`` and ``\\[ ... \\]`` (``pymdownx.arithmatex`` in generic
  mode marks it) is turned into MathML by latex2mathml while the site is built: browsers
  draw MathML themselves, so the formulas need no JavaScript and no network, and a
  formula that does not convert stops the build.

- Sphinx roles in docstrings (``:class:`~xpnn.param.Param```), which Markdown leaves as
  text, are shown as the code they name (``Param``).
- A few known docstring-format warnings of griffe (listed in ``KNOWN_DOCSTRING_WARNINGS``,
  each with its source) are let through as info instead of failing ``--strict``: griffe
  parses every docstring once, with the global options, so a handler option cannot relax
  it for one module only. Any other docstring warning still fails the build.

This folder is excluded from the site (``exclude_docs`` in mkdocs.yml).
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]

_HELP = re.compile(r"^<!-- xpnn:help(?: (?P<command>[a-z]+))? -->[ \t]*$", re.M)
_REPORT = re.compile(r"^<!-- xpnn:benchmark-report (?P<path>\S+) -->[ \t]*$", re.M)
_INLINE = re.compile(r'<span class="arithmatex">\\\((?P<tex>.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(?P<tex>.*?)\\\]</div>', re.S)
# latex2mathml writes \log, \tanh, ... as plain identifiers: give them an operator's spacing
_FUNCTION = re.compile(r"<mi>(log|ln|exp|tanh|sin|cos)</mi>")
_THIN = '<mspace width="0.167em"></mspace>'
# a Sphinx role as Markdown renders it: ":class:<code>~xpnn.param.Param</code>"
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|obj|exc|data):<code>(?P<tilde>~?)(?P<target>[\w.]+)</code>")

HELP_COLUMNS = "92"  # argparse wraps the help at $COLUMNS

# (message fragment, where): griffe warnings that do not fail the strict build. Remove an
# entry once its docstring is fixed (a stale entry is harmless: it matches nothing).
KNOWN_DOCSTRING_WARNINGS: tuple[tuple[str, str], ...] = (
    # (message text, source file) of a docstring warning to let through; none at present
)


class _KnownDocstringWarnings(logging.Filter):
    """Turn the known griffe warnings into info records (strict mode counts warnings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            message = record.getMessage()
            if any(text in message and where in message for text, where in KNOWN_DOCSTRING_WARNINGS):
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# mkdocstrings routes griffe's logging through the "mkdocs.plugins.griffe" logger
logging.getLogger("mkdocs.plugins.griffe").addFilter(_KnownDocstringWarnings())


def cli_help(command: str | None) -> str:
    """What ``xpnn [command] --help`` prints, from the installed xpnn.cli."""
    if importlib.util.find_spec("xpnn") is None:  # not installed: the working tree's package
        sys.path.insert(0, str(ROOT / "src"))
    from xpnn import cli

    argv = [command, "--help"] if command else ["--help"]
    out = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.main(argv)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    text = out.getvalue().rstrip()
    if not text.startswith("usage:"):
        raise PluginError(f"xpnn {' '.join(argv)} printed no help: {text[:200]!r}")
    return text


def benchmark_report(relpath: str) -> str:
    """The markdown of ``python benchmarks/report.py RESULTS.json``, headings a level down."""
    path = ROOT / relpath
    if not path.is_file():
        raise PluginError(f"benchmark report: no results file {relpath}")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if run.returncode != 0:
        raise PluginError(f"benchmarks/report.py {relpath} failed: {run.stderr.strip()[-500:]}")
    report = re.sub(r"^(#+) ", r"\1# ", run.stdout.strip(), flags=re.M)
    return f'<div class="wide-report" markdown>\n\n{report}\n\n</div>'


def on_page_markdown(markdown, page, config, files):
    markdown = _HELP.sub(lambda m: "```text\n" + cli_help(m["command"]) + "\n```", markdown)
    return _REPORT.sub(lambda m: benchmark_report(m["path"]), markdown)


def _mathml(tex: str, display: str, where: str) -> str:
    from latex2mathml.converter import convert

    tex = html.unescape(tex).strip()
    try:
        mathml = convert(tex, display=display)
    except Exception as exc:  # a formula that does not convert must not ship as raw TeX
        raise PluginError(f"{where}: cannot convert the formula {tex!r} to MathML: {exc}") from None
    return _FUNCTION.sub(lambda m: f"{_THIN}<mi>{m[1]}</mi>{_THIN}", mathml)


def on_page_content(content, page, config, files):
    where = page.file.src_uri
    content = _ROLE.sub(
        lambda m: "<code>" + (m["target"].rsplit(".", 1)[-1] if m["tilde"] else m["target"]) + "</code>", content
    )
    content = _BLOCK.sub(lambda m: '<div class="math">' + _mathml(m["tex"], "block", where) + "</div>", content)
    return _INLINE.sub(lambda m: _mathml(m["tex"], "inline", where), content)
