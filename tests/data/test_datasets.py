"""Data sets: IDX reader/writer, bundled digits, MNIST-style file search and download, CSV."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnn.datasets import load_csv, load_digits, load_fashion_mnist, load_mnist, loaders, mnist, read_idx, write_idx

# ---- IDX ---------------------------------------------------------------------------------

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@settings(max_examples=15, deadline=None)
@given(
    dtype=st.sampled_from(IDX_DTYPES),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple),
    gz=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_idx_round_trip(tmp_path_factory, dtype, shape, gz, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        a = rng.normal(size=shape).astype(dtype) * 1e6
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # the result is writable (owns its memory)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz


def test_idx_bytes_are_big_endian_with_the_standard_header(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.array([[1, 258, -2]], dtype=np.int16))
    assert path.read_bytes() == (
        b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x03" + b"\x00\x01" + b"\x01\x02" + b"\xff\xfe"
    )
    # ... and a hand-made MNIST-style label file reads back.
    (tmp_path / "labels").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03" + bytes([7, 0, 9]))
    labels = read_idx(tmp_path / "labels")
    assert labels.dtype == np.uint8 and labels.tolist() == [7, 0, 9]


def test_idx_big_endian_input_array_is_written_by_value(tmp_path):
    a = np.array([1.5, -2.25], dtype=">f8")
    write_idx(tmp_path / "f.idx", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), [1.5, -2.25])


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "a.gz", a)
    os.replace(tmp_path / "a.gz", tmp_path / "no-suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), a)
    write_idx(tmp_path / "raw", a)
    os.replace(tmp_path / "raw", tmp_path / "raw.gz")  # raw bytes, misleading name
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), a)


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "bad magic 0x12340801, not an IDX file"),
        (b"\x00\x00\x00\x00\x00\x00\x00\x01\x00", "bad magic 0x00000000, not an IDX file (unknown data type code 0x00"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown data type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00", "2 bytes, too short"),
        (b"", "0 bytes, too short"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", "truncated header: 3 dimensions need 16 header bytes, found 10"),
        (_header(0x08, [3, 4, 5]) + bytes(59), "truncated: header says 3x4x5 = 60 bytes of data, found 59"),
        (
            _header(0x08, [60000, 28, 28]) + bytes(1234),
            "truncated: header says 60000x28x28 = 47040000 bytes of data, found 1234",
        ),
        (
            _header(0x0C, [2, 3]) + bytes(20),
            "truncated: header says 2x3 = 24 bytes (int, 4 bytes each) of data, found 20",
        ),
        (_header(0x08, [3, 4, 5]) + bytes(61), "1 trailing bytes after the data: header says 3x4x5 = 60 bytes"),
        (_header(0x0E, [2]) + bytes(17), "1 trailing bytes after the data: header says 2 = 16 bytes (double"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_damaged_files_naming_the_file(tmp_path, content, message, gz):
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_read_idx_rejects_a_cut_off_gzip_stream(tmp_path):
    blob = gzip.compress(_header(0x08, [100]) + bytes(range(100)))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: damaged gzip data"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(3, dtype=np.int64), "found int64"),
        (np.zeros(3, dtype=bool), "found bool"),
        (np.float32(1.0), "0-d array"),
    ],
)
def test_write_idx_rejects_arrays_it_cannot_store(tmp_path, array, message):
    with pytest.raises(ValueError, match=message):
        write_idx(tmp_path / "x.idx", array)
    assert not (tmp_path / "x.idx").exists()


# ---- digits ------------------------------------------------------------------------------


def test_load_digits_shapes_dtypes_and_range():
    (X_train, y_train), (X_test, y_test) = load_digits()
    assert X_train.shape == (1438, 1, 8, 8) and X_test.shape == (359, 1, 8, 8)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    both = np.concatenate([X_train, X_test])
    assert both.min() == 0.0 and both.max() == 1.0
    np.testing.assert_array_equal(both * 16, np.round(both * 16))  # counts 0..16 divided by 16
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))

    (F_train, f_train), (F_test, f_test) = load_digits(flatten=True)
    assert F_train.shape == (1438, 64) and F_test.shape == (359, 64)
    np.testing.assert_array_equal(F_train, X_train.reshape(1438, 64))
    np.testing.assert_array_equal(f_test, y_test)


def test_load_digits_is_the_bundled_uci_data_split_without_loss():
    pixels, labels = loaders._digits_raw()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)
    # The first image of the UCI file is a 0 (the copy scikit-learn distributes).
    assert labels[0] == 0 and pixels[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    (X_train, y_train), (X_test, y_test) = load_digits(flatten=True)
    got = sorted(
        zip(
            map(bytes, (np.concatenate([X_train, X_test]) * 16).astype(np.uint8)),
            np.concatenate([y_train, y_test]).tolist(),
        )
    )
    want = sorted(zip(map(bytes, pixels), labels.tolist()))
    assert got == want  # every image exactly once, with its label


def test_load_digits_is_deterministic_and_returns_fresh_arrays():
    (a_X, a_y), (a_Xt, a_yt) = load_digits()
    a_X[...] = -1  # must not leak into the next call
    a_yt[...] = -1
    (b_X, b_y), (b_Xt, b_yt) = load_digits()
    (c_X, c_y), (c_Xt, c_yt) = load_digits()
    assert b_X.min() == 0.0 and b_yt.min() == 0
    np.testing.assert_array_equal(b_X, c_X)
    np.testing.assert_array_equal(b_y, c_y)
    np.testing.assert_array_equal(b_Xt, c_Xt)
    # Pinned: the split must not change between versions (checkpoints and docs quote accuracies).
    assert b_yt[:12].tolist() == PINNED_TEST_LABELS
    assert float(b_Xt.sum()) == PINNED_TEST_PIXEL_SUM


PINNED_TEST_LABELS = [2, 3, 1, 3, 5, 0, 1, 5, 0, 8, 0, 3]
PINNED_TEST_PIXEL_SUM = 7010.875


def test_load_digits_split_is_stratified():
    (_, y_train), (_, y_test) = load_digits()
    all_counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    # Each class gives round(20%) of its images to the test set ...
    np.testing.assert_array_equal(test_counts, np.floor(0.2 * all_counts + 0.5).astype(int))
    # ... so class proportions match between the two sets to within one image per class.
    p_train = np.bincount(y_train, minlength=10) / y_train.size
    p_test = test_counts / y_test.size
    assert np.abs(p_train - p_test).max() < 1.0 / y_test.size


def test_stratified_split_helper_on_a_skewed_label_set():
    y = np.array([0] * 50 + [1] * 10 + [2] * 5)
    train, test = loaders._stratified_split(y, 0.2, seed=3)
    assert np.bincount(y[test]).tolist() == [10, 2, 1]
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == y.size
    assert np.all(np.diff(test) > 0) and np.all(np.diff(train) > 0)
    other, _ = loaders._stratified_split(y, 0.2, seed=4)
    assert not np.array_equal(train, other)  # the seed matters


def test_load_digits_needs_no_sklearn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from xpnn.datasets import load_digits\n"
        "(X, y), _ = load_digits(); print(X.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1438, 1, 8, 8)"


# ---- MNIST-style search, download and errors ----------------------------------------------


def _write_set(directory, marker, gz=False, n_train=3, n_test=2, skip=()):
    """Four tiny IDX files in ``directory``; every label equals ``marker`` so tests can tell sets apart."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": np.full((n_train, 4, 5), 51, dtype=np.uint8),
        "train-labels-idx1-ubyte": np.full(n_train, marker, dtype=np.uint8),
        "t10k-images-idx3-ubyte": np.full((n_test, 4, 5), 255, dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.full(n_test, marker, dtype=np.uint8),
    }
    for base, a in arrays.items():
        if base not in skip:
            write_idx(directory / (base + suffix), a)
    return directory


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty HOME, no XPNN_DATA and a private stand-in for /usr/share/datasets."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "system"))
    return tmp_path


