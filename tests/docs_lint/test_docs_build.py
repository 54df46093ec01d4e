"""The documentation site builds: ``mkdocs build --strict`` (mkdocs.yml, docs/).

Strict mode makes every warning an error: a broken link or anchor between pages, a page
missing from the nav, an API page whose module or docstring griffe cannot read, a formula
that does not convert to MathML, a CLI help or benchmark report the build hooks
(docs/_hooks/xpnn_docs.py) cannot produce. Needs the ``docs`` extra
(``pip install -e ".[docs]"``): the test is skipped without mkdocs and its plugins, and
under XPNN_REQUIRE_ORACLES=1 (CI) such a skip is a failure.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _require_docs_tools() -> None:
    for module in ("mkdocs", "mkdocstrings_handlers.python", "pymdownx", "latex2mathml"):
        pytest.importorskip(module)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(site folder, build log): the site built once for this file's tests."""
    _require_docs_tools()
    site = tmp_path_factory.mktemp("docs") / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"mkdocs build --strict failed (exit {run.returncode}):\n{log}"
    return site, log


def test_mkdocs_build_strict(built):
    site, log = built

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


# ---- the API reference: constructor signatures and Args lists ------------------------------

_CLASS_HEADING = re.compile(
    r'<h\d id="(?P<path>xpnn(?:\.\w+)+)" class="doc doc-heading">\s*'
    r'<code class="doc-symbol doc-symbol-heading doc-symbol-class">'
)
_SIGNATURE = re.compile(r'<div class="doc-signature highlight">(.*?)</div>', re.S)


def _class_signatures(site: Path) -> dict[str, str | None]:
    """{dotted path: the signature shown under the class's heading as text, or None}."""
    found: dict[str, str | None] = {}
    for page in sorted((site / "api").glob("*/index.html")):
        text = page.read_text(encoding="utf-8")
        for match in _CLASS_HEADING.finditer(text):
            rest = text[match.end() :]
            signature = _SIGNATURE.search(rest)
            following = rest.find('class="doc doc-heading"')
            shown = signature is not None and (following == -1 or signature.start() < following)
            found[match["path"]] = html.unescape(re.sub(r"<[^>]+>", "", signature[1])) if shown else None
    return found


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _own_init(cls) -> bool:
    """Whether the class has a constructor of its own to document (not object's or an exception's)."""
    return inspect.isfunction(cls.__init__)  # object's and the exceptions' are C slots


def test_every_public_class_page_shows_its_constructor_signature(built):
    """Class pages carry the constructor: Dense(..., init=...), NeuralNetwork(..., backend=, seed=, device=)."""
    import xpnn

    site, _ = built
    shown = _class_signatures(site)
    public = {name: getattr(xpnn, name) for name in xpnn.__all__ if isinstance(getattr(xpnn, name), type)}
    by_name: dict[str, list[str]] = {}
    for path in shown:
        by_name.setdefault(path.rpartition(".")[2], []).append(path)
    missing = sorted(name for name in public if name not in by_name)
    assert not missing, f"public classes with no heading in the API reference: {missing}"

    problems = []
    for path, text in sorted(shown.items()):
        cls = _resolve(path)
        if not _own_init(cls):
            continue
        if text is None:
            problems.append(f"{path}: no signature under its heading")
            continue
        for p in inspect.signature(cls).parameters.values():
            star = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
            written = f"{star}{p.name}" + ("=" if p.default is not p.empty else "")
            if not re.search(rf"(?<![\w*]){re.escape(written)}" + ("" if written.endswith("=") else r"(?!\w)"), text):
                problems.append(f"{path}: the signature {' '.join(text.split())!r} does not show {written!r}")
    assert not problems, "\n".join(problems)

    def flat(path):
        return " ".join(shown[path].split())

    assert flat("xpnn.layers.dense.Dense").startswith("Dense( in_features=None,")
    assert 'init="glorot_uniform"' in flat("xpnn.layers.dense.Dense")
    for argument in ("backend=None", "seed=0", "device=None"):
        assert argument in flat("xpnn.architectures.NeuralNetwork")


def _documented_args():
    """(object path, {name: description} of its Args section, [parameter names of its
    signature]) for every function, method and class (its ``__init__``) in src/xpnn, read
    by griffe as the docs build reads them."""
    griffe = pytest.importorskip("griffe")
    package = griffe.load("xpnn", search_paths=[str(ROOT / "src")], docstring_parser="google")
    options = {"warn_missing_types": False, "warn_unknown_params": False}
    stack = [package]
    while stack:
        obj = stack.pop()
        for member in obj.members.values():
            if member.is_alias:
                continue
            if member.is_module or member.is_class:
                stack.append(member)
            function = member.all_members.get("__init__") if member.is_class else member
            if member.docstring is None or function is None or not function.is_function:
                continue
            listed = {
                entry.name: entry.description
                for section in member.docstring.parse("google", **options)
                if section.kind.value == "parameters"
                for entry in section.value
            }
            if listed:
                yield member.path, listed, [p.name for p in function.parameters]


# Args sections still written the old way; each must fail the check below until it is
# rewritten one parameter per entry, and then leave this list.
_ARGS_TO_SPLIT = {
    "xpnn.model_selection.search.EvolutionSearch",
    "xpnn.training.batches.Batches",
}


def test_args_sections_render_one_entry_per_parameter():
    """Each ``Args:`` entry is one parameter of the signature: "x, y: ..." or "x: ...; y: ..."
    on one line renders as a single parameter with the others lost in its text."""
    problems = {}
    for path, listed, params in _documented_args():
        for name, description in listed.items():
            if name.lstrip("*") not in params:
                problems.setdefault(path, []).append(f"Args entry {name!r} is not one of its parameters")
            for other in params:
                if other != name and re.search(rf"(^|[.;] )(\w+, )*{re.escape(other)}(, \w+)*: ", description):
                    problems.setdefault(path, []).append(f"Args entry {name!r} also describes {other!r}")
    fixed = sorted(_ARGS_TO_SPLIT - set(problems))
    assert not fixed, f"{fixed} now pass: remove them from _ARGS_TO_SPLIT"
    rest = [
        f"{path}: {line}" for path, lines in sorted(problems.items()) if path not in _ARGS_TO_SPLIT for line in lines
    ]
    assert not rest, "\n".join(rest)


# ---- the docs speak to the user about the user's machine -----------------------------------

_ABOUT_US = re.compile(r"this project's|\bVMs?\b|/work/|helpers?/|lent (?:GPU|device|machine)s?", re.I)


def test_docs_and_sources_say_nothing_about_where_the_project_is_developed():
    """Measurements name the hardware ("a 2-core AMD EPYC machine"), not the project's own
    machines, folders or tools: a reader has only their machine and this repository."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")]
    files += [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _ABOUT_US.search(line)
    ]
    assert not found, "\n".join(found)
