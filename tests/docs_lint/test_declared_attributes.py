"""State one module sets or reads on another module's objects is declared by the class
that owns it (a class-level annotation with a docstring, a property or a method), so it
exists before anything runs and means one thing; and no module of xpnn reads another
module's private names."""

from __future__ import annotations

import ast
import pathlib

import numpy as np

import xpnn
from xpnn.layers import ReLU
from xpnn.layers.base import Layer
from xpnn.optimizers import OPTIMIZERS, Optimizer

SRC = pathlib.Path(xpnn.__file__).parent


def declared(cls, name: str) -> bool:
    """Whether ``name`` is declared on ``cls`` or a base: annotated, or a class attribute."""
    return any(name in vars(k).get("__annotations__", {}) or name in vars(k) for k in cls.__mro__)


def test_layer_flags_other_modules_read_are_declared_bools():
    # training/data.py reads and sets check_ids, reads takes_indices; training/threads.py reads takes_indices
    for name in ("check_ids", "takes_indices"):
        assert name in Layer.__annotations__ and getattr(Layer, name) is False
    for name in ("check_inputs", "first_leaf", "input_sample_shape"):
        assert callable(getattr(Layer, name)) and getattr(Layer, name).__doc__
    assert xpnn.Embedding.takes_indices is True and xpnn.Embedding(5, 2).check_ids is True
    model = xpnn.Sequential([xpnn.Sequential([xpnn.Embedding(5, 2)]), xpnn.Flatten(), xpnn.Dense(2)])
    for layer in model.walk():  # a bool everywhere: never a bound method that reads as true
        assert isinstance(layer.takes_indices, bool) and isinstance(layer.check_ids, bool)
    assert model.takes_indices is False and model.first_leaf().takes_indices is True


def test_model_state_set_by_training_is_declared_before_any_fit():
    # input_shape_: set in training/data.py, read by the ONNX export; jit_step/jit_forward: training/jit.py
    model = xpnn.Sequential([xpnn.Dense(3, 2)])
    for name in ("input_shape_", "jit_step", "jit_forward"):
        assert declared(xpnn.Sequential, name), name
        assert getattr(model, name) is None
    model.compile()
    model.predict(np.zeros((4, 3), np.float32))
    assert model.input_shape_ == (3,)


def test_flags_the_training_loop_reads_are_declared_on_their_base_classes():
    from xpnn.callbacks import Callback
    from xpnn.losses import Loss

    # jit.py: Layer.traceable, Callback.traceable; trainer.py: reads_shard; distributed.py: root_only
    assert Layer.traceable is True and "traceable" in Layer.__annotations__
    for name, default in [
        ("traceable", False),
        ("needs_batch_loss", False),
        ("reads_shard", None),
        ("root_only", False),
    ]:
        assert declared(Callback, name) and getattr(Callback(), name) is default, name
    for name in ("classifies", "accepts_labels"):  # cli.py, model.py, training/data.py
        assert declared(Loss, name) and getattr(Loss, name) is False
    # io.py and cli.py: the preprocessing saved with a model
    assert declared(xpnn.Sequential, "preprocessing") and xpnn.Sequential([xpnn.Dense(2, 2)]).preprocessing is None


def test_relu_mask_the_gradient_monitor_reads_is_a_property():
    assert isinstance(vars(ReLU)["mask"], property) and ReLU.mask.__doc__
    assert ReLU().mask is None


def test_optimizer_backend_exists_before_the_first_step():
    model = xpnn.Sequential([xpnn.Dense(3, 2)]).compile()
    for cls in OPTIMIZERS.values():
        opt = cls()
        assert opt.backend is None  # declared: no AttributeError before a step
    assert isinstance(vars(Optimizer)["backend"], property) and Optimizer.backend.__doc__
    model.fit(np.zeros((4, 3), np.float32), np.zeros(4, np.int64), epochs=1, verbose=0)
    assert model.optimizer.backend is model.backend


# ---- no module reads another module's private names --------------------------------------------

# (module, private name) pairs read on another library's objects, which offer no public way
ALLOWED = {
    ("backends/strict.py", "_device"): "array_api_strict's Device keeps its name only there",
    ("model_selection/search.py", "_storage"): "optuna's Study has no public accessor for its storage (to close it)",
    ("model_selection/storage.py", "_storage"): "optuna: failing a dead worker's trial needs the study's storage",
    ("model_selection/storage.py", "_trial_id"): "optuna: the storage API takes the trial id, public nowhere else",
    ("sklearn.py", "_validate_data"): "scikit-learn < 1.6's own name for validate_data (a fallback import)",
}


def private_reads(path: pathlib.Path, root: pathlib.Path = SRC) -> list:
    """``x._name`` (and ``getattr(x, "_name")``, hasattr, setattr) in the module at ``path``
    where x is not self, cls or super() and the module defines no ``_name`` of its own."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = set()  # names this module defines: its functions, classes, globals, self._x
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            own.add(node.attr)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            obj, name = node.value, node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            obj, name = node.args[0], node.args[1].value
        else:
            continue
        if not name.startswith("_") or name.startswith("__") or name in own:
            continue
        if isinstance(obj, ast.Name) and obj.id in ("self", "cls"):
            continue
        if isinstance(obj, ast.Call) and isinstance(obj.func, ast.Name) and obj.func.id == "super":
            continue
        found.append((path.relative_to(root).as_posix(), name, node.lineno, ast.unparse(node)))
    return found


def test_no_module_reads_another_modules_private_names():
    found = [f for path in sorted(SRC.rglob("*.py")) for f in private_reads(path)]
    offenders = [f"{m}:{line}: {code}" for m, name, line, code in found if (m, name) not in ALLOWED]
    assert not offenders, "private names of other modules read (declare them public on their class):\n" + "\n".join(
        offenders
    )
    used = {(m, name) for m, name, _, _ in found}
    assert set(ALLOWED) <= used, f"stale allow-list entries: {sorted(set(ALLOWED) - used)}"


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(model, opt):\n"
        "    model._jit_step = None\n"
        "    return opt._lr, getattr(model, '_cache', None)\n"
        "class A:\n"
        "    def g(self, other):\n"
        "        self._x = 1\n"
        "        return other._x, super()._y\n",
        encoding="utf-8",
    )
    assert sorted(name for _, name, _, _ in private_reads(bad, tmp_path)) == ["_cache", "_jit_step", "_lr"]
