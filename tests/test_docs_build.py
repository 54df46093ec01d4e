"""The documentation site builds: ``mkdocs build --strict`` (mkdocs.yml, docs/).

Strict mode makes every warning an error: a broken link or anchor between pages, a page
missing from the nav, an API page whose module or docstring griffe cannot read, a formula
that does not convert to MathML, a CLI help or benchmark report the build hooks
(docs/_hooks/xpnn_docs.py) cannot produce. Needs the ``docs`` extra
(``pip install -e ".[docs]"``): the test is skipped without mkdocs and its plugins, and
under XPNN_REQUIRE_ORACLES=1 (CI) such a skip is a failure.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _require_docs_tools() -> None:
    for module in ("mkdocs", "mkdocstrings_handlers.python", "pymdownx", "latex2mathml"):
        pytest.importorskip(module)


def test_mkdocs_build_strict(tmp_path):
    _require_docs_tools()
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"mkdocs build --strict failed (exit {run.returncode}):\n{log}"

    home = site / "index.html"
    layers = site / "layers" / "index.html"
    api = site / "api" / "layers" / "index.html"
    for page in (home, layers, api):
        assert page.is_file(), f"{page.relative_to(site)} is missing from the built site:\n{log}"
    assert not (site / "_hooks").exists(), "the build hooks were copied into the site"

    # the formulas became MathML at build time: none is left as TeX for a script to draw
    layers_html = layers.read_text(encoding="utf-8")
    assert "<math" in layers_html
    assert 'class="arithmatex"' not in layers_html and "\\(" not in layers_html
    # the API page was generated from the docstrings
    api_html = api.read_text(encoding="utf-8")
    assert 'id="xpnn.layers.dense.Dense"' in api_html
    assert "A fully connected layer." in api_html
    # the CLI page holds the installed command's help, not a placeholder
    cli_html = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "usage: xpnn train" in cli_html and "xpnn:help" not in cli_html


def _named(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def test_every_layer_loss_and_optimizer_has_its_page_entry():
    """A new layer, loss or optimizer gets its formulas on its page (the registries decide)."""
    from xpnn.layers import LAYERS
    from xpnn.losses import LOSSES
    from xpnn.optimizers import OPTIMIZERS

    layers_page = _named("layers.md")
    missing = [
        name
        for name, cls in sorted(LAYERS.items())
        if not hasattr(cls, "compile")  # models (Sequential, NeuralNetwork) are not layers here
        and not re.search(rf"`{re.escape(name)}\b", layers_page)
    ]
    assert not missing, f"docs/layers.md does not describe the registered layers {missing}"

    losses_page = _named("losses.md")
    missing = [
        f"{cls.__name__} ({name!r})"
        for name, cls in sorted(LOSSES.items())
        if f'`"{name}"`' not in losses_page or f"## {cls.__name__}" not in losses_page
    ]
    assert not missing, f"docs/losses.md has no section or compile name for {missing}"

    optimizers_page = _named("optimizers.md")
    missing = [name for name in sorted(OPTIMIZERS) if f'`"{name}"`' not in optimizers_page]
    assert not missing, f"docs/optimizers.md does not list the optimizers {missing}"
