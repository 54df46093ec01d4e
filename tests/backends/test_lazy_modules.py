"""``import xpnn`` stays light, and the submodules with optional dependencies load on
first attribute access (PEP 562): ``xpnn.onnx.export`` works after a plain ``import xpnn``.

Each check of what ``import xpnn`` imports runs in a fresh interpreter: the test process
has long imported torch, jax, onnx and the rest."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import xpnn

HEAVY = ("onnx", "onnxruntime", "torch", "jax", "matplotlib", "optuna", "cmaes", "sklearn", "scipy", "mpi4py", "cupy")


def fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object, returned parsed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_xpnn_imports_no_optional_dependency():
    found = fresh_python(
        "import json, sys\n"
        "import xpnn\n"
        f"heavy = {HEAVY!r}\n"
        "after_import = [m for m in heavy if m in sys.modules]\n"
        "onnx_module = xpnn.onnx  # no `import xpnn.onnx`\n"
        "print(json.dumps({'after_import': after_import, 'lazy_loaded': 'xpnn.onnx' in sys.modules,\n"
        "                  'has_export': callable(onnx_module.export),\n"
        "                  'after_onnx': [m for m in heavy if m in sys.modules],\n"
        "                  'same': onnx_module is sys.modules['xpnn.onnx']}))\n"
    )
    assert found["after_import"] == []
    # the module loads on access, and the onnx package still waits for export itself
    assert found["lazy_loaded"] and found["has_export"] and found["same"]
    assert found["after_onnx"] == []


def test_readme_export_works_after_a_plain_import(tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    found = fresh_python(
        "import json, xpnn\n"
        "model = xpnn.NeuralNetwork(4, 3, 2)\n"
        f"proto = xpnn.onnx.export(model, {str(path)!r})\n"
        "print(json.dumps({'nodes': len(proto.graph.node)}))\n"
    )
    assert found["nodes"] > 0 and path.exists()


def test_dir_lists_the_lazy_submodules_and_the_eager_ones_still_work():
    names = dir(xpnn)
    for name in (
        "onnx",
        "cli",
        "sklearn",
        "augmentation",
        "distributed",
        "io",
        "gradcheck",
        "model_selection",
        "EvolutionSearch",
        "DataParallel",
    ):
        assert name in names
    assert xpnn.distributed.DataParallel is xpnn.DataParallel  # imported eagerly, as before
    assert callable(xpnn.gradcheck) and callable(xpnn.io.load)
    assert xpnn.cli.main is importlib.import_module("xpnn.cli").main
    assert xpnn.onnx is importlib.import_module("xpnn.onnx")


def test_unknown_names_and_missing_modules_are_attribute_errors(monkeypatch):
    with pytest.raises(AttributeError, match="module 'xpnn' has no attribute 'not_there'"):
        xpnn.not_there  # noqa: B018
    assert not hasattr(xpnn, "not_there")
    # a lazy name whose module is absent from the install: hasattr says False, not an ImportError
    monkeypatch.setattr(xpnn, "_LAZY_SUBMODULES", (*xpnn._LAZY_SUBMODULES, "no_such_module"))
    assert not hasattr(xpnn, "no_such_module")
    with pytest.raises(AttributeError, match="no module xpnn.no_such_module in this install"):
        xpnn.no_such_module  # noqa: B018


def test_a_missing_dependency_of_a_lazy_module_is_reported_as_such(monkeypatch):
    def missing_dependency(name, package=None):
        raise ModuleNotFoundError("No module named 'somedep'", name="somedep")

    monkeypatch.setattr(importlib, "import_module", missing_dependency)
    with pytest.raises(ModuleNotFoundError, match="somedep"):
        xpnn.__getattr__("onnx")  # not an AttributeError: the user must learn what to install
