"""xpnn.layers names every registered layer explicitly (imports and ``__all__``), so that
IDEs and type checkers see them, and that list cannot drift from the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import xpnn
import xpnn.layers
from xpnn.layers import LAYERS

INIT = Path(xpnn.layers.__file__)
_NOT_LAYERS = {"LAYERS", "Layer", "Container", "register_layer", "layer_name", "build_layer"}
_NOT_LAYERS |= {"ACTIVATIONS", "get_activation"}


def _registered_in_package() -> dict[str, type]:
    """The registered layers defined in xpnn/layers/ (the models register in xpnn.model
    and xpnn.architectures, which import this package)."""
    return {name: cls for name, cls in LAYERS.items() if cls.__module__.startswith("xpnn.layers.")}


def test_all_lists_exactly_the_registered_layers():
    listed = set(xpnn.layers.__all__) - _NOT_LAYERS
    registered = set(_registered_in_package())
    assert not registered - listed, f"registered layers missing from xpnn.layers.__all__: {sorted(registered - listed)}"
    assert not listed - registered, (
        f"xpnn.layers.__all__ names what is not a registered layer: {sorted(listed - registered)}"
    )
    assert len(xpnn.layers.__all__) == len(set(xpnn.layers.__all__)), "a name is listed twice"
    for name in xpnn.layers.__all__:
        assert hasattr(xpnn.layers, name), f"xpnn.layers.__all__ names {name!r}, which the package does not define"
    for name, cls in _registered_in_package().items():
        assert getattr(xpnn.layers, name) is cls and getattr(xpnn, name) is cls


def test_layers_are_imported_by_name_not_from_the_registry_at_run_time():
    """A static reader (mypy, an IDE) sees each layer: an ``import`` statement names it."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    imported = {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert set(_registered_in_package()) <= imported
    assert "globals()" not in INIT.read_text(encoding="utf-8")
