"""State one module sets or reads on another module's objects is declared by the class
that owns it (a class-level annotation with a docstring, a property or a method), so it
exists before anything runs and means one thing; and no module of xpnn reads another
module's private names."""

from __future__ import annotations

import ast
import inspect
import pathlib
import textwrap

import numpy as np

import xpnn
from xpnn.layers import ReLU
from xpnn.layers.base import Layer
from xpnn.optimizers import OPTIMIZERS, Optimizer

SRC = pathlib.Path(xpnn.__file__).parent
TESTS = pathlib.Path(__file__).resolve().parents[1]


def declared(cls, name: str) -> bool:
    """Whether ``name`` is declared on ``cls`` or a base: annotated, or a class attribute."""
    return any(name in vars(k).get("__annotations__", {}) or name in vars(k) for k in cls.__mro__)


def attribute_doc(cls, name: str) -> str | None:
    """The docstring of ``name`` as the first class of ``cls.__mro__`` that declares it
    has it: a property's, or the string right after a class-level assignment."""
    owner = next((k for k in cls.__mro__ if name in vars(k) or name in vars(k).get("__annotations__", {})), None)
    if owner is None:
        return None
    if isinstance(vars(owner).get(name), property):
        return vars(owner)[name].__doc__
    body = ast.parse(textwrap.dedent(inspect.getsource(owner))).body[0].body
    for node, after in zip(body, body[1:]):
        target = node.target if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [None])[0]
        if isinstance(target, ast.Name) and target.id == name:
            is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            return after.value.value if is_doc and isinstance(after.value.value, str) else None
    return None


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


def cross_module_state() -> list:
    """(class, attribute, default, who reads it): state one module reads on another's objects."""
    from xpnn.callbacks import Callback
    from xpnn.losses import Loss
    from xpnn.param import Param
    from xpnn.training.batches import Batch

    return [
        (xpnn.Sequential, "preprocessing", None, "cli.py, io.py"),
        (xpnn.Sequential, "jit", False, "training/jit.py, io.py"),
        (xpnn.Sequential, "loss_scale", None, "training/jit.py, io.py"),
        (xpnn.Sequential, "jit_step", None, "training/jit.py"),
        (xpnn.Sequential, "jit_forward", None, "training/jit.py"),
        (xpnn.Sequential, "input_shape_", None, "onnx.py"),
        (Layer, "traceable", True, "training/jit.py"),
        (Layer, "takes_indices", False, "training/data.py, training/threads.py"),
        (Layer, "check_ids", False, "training/data.py"),
        (Loss, "classifies", False, "cli.py, model.py"),
        (Loss, "accepts_labels", False, "training/data.py"),
        (Callback, "traceable", False, "training/jit.py"),
        (Callback, "needs_batch_loss", False, "training/step.py, training/jit.py, distributed.py"),
        (Callback, "fusable", False, "training/fused.py"),
        (Callback, "reads_shard", None, "training/trainer.py"),
        (Callback, "root_only", False, "distributed.py"),
        (Param, "loss_scale", None, "optimizers.py"),
        (Batch, "indices", None, "training/trainer.py"),
    ]


def test_state_other_modules_read_is_declared_with_a_docstring_and_a_default():
    for cls, name, default, readers in cross_module_state():
        where = f"{cls.__name__}.{name} (read by {readers})"
        assert declared(cls, name), f"{where} is not declared on the class"
        assert getattr(cls, name) is default, f"{where}: the class default is not {default!r}"
        doc = attribute_doc(cls, name)
        assert doc and len(doc.split()) >= 5, f"{where} has no docstring saying what it is"
    assert xpnn.Sequential([xpnn.Dense(2, 2)]).jit is False  # an instance reads the default before compile


