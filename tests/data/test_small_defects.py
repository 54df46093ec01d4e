"""Smaller defects: non-integer image shifts, a mask given for training but not with the
validation data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.augmentation import shift_images
from xpnn.layers import Dense, Embedding, PositionalEncoding, SequencePool, TransformerEncoderBlock


@settings(max_examples=20, deadline=None)
@given(shift=st.floats(-3, 3).filter(lambda v: not float(v).is_integer()), at=st.integers(0, 2))
def test_shift_images_refuses_fractional_shifts(shift, at):
    images = np.ones((3, 1, 4, 4), np.float32)
    dy = [0, 1, -1]
    dy[at] = shift
    with pytest.raises(ValueError, match=rf"shift_images: dy must hold whole numbers of pixels .* at index {at}"):
        shift_images(images, dy, [0, 0, 0])
    with pytest.raises(ValueError, match="dx must hold whole numbers"):
        shift_images(images, [0, 0, 0], np.array(dy))


def test_shift_images_takes_integer_arrays_as_before():
    images = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    out = shift_images(images, np.array([1]), [0])
    np.testing.assert_array_equal(out[0, 0, 1:], images[0, 0, :3])


def attention_model(seed=0):
    layers = [
        Embedding(8, 8),
        PositionalEncoding(6),
        TransformerEncoderBlock(8, 2, 16),
        SequencePool("first"),
        Dense(8, 2),
    ]
    return xpnn.Sequential(layers, seed=seed).compile("softmax_cross_entropy", xpnn.Adam(0.01))


def sequences(n=24, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, n)
    mask = np.arange(6)[None, :] < lengths[:, None]
    ids = np.where(mask, rng.integers(1, 8, (n, 6)), 0)
    return ids, mask, (lengths > 3).astype(np.int64)


def test_a_mask_for_training_but_not_for_validation_warns():
    ids, mask, y = sequences()
    model = attention_model()
    with pytest.warns(UserWarning, match=r"fit: the training data has the forward input 'mask' but validation_data"):
        model.fit(
            ids[:16], y[:16], epochs=1, batch_size=8, mask=mask[:16], verbose=0, validation_data=(ids[16:], y[16:])
        )


def test_a_mask_given_for_both_does_not_warn():
    import warnings

    ids, mask, y = sequences()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attention_model().fit(
            ids[:16], y[:16], epochs=1, batch_size=8, mask=mask[:16], verbose=0,
            validation_data=(ids[16:], y[16:], {"mask": mask[16:]}),
        )  # fmt: skip


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_predict_classes_is_for_classifiers_only(loss):
    model = xpnn.NeuralNetwork(3, [4], 2).compile(loss, "adam")
    with pytest.raises(TypeError, match=rf"predict_classes: the model is compiled with the {loss} loss, a regressor"):
        model.predict_classes(np.zeros((2, 3), np.float32))
    for classifier in ("softmax_cross_entropy", "bce_with_logits"):
        labels = xpnn.NeuralNetwork(3, [4], 2).compile(classifier, "adam").predict_classes(np.zeros((2, 3), np.float32))
        assert labels.dtype == np.int64 and labels.shape == (2,)
