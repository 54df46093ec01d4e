"""Image augmentation inside ``fit``: each training batch is shifted, flipped or made
noisy on the device before the model sees it, differently every time.

    model.fit(X, y, epochs=15, callbacks=[Augment(shift=2)])

:class:`Augment` is a Callback: its ``on_batch_begin`` returns the batch with new images
(the stored training data is never changed; validation, evaluate and predict see the
images as they are). Its random draws come from its own generator, seeded by its
``seed``: a run is reproducible, and the same on every backend (the draws are made on
the host, as the model's own, and the images are then changed on the device with
array-API operations).

The transforms, in this order, each only if asked for:

- shift: every image moved by a random whole number of pixels in [-shift, shift] down
  and right (independently), the pixels moved in being 0: the same as padding by
  ``shift`` pixels of 0 and cropping a random window of the original size. Small shifts
  teach a network that an object moved a little is the same object.
- flip: every image mirrored left-right with probability 1/2. Off by default: a
  mirrored 2, 3 or 7 is no digit, while a mirrored shoe is still a shoe.
- noise: Gaussian noise of standard deviation ``noise`` added to every pixel.
"""

from __future__ import annotations

import math

from . import _checks
from .backends import backend_of
from .callbacks import Callback
from .training.batches import Batch

__all__ = ["Augment", "shift_images"]


def _gather(be, images, rows, cols, pad):
    """out[n, c, i, j] = P[n, c, rows[n, i], cols[n, j]] where P is ``images`` padded by
    ``pad`` pixels of 0 on every side: one gather on the device for per-sample shifts
    and flips. rows: (N, H), cols: (N, W) int64 indices into the padded image."""
    xp = be.xp
    N, C, H, W = images.shape
    if pad:  # pad once (concat works on every library, also on immutable JAX arrays)
        side = xp.zeros((N, C, H, pad), dtype=images.dtype, device=be.device)
        images = xp.concat([side, images, side], axis=3)
        band = xp.zeros((N, C, pad, W + 2 * pad), dtype=images.dtype, device=be.device)
        images = xp.concat([band, images, band], axis=2)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    n = xp.arange(N, dtype=xp.int64, device=be.device)[:, None, None, None]
    c = xp.arange(C, dtype=xp.int64, device=be.device)[None, :, None, None]
    index = (n * C + c) * (Hp * Wp) + rows[:, None, :, None] * Wp + cols[:, None, None, :]
    flat = xp.take(xp.reshape(images, (-1,)), xp.reshape(index, (-1,)))
    return xp.reshape(flat, (N, C, H, W))


def _shifted(be, images, dy, dx, flip, pad):
    """images (N, C, H, W) moved by dy[n] rows down and dx[n] columns right (pixels moved
    in are 0), then mirrored left-right where flip[n] (None: nowhere)."""
    xp = be.xp
    _, _, H, W = images.shape
    i = xp.arange(H, dtype=xp.int64, device=be.device)[None, :]
    j = xp.arange(W, dtype=xp.int64, device=be.device)[None, :]
    if flip is not None:  # out[.., j] reads column W - 1 - j of the shifted image
        j = xp.where(flip[:, None], (W - 1) - j, j)
    # out[i, j] = in[i - dy, j - dx], which is P[i - dy + pad, j - dx + pad] in the padded image
    rows = i - dy[:, None] + pad
    cols = j - dx[:, None] + pad
    return _gather(be, images, rows, cols, pad)


def shift_images(images, dy, dx):
    """Each image moved by its own whole number of pixels: ``out[n, :, i, j] =
    images[n, :, i - dy[n], j - dx[n]]``, 0 where that falls outside the image.

    images: (N, C, H, W) floating array of any backend; dy, dx: N integers each (lists or
    integer arrays): positive dy moves the picture down, positive dx to the right.
    Returns a new array on images' backend (the one ``Augment(shift=...)`` uses).
    """
    where = "shift_images"
    be = backend_of(images)
    if images.ndim != 4:
        raise ValueError(f"{where}: images must be 4-D (N, C, H, W), found shape {tuple(images.shape)}")
    N, _, H, W = images.shape
    offsets = []
    for name, d in (("dy", dy), ("dx", dx)):
        values = be.to_numpy(d).tolist() if not isinstance(d, (list, tuple)) else list(d)
        for i, v in enumerate(values):  # int() would round 0.5 to 0 and 1.7 to 1 without a word
            if not _checks.is_integer(v):
                raise ValueError(
                    f"{where}: {name} must hold whole numbers of pixels (integers), found {v!r} at index {i}"
                )
        host = [int(v) for v in values]
        if len(host) != N:
            raise ValueError(f"{where}: {name} must hold one shift per image ({N}), found {len(host)}")
        offsets.append(host)
    pad = max([0] + [abs(v) for v in offsets[0] + offsets[1]])
    pad = min(pad, max(H, W))  # a shift by the whole image or more leaves only zeros: no need for more
    dy, dx = (be.asarray([max(-pad, min(pad, v)) for v in host], dtype="int64") for host in offsets)
    return _shifted(be, images, dy, dx, None, pad)