def test_attribute_doc_finds_docstrings_and_their_absence():
    class A:
        documented: int = 0
        """What it is."""

        bare = 1
        after = "not a docstring"  # a string assignment is not a docstring

        @property
        def prop(self):
            """A property's own."""

    assert attribute_doc(A, "documented") == "What it is." and attribute_doc(A, "prop") == "A property's own."
    assert attribute_doc(A, "bare") is None and attribute_doc(A, "missing") is None


# (module, attribute) read with getattr/hasattr and a literal name, on objects that are not xpnn's
DUCK_TYPED = {
    ("cli.py", "backend"): "an argparse Namespace: only some subcommands have --backend",
    ("data/stream.py", "X"): "a user's Dataset: X is optional there (its shape says how many samples)",
    ("data/stream.py", "y"): "a user's Dataset: y is optional there (unlabelled data)",
}


def state_names() -> set:
    """The data attributes (and properties) declared by xpnn's classes that other modules
    read: the model, Layer, Callback, Loss, Optimizer, Param and Batch, with their bases."""
    from xpnn.callbacks import Callback
    from xpnn.losses import Loss
    from xpnn.param import Param
    from xpnn.training.batches import Batch

    names = set()
    for base in (xpnn.Sequential, Layer, Callback, Loss, Optimizer, Param, Batch):
        for k in base.__mro__:
            if k.__module__.startswith("xpnn"):
                names |= set(vars(k).get("__annotations__", {}))
                names |= {n for n, v in vars(k).items() if not n.startswith("__") and not inspect.isroutine(v)}
                names -= {n for n, v in vars(k).items() if isinstance(v, (staticmethod, classmethod))}
    return names


