"""MNIST and Fashion-MNIST: find the four IDX files on disk, or download them once.

Where the loaders look, in order (the first directory that holds all four files wins):

1. ``data_home`` (the argument): ``data_home/<name>/`` or ``data_home/`` itself
2. the ``XPNN_DATA`` environment variable, the same way: ``$XPNN_DATA/<name>/`` or
   ``$XPNN_DATA/`` itself
3. ``~/.cache/xpnn/<name>/`` (where downloads go)
4. ``/usr/share/datasets/<name>/`` (Debian's ``apt-get install dataset-fashion-mnist``
   puts Fashion-MNIST there)

``<name>`` is ``mnist`` or ``fashion-mnist``. Each file may be raw
(``train-images-idx3-ubyte``) or gzip-compressed (``train-images-idx3-ubyte.gz``).

If none has them, the gzip files are downloaded into ``~/.cache/xpnn/<name>/`` and their
SHA-256 checked before they are kept (each file is written to a temporary name and renamed
when complete, so an interrupted download never leaves a half file behind). Without a
network the loader raises ``FileNotFoundError`` that lists the files and where to put them.

Checksums (SHA-256 of the .gz files as served):

- Fashion-MNIST: the same values are in TensorFlow Datasets' url_checksums; we also checked
  them against the MD5 sums Zalando publishes in the Fashion-MNIST README, by rebuilding the
  original .gz files from Debian's copies (Debian re-wrote only the gzip header).
- MNIST: the values published in TensorFlow Datasets' url_checksums, which match an
  independent list (the ``mnists`` script by Connor Olding). We could not download the files
  here to hash them ourselves.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from .idx import read_idx

__all__ = ["load_mnist", "load_fashion_mnist", "FASHION_MNIST_CLASSES"]

# Fashion-MNIST's labels 0-9 by name, as Zalando's README gives them: for plots and reports
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

ENV_VAR = "XPNN_DATA"
SYSTEM_DIR = "/usr/share/datasets"

# The four files of every MNIST-style data set, in the order they are returned.
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class _Spec:
    name: str  # directory name: ~/.cache/xpnn/<name>
    title: str  # for messages
    mirrors: tuple  # base URLs, tried in order
    sha256: dict  # "<file>.gz" -> hex digest
    hint: str = ""  # extra line for the not-found message


SPECS = {
    "fashion-mnist": _Spec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        # Zalando's S3 website endpoint serves plain http only; the SHA-256 check is what we trust.
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        hint="On Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist "
        "(installs them under /usr/share/datasets/fashion-mnist).",
    ),
    "mnist": _Spec(
        name="mnist",
        title="MNIST",
        # yann.lecun.com often refuses downloads now; these mirrors serve the same files.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
}

_TIMEOUT_S = 30


def cache_dir(name: str) -> str:
    """``~/.cache/xpnn/<name>``: where downloads are kept."""
    return os.path.join(os.path.expanduser("~"), ".cache", "xpnn", name)


def search_dirs(name: str, data_home=None) -> list[str]:
    """The directories searched for data set ``name``, in order (see the module docstring)."""
    dirs = []
    for root in (data_home, os.environ.get(ENV_VAR) or None):
        if root is not None:
            root = os.path.expanduser(os.fspath(root))
            dirs += [os.path.join(root, name), root]
    dirs += [cache_dir(name), os.path.join(SYSTEM_DIR, name)]
    return dirs


def _files_in(directory: str) -> tuple[list[str], list[str]]:
    """(paths found, names missing) for the four files in ``directory``; raw preferred to .gz."""
    found, missing = [], []
    for base in FILES:
        for candidate in (base, base + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found.append(path)
                break
        else:
            missing.append(base)
    return found, missing


def _find_in(directory: str) -> list[str] | None:
    """Paths of the four files in ``directory``, or None if any is missing."""
    found, missing = _files_in(directory)
    return None if missing else found


def _download_one(url: str, dest: str, sha256: str) -> None:
    """Fetch ``url`` into ``dest`` if its SHA-256 matches; write to a temp file, then rename."""
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-", suffix="-" + os.path.basename(dest))
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _download(spec: _Spec) -> tuple[list[str] | None, list[str]]:
    """Try to download all four files into the cache. Returns (paths or None, problems seen)."""
    target = cache_dir(spec.name)
    problems = []
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        return None, [f"cannot create {target}: {exc}"]
    for base in FILES:
        filename = base + ".gz"
        dest = os.path.join(target, filename)
        if os.path.isfile(dest) or os.path.isfile(os.path.join(target, base)):
            continue
        for mirror in spec.mirrors:
            url = mirror + filename
            try:
                print(f"xpnn: downloading {url}", file=sys.stderr)
                _download_one(url, dest, spec.sha256[filename])
                break
            except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
                reason: object = exc
                if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
                    reason = exc.reason
                problems.append(f"{url}: {reason}")
        else:
            if not os.listdir(target):
                os.rmdir(target)  # leave no empty cache directory behind
            return None, problems
    return _find_in(target), problems


def _not_found(spec: _Spec, dirs: list[str], problems: list[str] | None) -> FileNotFoundError:
    """The error for files found nowhere; ``problems`` is None when no download was tried."""
    needed = "\n".join(f"  {base}  (or {base}.gz)" for base in FILES)
    searched_dirs = []
    for d in dirs:
        found, missing = _files_in(d)
        note = f"  (has {len(found)} of 4; missing {', '.join(missing)})" if found else ""
        searched_dirs.append(f"  {d}{note}")
    searched = "\n".join(searched_dirs)
    lines = [
        f"{spec.title} not found. It needs these four files (raw IDX or gzip):",
        needed,
        "Searched, in order:",
        searched,
        f"Put the files in one of these, e.g. {cache_dir(spec.name)}, or in a directory you pass as "
        f"data_home= or set in {ENV_VAR} (either <dir>/{spec.name}/ or <dir>/ itself).",
    ]
    if spec.hint:
        lines.append(spec.hint)
    if problems is None:
        lines.append("Download not attempted (download=False).")
    elif problems:
        lines.append("Download failed:")
        lines += [f"  {p}" for p in problems]
    return FileNotFoundError("\n".join(lines))


def _locate(spec: _Spec, data_home, download: bool) -> list[str]:
    dirs = search_dirs(spec.name, data_home)
    for directory in dirs:
        paths = _find_in(directory)
        if paths is not None:
            return paths
    problems = None
    if download:
        paths, problems = _download(spec)
        if paths is not None:
            return paths
    raise _not_found(spec, dirs, problems)


def _images(raw: np.ndarray, path: str, flatten: bool) -> np.ndarray:
    """uint8 (n, H, W) -> float32 in [0, 1]: (n, 1, H, W), or (n, H*W) when flatten."""
    if raw.ndim != 3 or raw.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected uint8 images of shape (n, height, width), found {raw.dtype} of shape {raw.shape}"
        )
    n, h, w = raw.shape
    X = raw.astype(np.float32)
    X /= np.float32(255.0)
    return X.reshape(n, h * w) if flatten else X.reshape(n, 1, h, w)


def _labels(raw: np.ndarray, path: str, n_images: int) -> np.ndarray:
    if raw.ndim != 1 or raw.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 labels of shape (n,), found {raw.dtype} of shape {raw.shape}")
    if raw.shape[0] != n_images:
        raise ValueError(f"{path}: {raw.shape[0]} labels for {n_images} images")
    if raw.size and raw.max() > 9:
        i = int(np.argmax(raw > 9))
        raise ValueError(f"{path}: labels must be integers in [0, 10), found {raw[i]} at index {i}")
    return raw.astype(np.int64)


def _load(spec: _Spec, data_home, flatten: bool, download: bool):
    tr_img, tr_lab, te_img, te_lab = _locate(spec, data_home, download)
    X_train = _images(read_idx(tr_img), tr_img, flatten)
    y_train = _labels(read_idx(tr_lab), tr_lab, X_train.shape[0])
    X_test = _images(read_idx(te_img), te_img, flatten)
    y_test = _labels(read_idx(te_lab), te_lab, X_test.shape[0])
    return (X_train, y_train), (X_test, y_test)


def load_fashion_mnist(data_home=None, flatten: bool = False, download: bool = True):
    """Fashion-MNIST (Zalando): 28x28 grey images of 10 kinds of clothing, 60,000 + 10,000.

    Returns ``(X_train, y_train), (X_test, y_test)``: images float32 in [0, 1] shaped
    (n, 1, 28, 28), or (n, 784) with ``flatten=True``; labels int64 in [0, 10)
    (0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker,
    8 bag, 9 ankle boot: ``FASHION_MNIST_CLASSES``). MIT license, (c) 2017 Zalando SE.

    Files are searched as the module docstring says (``data_home``, ``$XPNN_DATA``,
    ``~/.cache/xpnn/fashion-mnist``, ``/usr/share/datasets/fashion-mnist``), then
    downloaded unless ``download=False``; ``FileNotFoundError`` says what to do otherwise.
    """
    return _load(SPECS["fashion-mnist"], data_home, flatten, download)


def load_mnist(data_home=None, flatten: bool = False, download: bool = True):
    """MNIST (LeCun, Cortes, Burges): 28x28 grey handwritten digits, 60,000 + 10,000.

    Returns ``(X_train, y_train), (X_test, y_test)``: images float32 in [0, 1] shaped
    (n, 1, 28, 28), or (n, 784) with ``flatten=True``; labels int64 in [0, 10).

    Files are searched as the module docstring says (``data_home``, ``$XPNN_DATA``,
    ``~/.cache/xpnn/mnist``, ``/usr/share/datasets/mnist``), then downloaded unless
    ``download=False``; ``FileNotFoundError`` says what to do otherwise.
    """
    return _load(SPECS["mnist"], data_home, flatten, download)
