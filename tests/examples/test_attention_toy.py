"""examples/attention_toy.py: the data is what it claims (labels right, balanced, test
held out), --quick runs and prints its table on every backend, and at a reduced budget the
Transformer already beats the MLPs and the bag of tokens, which stay near chance on
held-out sequences, and loses that lead when its attention cannot look at content."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import xpnn.layers.attention

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attention_toy.py"
NAMES = ["MLP", "MLP wide", "bag of tokens", "Transformer"]
# about 2 s on NumPy; the full run (8,000 sequences, 10 epochs) gets the Transformer to
# 0.99-1.00 on held-out sequences and the others to 0.53-0.58 (seeds 0, 1, 2)
REDUCED = ["--train", "3000", "--test", "500", "--epochs", "6"]


@pytest.fixture(scope="module")
def toy():
    spec = importlib.util.spec_from_file_location("example_attention_toy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_says_whether_the_first_token_occurs_again(toy):
    X, y = toy.make_sequences(3000, np.random.default_rng(0))
    assert X.shape == (3000, toy.LENGTH) and y.shape == (3000,)
    assert X.dtype == y.dtype == np.int64
    assert X.min() >= 0 and X.max() < toy.VOCAB
    later = (X[:, 1:] == X[:, :1]).sum(axis=1)
    np.testing.assert_array_equal(later, y)  # once for label 1, never for label 0
    assert 0.45 < y.mean() < 0.55
    # the match sits at every later position and every token is a query: nothing fixed to learn
    positions = np.argmax(X[y == 1, 1:] == X[y == 1, :1], axis=1)
    assert set(positions.tolist()) == set(range(toy.LENGTH - 1))
    assert set(X[:, 0].tolist()) == set(range(toy.VOCAB))
    # apart from the query, tokens stay about uniform in both classes: no frequency shortcut
    for label in (0, 1):
        counts = np.bincount(X[y == label, 1:].ravel(), minlength=toy.VOCAB)
        assert counts.min() > 0.8 * counts.mean()


def test_split_is_seeded_and_the_test_set_is_held_out(toy):
    (X, y), (Xt, yt) = toy.make_split(3000, 1000, seed=5)
    assert (
        X.shape == (3000, toy.LENGTH) and y.shape == (3000,) and Xt.shape == (1000, toy.LENGTH) and yt.shape == (1000,)
    )
    assert not {r.tobytes() for r in X} & {r.tobytes() for r in Xt}
    (X2, _), (Xt2, _) = toy.make_split(3000, 1000, seed=5)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Xt, Xt2)
    (X3, _), _ = toy.make_split(3000, 1000, seed=6)
    assert not np.array_equal(X, X3)


def test_quick_run_prints_the_table_on_every_backend(toy, backend, capsys):
    rows = toy.main(["--quick", "--backend", backend.name])
    out = capsys.readouterr().out.splitlines()
    assert [r["model"] for r in rows] == NAMES
    assert out[0].startswith("Does the first token occur again?") and f"backend {backend.name}" in out[0]
    assert out[1].split() == ["model", "params", "train", "acc", "test", "acc", "seconds"]
    for r, line in zip(rows, out[2:6]):
        assert line.split()[-4:] == [
            f"{r['params']:,}",
            f"{r['train_acc']:.3f}",
            f"{r['test_acc']:.3f}",
            f"{r['seconds']:.1f}",
        ]
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0 and r["seconds"] > 0
    # the comparison is not won by size: the Transformer has fewer params than either MLP
    params = {r["model"]: r["params"] for r in rows}
    assert params["Transformer"] < params["MLP"] < params["MLP wide"]


def test_attention_generalises_where_the_others_guess(toy, capsys):
    rows = {r["model"]: r for r in toy.main(REDUCED)}
    for name in ("MLP", "MLP wide"):
        assert rows[name]["train_acc"] > 0.9  # they fit the training set...
    for name in ("MLP", "MLP wide", "bag of tokens"):
        assert rows[name]["test_acc"] < 0.62  # ...and guess on new sequences
    assert rows["Transformer"]["test_acc"] > 0.75


def test_the_lead_comes_from_attending_by_content(toy, capsys, monkeypatch):
    """With every score set to 0 (uniform attention: the query sees the average of all
    positions, not the one that matches) the same Transformer falls back towards chance."""
    softmax = xpnn.layers.attention.softmax
    monkeypatch.setattr(xpnn.layers.attention, "softmax", lambda xp, S: softmax(xp, S * 0.0))
    rows = {r["model"]: r for r in toy.main(REDUCED)}
    assert rows["Transformer"]["test_acc"] < 0.7