def _marker(loader, **kwargs):
    (_, y_train), (_, y_test) = loader(download=False, **kwargs)
    assert np.all(y_train == y_train[0]) and np.all(y_test == y_train[0])
    return int(y_train[0])


@pytest.mark.parametrize("loader, name", [(load_mnist, "mnist"), (load_fashion_mnist, "fashion-mnist")])
def test_search_order_data_home_then_env_then_cache_then_system(places, monkeypatch, loader, name):
    _write_set(places / "system" / name, 1, gz=True)
    assert _marker(loader) == 1
    _write_set(places / "home" / ".cache" / "xpnn" / name, 2)
    assert _marker(loader) == 2
    _write_set(places / "env" / name, 3)
    monkeypatch.setenv(mnist.ENV_VAR, str(places / "env"))
    assert _marker(loader) == 3
    _write_set(places / "arg", 4, gz=True)  # files directly in data_home
    assert _marker(loader, data_home=places / "arg") == 4
    assert _marker(loader, data_home=str(places / "arg")) == 4
    _write_set(places / "arg" / name, 5)  # data_home/<name>/ beats data_home/ itself
    assert _marker(loader, data_home=places / "arg") == 5
    assert _marker(loader, data_home=places / "nothing-here") == 3  # falls through to XPNN_DATA


