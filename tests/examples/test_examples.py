"""examples/: the XOR demo learns XOR, shortened on every backend, and at its real settings
(lr 0.1, 10,000 epochs of full-batch gradient descent) on NumPy for a few seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def xor():
    return load_example("xor")


def test_xor_shortened_on_every_backend(xor, backend, capsys):
    preds = xor.main(["--backend", backend.name, "--epochs", "2000", "--lr", "0.5"])
    assert isinstance(preds, np.ndarray) and preds.shape == (4,)
    assert np.round(preds).tolist() == [0, 1, 1, 0]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11  # one loss line per tenth of the run, then the predictions
    assert lines[0].startswith("epoch    200: loss") and lines[9].startswith("epoch   2000: loss")
    losses = [float(line.split("loss")[1]) for line in lines[:10]]
    assert losses[-1] < 0.05 < losses[0]
    assert lines[10].startswith("predictions:")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_at_the_example_settings(xor, seed, capsys):
    """The demo as shipped (lr 0.1, 10,000 epochs, the default initializer) for a few seeds;
    about a second each on NumPy."""
    preds = xor.main(["--backend", "numpy", "--seed", str(seed)])
    assert np.round(preds).tolist() == [0, 1, 1, 0]
    assert np.abs(preds - np.array([0, 1, 1, 0])).max() < 0.1


def test_xor_does_not_learn_in_too_few_epochs(xor, capsys):
    """The check above is not automatic: 100 epochs at lr 0.1 are far from XOR."""
    preds = xor.main(["--backend", "numpy", "--epochs", "100"])
    assert np.round(preds).tolist() != [0, 1, 1, 0] or np.abs(preds - np.array([0, 1, 1, 0])).max() > 0.1


def test_padded_sequences_trains_through_fit_with_a_mask(capsys):
    """The padded-sequences example, shortened: the mask goes through fit and evaluate."""
    results = load_example("padded_sequences").main(["--quick"])
    assert set(results) == {"with the mask", "without it"}
    assert all(0.0 <= a <= 1.0 for a in results.values())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("with the mask  test accuracy")


def test_padded_sequences_data():
    """Labels mean what the example says: the first token occurs again among the real
    tokens; and the padding does hold copies of it (or the mask would not matter)."""
    example = load_example("padded_sequences")
    X, M, y = example.make_sequences(500, np.random.default_rng(3))
    assert X.shape == M.shape == (500, 12) and M[:, :4].all() and 0.4 < y.mean() < 0.6
    again = np.array([(row[1:][m[1:]] == row[0]).any() for row, m in zip(X, M)])
    np.testing.assert_array_equal(again, y == 1)
    assert ((X[:, 1:] == X[:, :1]) & ~M[:, 1:]).any(axis=1).mean() > 0.5


def test_sequence_classification_runs_quick(capsys):
    """The LSTM-vs-MLP example, shortened: both models train and are evaluated."""
    results = load_example("sequence_classification").main(["--quick"])
    assert set(results) == {"LSTM", "MLP"}
    assert all(0.0 <= a <= 1.0 for a in results.values())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("LSTM  test accuracy") and lines[1].startswith("MLP ")


def test_sequence_classification_data():
    """One marker per sequence, never last; the label is the token after it; the one-hot
    encoding matches the ids."""
    example = load_example("sequence_classification")
    X, y, ids = example.make_sequences(500, np.random.default_rng(3))
    assert X.shape == (500, example.LENGTH, example.VOCAB + 1) and X.dtype == np.float32
    np.testing.assert_array_equal(X.argmax(axis=2), ids)
    assert ((ids == example.MARKER).sum(axis=1) == 1).all() and (ids[:, -1] != example.MARKER).all()
    where = (ids == example.MARKER).argmax(axis=1)
    np.testing.assert_array_equal(ids[np.arange(500), where + 1], y)
    assert set(np.unique(y)) == set(range(example.VOCAB)) and len(set(where)) == example.LENGTH - 1


def test_char_transformer_runs_and_beats_its_bigram_on_a_small_text(tmp_path, capsys):
    """The character Transformer, shortened, on a generated text whose next character
    depends on more than the previous one (which word comes next in a fixed rota): trained
    through TokenWindows, it reports a held-out perplexity below its bigram baseline's and
    writes text."""
    words = ["seven", "silver", "swans", "sang", "softly", "near", "nine", "noisy", "newts"]
    rng = np.random.default_rng(0)
    text = "".join(" ".join(words[k:] + words[:k]) + ".\n" for k in rng.integers(0, len(words), 120))
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    example = load_example("char_transformer")
    result = example.main(["--text", str(path), "--quick", "--epochs", "15", "--prompt", "s"])
    out = capsys.readouterr().out
    assert "validation perplexity per character: Transformer" in out and "bigram (add-one)" in out
    assert 1.0 <= result["perplexity"] < result["bigram"]
    sample = out.split("sample (temperature 0.8, seed 0):\n")[1]
    assert sample.startswith("s") and len(sample.strip()) >= 20


def test_char_transformer_split_and_bigram():
    example = load_example("char_transformer")
    text = "".join(chr(97 + k % 26) for k in range(100_000))
    train, held = example.split_text(text)
    assert len(held) == 10_000 and len(train) == 90_000  # every 10th block of 2,000
    assert held[:2000] == text[18_000:20_000]
    # bigram on a cycle 0 1 2: each pair seen 3 times, add-one over V=3 continuations: 4/6
    ids = np.array([0, 1, 2] * 3 + [0])
    ppl = example.bigram_perplexity(ids, np.array([0, 1]), np.array([1, 2]), 3)
    assert ppl == pytest.approx(6 / 4)