class Augment(Callback):
    """Random shifts, flips and noise for the training images, batch by batch, inside
    ``fit``: ``model.fit(X, y, callbacks=[Augment(shift=2)])``.

    shift: the largest move in pixels, in each direction (0: none); each image moves by
        its own random amount in [-shift, shift] down and right (pad by ``shift`` zeros,
        crop a random window back to the image's size).
    flip: mirror each image left-right with probability 1/2 (off by default: digits and
        letters must not be mirrored).
    noise: the standard deviation of Gaussian noise added to every pixel (0: none).
    seed: seeds this callback's generator; draws go on from one ``fit`` to the next (so
        calling fit once per epoch still gives new draws every epoch).
    image_shape: for flat inputs (N, H*W) or (N, C*H*W): (H, W) or (C, H, W), the
        images' shape. Image inputs (N, C, H, W) need none.

    Training images only: validation, evaluate and predict see the images unchanged.
    With several processes (DataParallel) each rank augments its own shard with the same
    draws as the others, as a single process would not: use a different seed per rank
    for draws independent across ranks.
    """

    def __init__(self, shift: int = 2, flip: bool = False, noise: float = 0.0, seed: int = 0, image_shape=None):
        where = "Augment"
        self.shift = _checks.non_negative_int(shift, "shift", where)
        self.flip = _checks.boolean(flip, "flip", where)
        self.noise = _checks.number(noise, "noise", where, low=0.0)
        self.seed = _checks.non_negative_int(seed, "seed", where)
        self.image_shape = None if image_shape is None else _image_shape(image_shape, where)
        self._generator = None

    def __repr__(self) -> str:
        shape = "" if self.image_shape is None else f", image_shape={self.image_shape}"
        return f"Augment(shift={self.shift}, flip={self.flip}, noise={self.noise}, seed={self.seed}{shape})"

    def generator(self, backend):
        """This callback's seeded generator, drawing for ``backend`` (made at the first
        batch; moving to another backend keeps its state, so the draws go on)."""
        if self._generator is None:
            self._generator = backend.rng(self.seed)
        elif self._generator.backend != backend:
            state = self._generator.state
            self._generator = backend.rng(self.seed)
            self._generator.set_state(state)
        return self._generator

    def on_batch_begin(self, step, batch):
        if batch is None or not (self.shift or self.flip or self.noise):
            return batch
        X = batch.X
        return Batch(self.apply(X, self.generator(backend_of(X))), batch.y, batch.inputs, batch.size)

    def apply(self, X, generator):
        """X (N, C, H, W), or flat (N, features) with ``image_shape``, augmented with
        draws from ``generator`` (a backend's Generator); the same shape and dtype."""
        where = "Augment"
        be = backend_of(X)
        xp = be.xp
        images = self._images(X, where)
        N, _, H, W = images.shape
        if self.shift >= min(H, W):
            raise ValueError(f"{where}: shift must be smaller than the images ({H}x{W}), found {self.shift}")
        if not xp.isdtype(X.dtype, "real floating"):
            raise TypeError(f"{where}: the images must be floating point, found dtype {X.dtype}")
        # the draws, always in this order, each only if its transform is on
        dy = dx = flip = None
        if self.shift:
            dy = generator.integers(-self.shift, self.shift + 1, (N,))
            dx = generator.integers(-self.shift, self.shift + 1, (N,))
        if self.flip:
            flip = generator.integers(0, 2, (N,)) == 1
        if self.shift or self.flip:
            if dy is None:
                dy = dx = xp.zeros(N, dtype=xp.int64, device=be.device)
            images = _shifted(be, images, dy, dx, flip, self.shift)
        if self.noise:
            images = images + generator.normal(images.shape, std=self.noise, dtype=images.dtype)
        return xp.reshape(images, X.shape)

    def _images(self, X, where):
        """X as (N, C, H, W)."""
        xp = backend_of(X).xp
        if X.ndim == 4:
            if self.image_shape is not None and tuple(X.shape[1:]) != self.image_shape:
                raise ValueError(
                    f"{where}: image_shape is {self.image_shape}, but the images have shape "
                    f"{tuple(X.shape[1:])} (C, H, W)"
                )
            return X
        if X.ndim == 2:
            if self.image_shape is None:
                raise ValueError(
                    f"{where}: flat inputs {tuple(X.shape)} need image_shape=(H, W) or (C, H, W), "
                    f"found image_shape=None"
                )
            if X.shape[1] != math.prod(self.image_shape):
                raise ValueError(
                    f"{where}: image_shape {self.image_shape} holds {math.prod(self.image_shape)} "
                    f"values, but the inputs have {X.shape[1]} features per sample"
                )
            return xp.reshape(X, (X.shape[0], *self.image_shape))
        raise ValueError(
            f"{where}: the inputs must be images (N, C, H, W) or flat (N, features) with image_shape, "
            f"found shape {tuple(X.shape)}"
        )


def _image_shape(value, where) -> tuple:
    """(C, H, W) from (H, W) or (C, H, W) positive integers."""
    try:
        dims = tuple(value)
    except TypeError:
        dims = None
    if dims is None or len(dims) not in (2, 3) or not all(_checks.is_integer(d) and d > 0 for d in dims):
        raise ValueError(f"{where}: image_shape must be (H, W) or (C, H, W) of positive integers, found {value!r}")
    dims = tuple(int(d) for d in dims)
    return (1, *dims) if len(dims) == 2 else dims
