"""examples/lessons/: each lesson runs in its --quick form (a few epochs), writes its PNG,
and returns findings that already show its point."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

LESSONS = Path(__file__).resolve().parents[2] / "examples" / "lessons"


def run(name, tmp_path, backend="numpy", extra=()):
    spec = importlib.util.spec_from_file_location(f"lesson_{name}", LESSONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    findings = module.main(["--quick", "--out", str(tmp_path), "--backend", backend, *extra])
    pngs = sorted(tmp_path.glob("*.png"))
    assert pngs and all(p.name.startswith(name.split("_")[0] + "_") for p in pngs)
    assert all(p.stat().st_size > 20_000 for p in pngs)
    return findings


def test_lesson_1_activations(tmp_path, capsys):
    f = run("1_activations", tmp_path)
    assert f["sigmoid"]["max_slope"] == pytest.approx(0.25, abs=1e-3)
    assert f["tanh"]["max_slope"] == pytest.approx(1.0, abs=1e-3)
    assert all(f[name]["fd_error"] < 1e-6 for name in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"))
    assert "10 sigmoid layers shrink a gradient" in capsys.readouterr().out


def test_lesson_2_vanishing_gradients(tmp_path, capsys):
    f = run("2_vanishing_gradients", tmp_path)
    assert f["sigmoid"]["ratio"] < 1e-4  # the first layer's gradient, relative to the last's
    assert f["relu_he"]["ratio"] > 0.1 and f["sigmoid_bn"]["ratio"] > 0.1
    assert any("vanish" in w for w in f["sigmoid"]["warnings"])
    assert f["relu_he"]["warnings"] == [] and f["sigmoid_bn"]["warnings"] == []
    assert len(list(tmp_path.glob("2_*.png"))) == 2


def test_lesson_3_overfitting(tmp_path, capsys):
    f = run("3_overfitting", tmp_path)
    assert set(f) >= {"no regularization", "dropout 0.5", "early stopping (patience 10)"}
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for k, r in f.items() if k != "seconds")


def test_lesson_4_optimizers(tmp_path, capsys):
    f = run("4_optimizers", tmp_path)
    # GD takes one step per epoch, SGD one per sample: 300 samples, 2 epochs in --quick
    assert f["GD (full batch, lr 0.5)"]["steps"] == 2
    assert f["SGD (batch 1, lr 0.01)"]["steps"] == 600
    assert f["mini-batch SGD (32, lr 0.1)"]["steps"] == 2 * math.ceil(300 / 32)


def test_lesson_5_decision_boundary(tmp_path, capsys):
    f = run("5_decision_boundary", tmp_path)
    assert f["moons"]["accuracy"][3] > 0.8 and f["circles"]["accuracy"][3] > 0.6


def test_lesson_6_learning_rate(tmp_path, capsys):
    f = run("6_learning_rate", tmp_path)
    assert f["about right"]["loss"] < f["too small"]["loss"]
    assert f["about right"]["loss"] < f["too large"]["loss"]
    assert 1e-4 < f["range_test"]["suggested_lr"] < 10


def test_lesson_7_tuning(tmp_path, capsys):
    pytest.importorskip("xpnn.model_selection")
    f = run("7_tuning", tmp_path)
    assert f["grid"]["trials"] == 4 and f["random"]["trials"] == 4
    assert all(0.0 <= f[k]["best_score"] <= 1.0 for k in ("grid", "random"))
    pytest.importorskip("optuna")
    pytest.importorskip("cmaes")
    assert f["evolution (CMA-ES)"]["trials"] == 4 and f["pareto (NSGA-II)"]["trials"] == 4
    front = f["pareto (NSGA-II)"]["front"]
    assert front and [p["score"] for p in front] == sorted((p["score"] for p in front), reverse=True)
    assert [p["n_params"] for p in front] == sorted((p["n_params"] for p in front), reverse=True)


def test_lesson_8_gradcheck_on_array_api_strict(tmp_path, capsys):
    f = run("8_gradcheck", tmp_path, backend="array_api_strict")
    assert f["relative_error_W"] < 1e-8
    assert max(f["gradcheck"].values()) < 1e-8
    assert f["gradcheck_buggy"]["b"] == pytest.approx(0.6, abs=1e-6)  # (4 - 1) / (4 + 1)
    assert f["gradcheck_buggy"]["W"] < 1e-8
    assert f["one_weight"]["numeric"] == pytest.approx(f["one_weight"]["analytic"], rel=1e-8)


def test_lesson_9_underfitting(tmp_path, capsys):
    f = run("9_underfitting", tmp_path)
    runs = [k for k in f if k != "seconds"]
    assert len(runs) == 5 and runs[0] == "linear (no hidden layer)" and runs[-1].startswith("the fix")
    linear = f["linear (no hidden layer)"]
    assert linear["params"] == 2 * 3 + 3 and linear["train_accuracy"] < 0.75  # no line separates the arms
    assert f["too few epochs (1)"]["epochs"] == 1
    assert all(0.0 <= r["val_accuracy"] <= 1.0 and r["train_loss"] > 0 for k, r in f.items() if k != "seconds")
    assert "cannot fit even the points it trains on" in capsys.readouterr().out
