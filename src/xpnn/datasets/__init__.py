"""Data sets: every loader returns NumPy arrays ``(X_train, y_train), (X_test, y_test)``.

Images are float32 in [0, 1], shaped (n, 1, H, W) (NCHW) or (n, H*W) with
``flatten=True``; labels are int64.

- :func:`load_digits`: UCI 8x8 handwritten digits, bundled with xpnn (offline).
- :func:`load_mnist`, :func:`load_fashion_mnist`: found on disk (``data_home``,
  ``$XPNN_DATA``, ``~/.cache/xpnn/<name>``, ``/usr/share/datasets/<name>``) or downloaded
  once with a SHA-256 check; see :mod:`xpnn.datasets.mnist`. ``FASHION_MNIST_CLASSES``
  names Fashion-MNIST's labels 0-9.
- :func:`load_csv`: a numeric CSV file, returned as ``(X, y)`` for the caller to split.
- :func:`read_idx`, :func:`write_idx`: the IDX format of MNIST, raw or gzip.
"""

from .idx import read_idx, write_idx
from .loaders import load_csv, load_digits
from .mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist

__all__ = [
    "load_digits",
    "load_mnist",
    "load_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    "load_csv",
    "read_idx",
    "write_idx",
]