def test_env_var_may_hold_the_files_directly(places, monkeypatch):
    _write_set(places / "flat", 6)
    monkeypatch.setenv(mnist.ENV_VAR, str(places / "flat"))
    assert _marker(load_mnist) == 6


def test_a_directory_missing_a_file_is_skipped(places):
    _write_set(places / "system" / "mnist", 1)
    _write_set(places / "home" / ".cache" / "xpnn" / "mnist", 2, skip=("t10k-labels-idx1-ubyte",))
    assert _marker(load_mnist) == 1


def test_loader_scales_shapes_and_flattens(places):
    _write_set(places / "arg", 7, gz=True, n_train=3, n_test=2)
    (X, y), (Xt, yt) = load_mnist(data_home=places / "arg", download=False)
    assert X.shape == (3, 1, 4, 5) and Xt.shape == (2, 1, 4, 5)
    assert X.dtype == np.float32 and Xt.dtype == np.float32 and y.dtype == np.int64 and yt.dtype == np.int64
    np.testing.assert_allclose(X, 0.2, rtol=1e-6)  # 51 / 255
    np.testing.assert_array_equal(Xt, 1.0)  # 255 / 255
    (F, _), (Ft, _) = load_mnist(data_home=places / "arg", flatten=True, download=False)
    assert F.shape == (3, 20) and Ft.shape == (2, 20)


def test_not_found_error_lists_files_dirs_and_what_to_do(places, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(places / "env"))
    _write_set(places / "arg" / "fashion-mnist", 1, skip=("train-images-idx3-ubyte",))
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist(data_home=places / "arg", download=False)
    text = str(err.value)
    for base in mnist.FILES:
        assert f"{base}  (or {base}.gz)" in text
    searched = [
        str(places / "arg" / "fashion-mnist"),
        str(places / "arg"),
        str(places / "env" / "fashion-mnist"),
        str(places / "env"),
        str(places / "home" / ".cache" / "xpnn" / "fashion-mnist"),
        str(places / "system" / "fashion-mnist"),
    ]
    positions = [text.index(f"  {d}\n") if f"  {d}\n" in text else text.index(f"  {d}  (") for d in searched]
    assert positions == sorted(positions)  # listed in search order
    assert "(has 3 of 4; missing train-images-idx3-ubyte)" in text
    assert "apt-get install dataset-fashion-mnist" in text
    assert "XPNN_DATA" in text and "data_home" in text
    assert "Download not attempted (download=False)." in text

    with pytest.raises(FileNotFoundError) as err:
        load_mnist(download=False)
    assert "MNIST not found" in str(err.value) and "apt-get" not in str(err.value)


def _serve(tmp_path, marker):
    """A fake mirror: gz files in a directory, its file:// URL, and their SHA-256s."""
    server = _write_set(tmp_path / "server", marker, gz=True)
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in server.iterdir()}
    return server.as_uri() + "/", sha


