"""Image augmentation on every backend: shift_images on hand-made images, the Augment
callback's shapes, seeded draws (the same on every backend), flips only when asked,
noise, flat inputs, training with it, and its error messages."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.augmentation import Augment, shift_images
from xpnn.layers import Conv2D, Dense, Flatten, ReLU
from xpnn.training.batches import Batch


def host(backend, a):
    return np.asarray(backend.to_numpy(a))


def reference_shift(image, dy, dx):
    """NumPy: image (C, H, W) moved dy rows down and dx columns right, zeros moved in."""
    out = np.zeros_like(image)
    _, H, W = image.shape
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[:, i, j] = image[:, i - dy, j - dx]
    return out


def images(n=6, c=1, h=5, w=6, seed=0):
    """Distinct, asymmetric images with no zero pixel (a shift's zeros show)."""
    return np.random.default_rng(seed).uniform(0.5, 1.0, size=(n, c, h, w)).astype(np.float32)


def augmented(backend, callback, X):
    """The images Augment makes of one batch X (a host array) on ``backend``."""
    batch = Batch(backend.asarray(X), backend.asarray(np.zeros(X.shape[0], dtype=np.int64)))
    out = callback.on_batch_begin(0, batch)
    assert backend.owns(out.X) and out.size == X.shape[0] and out.y is batch.y
    return host(backend, out.X)


# ---- shift_images ---------------------------------------------------------------------------------


def test_shift_images_by_hand(backend):
    # a 4x4 image with two bright pixels: (1, 1) = 1 and (0, 3) = 2
    image = np.zeros((1, 4, 4), dtype=np.float32)
    image[0, 1, 1], image[0, 0, 3] = 1, 2
    X = backend.asarray(np.stack([image] * 4))
    out = host(backend, shift_images(X, dy=[0, 1, -1, 2], dx=[0, -1, 2, 0]))
    expected = np.zeros((4, 1, 4, 4), dtype=np.float32)
    expected[0, 0, 1, 1], expected[0, 0, 0, 3] = 1, 2  # unmoved
    expected[1, 0, 2, 0], expected[1, 0, 1, 2] = 1, 2  # one down, one left
    expected[2, 0, 0, 3] = 1  # one up, two right: the pixel at (0, 3) leaves the image
    expected[3, 0, 3, 1], expected[3, 0, 2, 3] = 1, 2  # two down
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32


def test_shift_images_matches_a_reference(backend):
    X = images(n=5, c=2, h=4, w=7, seed=1)
    dy, dx = [-3, 0, 1, 4, -1], [2, -6, 0, 1, 9]  # beyond the image too: all zeros
    out = host(backend, shift_images(backend.asarray(X), backend.asarray(np.array(dy)), dx))
    for n in range(5):
        np.testing.assert_array_equal(out[n], reference_shift(X[n], dy[n], dx[n]))


def test_shift_images_errors(backend):
    X = backend.asarray(images(n=2))
    with pytest.raises(ValueError, match=r"shift_images: dx must hold one shift per image \(2\), found 3"):
        shift_images(X, [0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match=r"shift_images: images must be 4-D \(N, C, H, W\), found shape \(2, 30\)"):
        shift_images(backend.asarray(np.zeros((2, 30), dtype=np.float32)), [0, 0], [0, 0])


# ---- Augment ---------------------------------------------------------------------------------------


def test_augment_shifts_by_the_seeded_draws(backend):
    """Each image moves by the shifts the callback's generator draws: dy then dx, each in
    [-shift, shift], from ``backend.rng(seed)``."""
    X = images(n=8, h=6, w=6)
    out = augmented(backend, Augment(shift=2, seed=4), X)
    draws = xpnn.get_backend("numpy").rng(4)
    dy, dx = draws.integers(-2, 3, (8,)), draws.integers(-2, 3, (8,))
    assert len({(a, b) for a, b in zip(dy.tolist(), dx.tolist())}) > 1  # the images move differently
    for n in range(8):
        np.testing.assert_array_equal(out[n], reference_shift(X[n], int(dy[n]), int(dx[n])))


def test_augment_is_seeded_and_the_same_on_every_backend(backend):
    X = images(n=16, c=3, h=8, w=8)

    def make(seed):
        return Augment(shift=2, flip=True, noise=0.1, seed=seed)

    first = augmented(backend, make(7), X)
    np.testing.assert_array_equal(augmented(backend, make(7), X), first)  # a new callback, the same seed
    np.testing.assert_array_equal(augmented(xpnn.get_backend("numpy"), make(7), X), first)  # any backend
    assert not np.array_equal(augmented(backend, make(8), X), first)
    assert first.shape == X.shape and first.dtype == np.float32
    # the callback's generator goes on: its next batch differs from its first
    again = make(7)
    assert not np.array_equal(augmented(backend, again, X) - augmented(backend, again, X), 0)


def test_augment_flips_only_when_asked(backend):
    X = images(n=32, h=4, w=5)
    # nothing asked: the batch comes back as it was
    batch = Batch(backend.asarray(X))
    assert Augment(shift=0).on_batch_begin(0, batch) is batch
    np.testing.assert_array_equal(augmented(backend, Augment(shift=0, noise=0.0), X), X)
    # the default never mirrors: every image is a shift of the original
    out = augmented(backend, Augment(shift=1, seed=2), X)
    for n in range(32):
        assert any(np.array_equal(out[n], reference_shift(X[n], a, b)) for a in (-1, 0, 1) for b in (-1, 0, 1))
    # flip=True: each image is itself or its mirror image, and both happen
    out = augmented(backend, Augment(shift=0, flip=True, seed=2), X)
    flipped = [np.array_equal(out[n], X[n, :, :, ::-1]) for n in range(32)]
    kept = [np.array_equal(out[n], X[n]) for n in range(32)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 32


def test_augment_noise(backend):
    X = np.full((64, 1, 8, 8), 0.5, dtype=np.float32)
    out = augmented(backend, Augment(shift=0, noise=0.2, seed=1), X)
    noise = out - X
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.2) < 0.01


def test_augment_flat_inputs_with_image_shape(backend):
    X = images(n=10, h=5, w=6, seed=3)
    flat = X.reshape(10, 30)
    out_flat = augmented(backend, Augment(shift=1, flip=True, seed=5, image_shape=(5, 6)), flat)
    out = augmented(backend, Augment(shift=1, flip=True, seed=5), X)
    assert out_flat.shape == (10, 30)
    np.testing.assert_array_equal(out_flat, out.reshape(10, 30))
    # (C, H, W) works too, for flat multi-channel images
    X3 = images(n=4, c=3, h=4, w=4)
    out3 = augmented(backend, Augment(shift=1, seed=0, image_shape=(3, 4, 4)), X3.reshape(4, 48))
    np.testing.assert_array_equal(out3, augmented(backend, Augment(shift=1, seed=0), X3).reshape(4, 48))


def test_training_with_augment(backend):
    (X, y), _ = xpnn.load_digits()
    X, y = X[:128], y[:128]
    # a small convolutional network (the default CNN costs minutes on JAX, which compiles every new shape)
    model = xpnn.Sequential([Conv2D(1, 4, 3), ReLU(), Flatten(), Dense(4 * 6 * 6, 10)], backend=backend, seed=0)
    model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    before = X.copy()
    augment = Augment(shift=1, noise=0.05, seed=0)
    history = model.fit(X, y, epochs=1, batch_size=64, verbose=0, callbacks=[augment])
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 1
    np.testing.assert_array_equal(X, before)  # the training data itself is not changed
    # the callback drew from its own generator (seeded, on the model's backend): it has moved on from the seed
    drew = augment.generator(model.backend)
    assert drew.backend == model.backend and drew.state != model.backend.rng(augment.seed).state
    # an MLP on flat images, with validation (which sees the images unchanged)
    mlp = xpnn.NeuralNetwork(64, [16], 10, backend=backend, seed=0)
    mlp.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    flat = X.reshape(128, 64)
    h = mlp.fit(
        flat,
        y,
        epochs=1,
        batch_size=64,
        verbose=0,
        validation_split=0.5,  # 64 and 64 rows: one shape for JAX to compile
        callbacks=[Augment(shift=1, image_shape=(8, 8))],
    )
    assert np.isfinite(h.history["val_loss"]).all()


def test_augment_errors(backend):
    for kwargs, message in [
        ({"shift": -1}, "Augment: shift must be a non-negative integer, found -1"),
        ({"shift": 1.5}, "Augment: shift must be a non-negative integer, found 1.5"),
        ({"flip": "yes"}, "Augment: flip must be True or False, found 'yes'"),
        ({"noise": -0.1}, "Augment: noise must be a number >= 0, found -0.1"),
        ({"seed": -2}, "Augment: seed must be a non-negative integer, found -2"),
        (
            {"image_shape": (28,)},
            (
                r"Augment: image_shape must be \(H, W\) or \(C, H, W\) of positive integers, "
                r"found \(28,\)"
            ),
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            Augment(**kwargs)
    flat = np.zeros((2, 30), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=r"Augment: flat inputs \(2, 30\) need image_shape=\(H, W\) or \(C, H, W\), "
        r"found image_shape=None",
    ):
        augmented(backend, Augment(), flat)
    with pytest.raises(
        ValueError,
        match=r"Augment: image_shape \(1, 5, 5\) holds 25 values, but the inputs have "
        r"30 features per sample",
    ):
        augmented(backend, Augment(image_shape=(5, 5)), flat)
    with pytest.raises(
        ValueError,
        match=r"Augment: image_shape is \(1, 5, 5\), but the images have shape "
        r"\(1, 5, 6\) \(C, H, W\)",
    ):
        augmented(backend, Augment(image_shape=(5, 5)), images(n=2))
    with pytest.raises(ValueError, match=r"Augment: shift must be smaller than the images \(5x6\), found 5"):
        augmented(backend, Augment(shift=5), images(n=2))
    with pytest.raises(ValueError, match=r"Augment: the inputs must be images \(N, C, H, W\) or flat"):
        augmented(backend, Augment(), np.zeros((2, 5, 6), dtype=np.float32))
