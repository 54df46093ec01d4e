"""The callback registry's contract, for every registered callback on every backend.

Parametrized over ``xpnn.callbacks.CALLBACKS`` (a newly registered callback without a case
here fails ``test_every_registered_callback_has_a_case``): each is built by name from a
JSON config (``get_callback({"name": ..., **arguments})``, as a config file names it) and
runs through a fit with validation data without changing what the fit computes, unless
changing it is its job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn.callbacks import CALLBACKS, Callback, get_callback

# name -> (JSON arguments, "{tmp}" standing for a fresh folder; whether it may change the weights)
CASES = {
    "early_stopping": ({"monitor": "val_loss", "patience": 5}, False),
    "model_checkpoint": ({"path": "{tmp}/m-{epoch}.safetensors"}, False),
    "reduce_lr_on_plateau": ({"monitor": "loss", "factor": 0.5, "patience": 1, "min_delta": 10.0}, True),
    "csv_logger": ({"path": "{tmp}/history.csv"}, False),
    "terminate_on_nan": ({}, False),
    "clip_grad_norm": ({"max_norm": 0.01}, True),
    "gradient_monitor": ({"every": 2}, False),
    "tensorboard": ({"log_dir": "{tmp}/tb", "histogram_freq": 1, "update_freq": 2}, False),
}
NAMES = sorted(CASES)


def test_every_registered_callback_has_a_case():
    assert set(CASES) == set(CALLBACKS), "add a case for each registered callback"


def test_every_registered_callback_is_named_in_the_docs():
    page = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text(encoding="utf-8")
    missing = [name for name in sorted(CALLBACKS) if f"`{name}`" not in page]
    assert not missing, f"docs/training.md does not list the callback names {missing}"


_PLAIN: dict = {}


def _fit(backend, callbacks):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4)).astype(np.float32)
    y = (np.arange(24) % 3).astype(np.int64)
    model = xpnn.Sequential([xpnn.Dense(4, 6), xpnn.Tanh(), xpnn.Dense(6, 3)], backend=backend, seed=1)
    model.compile("softmax_cross_entropy", xpnn.SGD(lr=0.1), metrics=["accuracy"])
    model.fit(X, y, epochs=3, batch_size=8, validation_data=(X[:8], y[:8]), callbacks=callbacks, verbose=0)
    return [np.array(backend.to_numpy(w)) for w in model.get_weights()]


@pytest.mark.parametrize("name", NAMES)
def test_built_by_name_from_a_json_config_it_runs_a_fit(backend, name, tmp_path):
    if name == "tensorboard":
        pytest.importorskip("tensorboardX")
    arguments, changes_training = CASES[name]
    config = json.loads(json.dumps({"name": name, **arguments}).replace("{tmp}", str(tmp_path)))
    callback = get_callback(config)
    assert type(callback) is CALLBACKS[name] and isinstance(callback, Callback)
    with_it = _fit(backend, [callback])
    if backend.name not in _PLAIN:  # the fit without callbacks, once per backend
        _PLAIN[backend.name] = _fit(backend, [])
    without = _PLAIN[backend.name]
    same = all(np.array_equal(a, b) for a, b in zip(with_it, without))
    assert same != changes_training


def test_get_callback_errors():
    with pytest.raises(ValueError, match=r"callback must be one of \[.*'early_stopping'.*found 'early_stop'"):
        get_callback("early_stop")
    with pytest.raises(TypeError, match=r"get_callback: EarlyStopping does not take \['patient'\]; it takes"):
        get_callback({"name": "early_stopping", "patient": 3})
    stop = xpnn.EarlyStopping()
    assert get_callback(stop) is stop and get_callback("Early_Stopping", patience=2).patience == 2