def test_download_verifies_sha256_and_caches(places, monkeypatch):
    url, sha = _serve(places, 8)
    spec = dataclasses.replace(mnist.SPECS["mnist"], mirrors=("file:///nonexistent/mirror/", url), sha256=sha)
    monkeypatch.setitem(mnist.SPECS, "mnist", spec)
    (X, y), _ = load_mnist()
    assert y.tolist() == [8, 8, 8]
    cache = places / "home" / ".cache" / "xpnn" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(b + ".gz" for b in mnist.FILES)  # no temp files left
    # Now cached: found without downloading, even with every mirror gone.
    monkeypatch.setitem(mnist.SPECS, "mnist", dataclasses.replace(spec, mirrors=("file:///nonexistent/",)))
    assert _marker(load_mnist) == 8


def test_download_with_wrong_sha256_keeps_nothing(places, monkeypatch):
    url, sha = _serve(places, 8)
    sha["t10k-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setitem(
        mnist.SPECS, "fashion-mnist", dataclasses.replace(mnist.SPECS["fashion-mnist"], mirrors=(url,), sha256=sha)
    )
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist()
    assert "Download failed:" in str(err.value)
    assert "t10k-images-idx3-ubyte.gz: SHA-256 mismatch: expected 0000" in str(err.value)
    cache = places / "home" / ".cache" / "xpnn" / "fashion-mnist"
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(cache)
    assert not [n for n in os.listdir(cache) if n.startswith(".part-")]


def test_download_failure_without_network_is_a_clear_error(places, monkeypatch):
    spec = dataclasses.replace(mnist.SPECS["mnist"], mirrors=("file:///nonexistent/a/", "file:///nonexistent/b/"))
    monkeypatch.setitem(mnist.SPECS, "mnist", spec)
    with pytest.raises(FileNotFoundError) as err:
        load_mnist()
    text = str(err.value)
    assert "MNIST not found" in text
    assert "file:///nonexistent/a/train-images-idx3-ubyte.gz" in text
    assert "file:///nonexistent/b/train-images-idx3-ubyte.gz" in text


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"train-labels-idx1-ubyte": np.full(3, 10, dtype=np.uint8)},
            "labels must be integers in [0, 10), found 10 at index 0",
        ),
        ({"t10k-labels-idx1-ubyte": np.zeros(5, dtype=np.uint8)}, "5 labels for 2 images"),
        (
            {"train-images-idx3-ubyte": np.zeros((3, 20), dtype=np.uint8)},
            "expected uint8 images of shape (n, height, width)",
        ),
    ],
)
def test_loader_rejects_inconsistent_files(places, bad, message):
    directory = _write_set(places / "arg", 0)
    for base, a in bad.items():
        write_idx(directory / base, a)
    with pytest.raises(ValueError) as err:
        load_mnist(data_home=directory, download=False)
    assert message in str(err.value) and str(directory) in str(err.value)


def test_the_published_checksums_are_right():
    """The Fashion-MNIST SHA-256s in the code are those of Zalando's original .gz files.

    Debian re-wrote only the gzip header (no file name, a new mtime); putting back the
    original header (name + the mtime that matches Zalando's published MD5) rebuilds the
    exact original bytes. Skipped where dataset-fashion-mnist is not installed.
    """
    root = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(root):
        pytest.skip("dataset-fashion-mnist is not installed")
    published_md5 = {  # Fashion-MNIST README
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 1504176606),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", 1504176606),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", 1504176627),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", 1504176627),
    }
    for base, (md5, mtime) in published_md5.items():
        with open(os.path.join(root, base + ".gz"), "rb") as f:
            debian = f.read()
        assert debian[3] == 0, "expected a gzip header without a file name"
        original = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + base.encode() + b"\x00" + debian[10:]
        assert hashlib.md5(original).hexdigest() == md5
        assert hashlib.sha256(original).hexdigest() == mnist.SPECS["fashion-mnist"].sha256[base + ".gz"]