def guessed_reads(path: pathlib.Path, names: set, root: pathlib.Path = SRC) -> list:
    """``getattr(x, "name", default)`` and ``hasattr(x, "name")`` in the module at ``path``
    for the names in ``names``: a guess at state the class declares (read it plainly)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in names
        ):
            found.append((path.relative_to(root).as_posix(), node.args[1].value, node.lineno, ast.unparse(node)))
    return found


def assert_only_allowed(found, allowed, problem: str) -> None:
    """Fail on every (module, name, line, code) in found that ``allowed`` does not list, and
    on allow-list entries that no longer match anything (stale)."""
    offenders = [f"{m}:{line}: {code}" for m, name, line, code in found if (m, name) not in allowed]
    assert not offenders, f"{problem}:\n" + "\n".join(offenders)
    used = {(m, name) for m, name, _, _ in found}
    assert set(allowed) <= used, f"stale allow-list entries: {sorted(set(allowed) - used)}"


def test_declared_state_is_read_plainly_not_guessed_at():
    names = state_names()
    assert {"preprocessing", "jit", "loss_scale", "traceable", "reads_shard", "classifies", "indices"} <= names
    found = [f for path in sorted(SRC.rglob("*.py")) for f in guessed_reads(path, names)]
    assert_only_allowed(found, DUCK_TYPED, "getattr/hasattr on declared state (read it plainly)")


def test_the_guess_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(model, h, ds):\n"
        "    return getattr(model, 'jit', False), hasattr(h, 'traceable'), getattr(ds, 'other', 1), model.jit\n",
        encoding="utf-8",
    )
    assert [name for _, name, _, _ in guessed_reads(bad, {"jit", "traceable"}, tmp_path)] == ["jit", "traceable"]


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
    where x is not self, cls or super() and the module defines no ``_name`` of its own; and
    ``from .module import _name`` (or ``from xpnn.module import _name``)."""
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
        if isinstance(node, ast.ImportFrom) and node.module and (node.level or node.module.split(".")[0] == "xpnn"):
            found += [
                (path.relative_to(root).as_posix(), alias.name, node.lineno, ast.unparse(node))
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
            continue
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
    assert_only_allowed(found, ALLOWED, "private names of other modules read (declare them public on their class)")


# (test module, private name) read by tests where no public way exists: other libraries'
# internals, or white-box tests of one helper or cache, which a behaviour test cannot isolate
ALLOWED_IN_TESTS = {
    ("backends/test_backends.py", "_array_object"): "array_api_strict: subclassing its Array to fake a library",
    ("backends/test_backends.py", "_new"): "array_api_strict: how its Array wraps a NumPy array",
    ("backends/test_backends.py", "_array"): "array_api_strict: the NumPy array inside its Array",
    ("backends/test_backends.py", "_cache"): "get_backend's instances: forgetting one so that it imports afresh",
    ("backends/test_backends.py", "_run_part"): "counting the NumPy kernels' thread parts (no public trace)",
    ("backends/test_backends.py", "_first_maxima"): "counting window_max's cache-sized blocks (no public trace)",
    ("backends/test_gpu_readiness.py", "_array_object"): "array_api_strict: subclassing its Array to count reads",
    ("backends/test_gpu_readiness.py", "_new"): "array_api_strict: how its Array wraps a NumPy array",
    ("backends/test_gpu_readiness.py", "_array"): "array_api_strict: the NumPy array inside its Array",
    ("backends/test_gpu_readiness.py", "_check_range"): "counting the Embedding's host checks (no public count)",
    ("backends/test_gpu_readiness.py", "_device_index"): "the cupy backend's device parsing, tested without a GPU",
    ("backends/test_gpu_readiness.py", "_load_nccl"): "the cupy backend's NCCL probe, tested without a GPU",
    ("backends/test_compiled_step.py", "_dynamo"): "torch: its recompile limit and graph counters live there",
    ("backends/test_compiled_step.py", "_fn"): "the step's torch.compile'd function, to reach the code it compiled",
    ("backends/test_compiled_step.py", "_torchdynamo_orig_callable"): "torch: the function a compiled one wraps",
    ("backends/test_lazy_modules.py", "_LAZY_SUBMODULES"): "adding a lazy module that is not installed",
    ("cli/test_cli_newcomer.py", "_actions"): "argparse has no public walk over a parser's arguments",
    ("cli/test_cli_newcomer.py", "_SubParsersAction"): "argparse: how its subcommands are found",
    ("cli/test_cli_runs.py", "_new_run_folder"): "the run folder's name clash rule, without starting runs",
    ("cli/test_cli_runs.py", "_resolve_defaults"): "train's per-data-set defaults, without training",
    ("conftest.py", "_hypothesis_internal_use_settings"): "hypothesis keeps a test's settings only there",
    ("data/test_datasets.py", "_digits_raw"): "the bundled digits file before the split",
    ("data/test_datasets.py", "_stratified_split"): "the split helper on a skewed label set",
    ("layers/test_gradcheck.py", "_relative_error"): "the error formula itself, on hand-made numbers",
    ("model_selection/test_shared_study.py", "_trial_id"): "optuna: the storage API takes the trial id",
    ("saving/test_model_files.py", "_digest"): "signing a crafted model file as save does",
    ("training/test_fit_fast_paths.py", "_direct"): "which of the optimizer's paths ran (it has no public trace)",
    ("training/test_fused_steps.py", "_finite"): "the JAX backend's finiteness cache forgets dead arrays",
}


def test_tests_read_no_private_names_where_a_public_way_exists():
    found = [f for path in sorted(TESTS.rglob("*.py")) for f in private_reads(path, TESTS)]
    assert_only_allowed(found, ALLOWED_IN_TESTS, "tests read private names (use the public way, or add one)")


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(model, opt):\n"
        "    model._jit_step = None\n"
        "    return opt._lr, getattr(model, '_cache', None)\n"
        "class A:\n"
        "    def g(self, other):\n"
        "        self._x = 1\n"
        "        return other._x, super()._y\n"
        "from .jit import _blame, blame\n"
        "from xpnn.io import _digest\n"
        "from numpy import _core\n",
        encoding="utf-8",
    )
    found = sorted(name for _, name, _, _ in private_reads(bad, tmp_path))
    assert found == ["_blame", "_cache", "_digest", "_jit_step", "_lr"]