def test_debian_fashion_mnist_loads():
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    (X, y), (Xt, yt) = load_fashion_mnist(data_home="/usr/share/datasets/fashion-mnist", download=False)
    assert X.shape == (60000, 1, 28, 28) and Xt.shape == (10000, 1, 28, 28)
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= float(Xt.min()) and float(Xt.max()) == 1.0
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10


# ---- CSV ---------------------------------------------------------------------------------


def test_load_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,label\n0.5,1,2\n\n-3,4e-1,0\n")
    X, y = load_csv(tmp_path / "h.csv")
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, np.array([[0.5, 1], [-3, 0.4]], dtype=np.float32))
    assert y.tolist() == [2, 0]

    (tmp_path / "n.csv").write_text("1,5,1\n0,2,3\n")
    X, y = load_csv(str(tmp_path / "n.csv"), label_column=0)
    np.testing.assert_array_equal(X, [[5, 1], [2, 3]])
    assert y.tolist() == [1, 0]
    X, y = load_csv(tmp_path / "n.csv", label_column=-2)
    np.testing.assert_array_equal(X, [[1, 1], [0, 3]])
    assert y.tolist() == [5, 2]
    for numpy_int in (np.int64(-2), np.int32(-2), np.uint8(1)):  # NumPy integers count like Python ints
        X, y = load_csv(tmp_path / "n.csv", label_column=numpy_int)
        np.testing.assert_array_equal(X, [[1, 1], [0, 3]])
        assert y.tolist() == [5, 2]


def test_load_csv_quoted_cells_and_bom(tmp_path):
    (tmp_path / "q.csv").write_bytes('\ufeff"x","y"\n"1.5","2"\n'.encode("utf-8"))
    X, y = load_csv(tmp_path / "q.csv")
    np.testing.assert_array_equal(X, [[1.5]])
    assert y.tolist() == [2]


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), header=st.booleans())
def test_load_csv_round_trip(tmp_path_factory, n, d, seed, header):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, 5, size=n)
    lines = [",".join(f"f{j}" for j in range(d)) + ",label"] if header else []
    lines += [",".join(repr(float(v)) for v in row) + f",{label}" for row, label in zip(X, y)]
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    X2, y2 = load_csv(path)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,c\n1,2,3\n4,5\n", "line 3: expected 3 comma-separated values (like line 2), found 2"),
        ("1,2,3\n4,5,6,7\n", "line 2: expected 3 comma-separated values (like line 1), found 4"),
        ("1,2,0\n\n4,abc,1\n", "line 3, column 2: expected a number, found 'abc'"),
        ("1,2,0\n4,,1\n", "line 2, column 2: expected a number, found an empty cell"),
        ("1,2,0\n,,\n", "line 2, column 1: expected a number, found an empty cell"),
        ("1,nan,0\n", "line 1, column 2: expected a finite number, found 'nan'"),
        ("x,y\n1,2\n3,inf\n", "line 3, column 2: expected a finite number, found 'inf'"),
        ("x,y\n1,2\n3,1.5\n", "line 3, column 2: labels must be non-negative integers, found 1.5"),
        ("1,-1\n", "line 1, column 2: labels must be non-negative integers, found -1"),
        ("", "no data (the file is empty)"),
        ("\n\n", "no data (the file is empty)"),
        ("a,b,label\n", "no data rows after the header on line 1"),
        ("1\n2\n", "expected at least 2 comma-separated columns"),
    ],
)
def test_load_csv_bad_input_names_file_line_and_content(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_csv(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "label_column, message",
    [
        (3, "load_csv: label_column must be in [-3, 3)"),
        (-4, "load_csv: label_column must be in [-3, 3)"),
        (np.int64(3), "load_csv: label_column must be in [-3, 3)"),
        (1.0, "load_csv: label_column must be an integer, found 1.0"),
        (np.float64(1.0), "load_csv: label_column must be an integer, found"),
        (True, "load_csv: label_column must be an integer, found True"),
    ],
)
def test_load_csv_bad_label_column(tmp_path, label_column, message):
    (tmp_path / "d.csv").write_text("1,2,3\n")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_csv(tmp_path / "d.csv", label_column=label_column)


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "none.csv")
