"""The bundled 8x8 digits, and numeric CSV files for ``xpnn train --data PATH.csv``."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
import os
from importlib import resources

import numpy as np

from .._checks import integer

__all__ = ["load_digits", "load_csv", "MissingValueError", "MISSING_CELLS"]

DIGITS_SEED = 0  # fixes the train/test split of load_digits forever
DIGITS_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 (1797, 64) in 0..16, labels int64 (1797,)) from the packaged CSV."""
    blob = resources.files("xpnn.datasets").joinpath("data/digits.csv.gz").read_bytes()
    table = np.loadtxt(io.BytesIO(gzip.decompress(blob)), delimiter=",", dtype=np.int64, ndmin=2)
    return table[:, :64].astype(np.uint8), table[:, 64].copy()


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each sorted, with every class split in the same proportion.

    Each sample gets a random key from PCG64(seed) (a stream NumPy keeps stable across
    versions); within a class the samples with the smallest keys go to the test set.
    """
    keys = np.random.Generator(np.random.PCG64(seed)).random(int(y.shape[0]))  # int: picks the array overload
    per_class = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n_test = int(math.floor(test_fraction * members.size + 0.5))
        per_class.append(members[np.argsort(keys[members], kind="stable")[:n_test]])
    test = np.sort(np.concatenate(per_class))
    train = np.setdiff1d(np.arange(y.shape[0]), test)  # sorted
    return train, test


def load_digits(flatten: bool = False):
    """The UCI 8x8 handwritten digits, bundled: works offline.

    1,797 images of digits 0-9 (E. Alpaydin and C. Kaynak, "Optical Recognition of
    Handwritten Digits", UCI Machine Learning Repository, doi:10.24432/C50P49, CC BY 4.0),
    split 80/20 into 1,438 train and 359 test images, stratified by class. The split is
    fixed (seed 0): every call, on every machine, gives the same arrays.

    Returns ``(X_train, y_train), (X_test, y_test)``: images float32 in [0, 1] (pixel
    counts 0..16 divided by 16) shaped (n, 1, 8, 8), or (n, 64) with ``flatten=True``;
    labels int64 in [0, 10).
    """
    pixels, labels = _digits_raw()
    train, test = _stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SEED)
    X = pixels.astype(np.float32) / np.float32(16.0)
    if not flatten:
        X = X.reshape(-1, 1, 8, 8)
    # Fancy indexing copies, so callers may modify the arrays freely.
    return (X[train], labels[train]), (X[test], labels[test])


# ---- CSV ---------------------------------------------------------------------------------

# Labels above this are refused: float64 holds every integer exactly only up to 2**53, and
# int64 overflows (to -2**63) near 9.2e18.
MAX_LABEL = 2**53


# What a missing value looks like in a CSV file (compared in lower case, without the
# spaces around it): an empty cell, and the spellings of pandas, R and spreadsheets.
# float() reads "nan" (and "-nan") too: NaN is missing wherever it comes from.
MISSING_CELLS = ("", "na", "nan", "n/a", "null")


class MissingValueError(ValueError):
    """A CSV cell is missing (empty, NA, nan, ...) where a number is required: raised by
    :func:`read_numeric_csv` unless it was asked to read missing cells as NaN.

    ``line`` and ``column`` (from 1) say where, ``width`` how many cells the row has (so
    ``column == width`` is the last column: a label, for ``xpnn train``)."""

    def __init__(self, message, line=None, column=None, width=None):
        super().__init__(message)
        self.line, self.column, self.width = line, column, width


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_CELLS or (_is_number(cell) and math.isnan(float(cell)))


def _found(cell: str) -> str:
    return "an empty cell" if not cell.strip() else repr(cell)


def _number(name: str, lineno: int, col: int, cell: str, missing: bool = False, width=None) -> float:
    """The finite float in ``cell`` (NaN for a missing cell if ``missing``), or a
    ValueError naming the file, line, column and cell."""
    try:
        value = float(cell)
    except ValueError:
        value = None
    if cell.strip().lower() in MISSING_CELLS or (value is not None and math.isnan(value)):
        if missing:
            return math.nan
        expected = "a number" if value is None else "a finite number"
        raise MissingValueError(
            f"{name}, line {lineno}, column {col}: expected {expected}, found {_found(cell)} (a missing value)",
            lineno,
            col,
            width,
        )
    if value is None:
        raise ValueError(f"{name}, line {lineno}, column {col}: expected a number, found {_found(cell)}")
    if not math.isfinite(value):
        raise ValueError(f"{name}, line {lineno}, column {col}: expected a finite number, found {cell!r}")
    return value


def _scan_csv(name: str, rows: list[tuple[int, str]], missing: bool = False) -> np.ndarray:
    """Parse with the csv module (handles quoted cells), raising ValueError at the first bad row.

    The slow path: used when NumPy's fast parser fails, to name the line to blame.
    """
    table = []
    width = first_line = None
    for lineno, line in rows:
        row = next(csv.reader([line]))
        if width is None:
            width, first_line = len(row), lineno
        elif len(row) != width:
            raise ValueError(
                f"{name}, line {lineno}: expected {width} comma-separated values "
                f"(like line {first_line}), found {len(row)}"
            )
        table.append([_number(name, lineno, col, cell, missing, width) for col, cell in enumerate(row, start=1)])
    return np.array(table, dtype=np.float64).reshape(len(table), width or 0)


def check_regular_file(path, what: str) -> None:
    """An error naming ``path`` unless it is a regular file: a folder, a device (/dev/zero
    never ends) or a pipe is not ``what``."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise IsADirectoryError(f"{name} is a folder, not {what}")
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name} does not exist (expected {what})")
    if not os.path.isfile(name):
        raise ValueError(f"{name} is not a regular file (a device or a pipe), not {what}")


def read_numeric_csv(path, missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(table, lines)``: every cell of a numeric CSV file as float64 (rows, columns), and
    the file's line number (from 1) of each row, for error messages.

    Blank lines are skipped. The first row is a header (skipped) only if none of its cells
    is a number; a first row mixing numbers and text is an error, not a header, so that a
    typo in the first sample does not silently drop it. Raises ValueError naming the file,
    the line and what was found for ragged rows and non-numeric or non-finite cells.

    missing: read missing cells (empty, or one of MISSING_CELLS such as NA and nan, in any
    case) as NaN. Without it they are an error too, a MissingValueError. Infinities are
    an error either way.
    """
    name = os.fspath(path)
    check_regular_file(path, "a CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: skip a BOM from Excel
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{name}, line {line}: not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); expected a CSV file of numbers"
        ) from None

    rows = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise ValueError(f"{name}: no data (the file is empty)")
    first_line, first = rows[0][0], next(csv.reader([rows[0][1]]))
    # a header has no number in it (a missing cell is no number: ",name,label" is a header)
    numeric = [_is_number(cell) and not _is_missing(cell) for cell in first]
    has_header = not any(numeric)
    if not has_header:
        for col, cell in enumerate(first, start=1):
            if not numeric[col - 1] and not _is_missing(cell):
                raise ValueError(
                    f"{name}, line {first_line}, column {col}: expected a number, found {cell!r} "
                    f"(a header row must have no numbers in it)"
                )
    if has_header:
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{name}: no data rows after the header on line {first_line}")

    # Fast path: NumPy's C parser. On any problem the slow scan finds the line to blame.
    # ("nan" cells parse as NaN: missing values when they are allowed)
    try:
        table = np.loadtxt([line for _, line in rows], delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        ok = bool((~np.isinf(table) if missing else np.isfinite(table)).all())
    except ValueError:
        ok = False
    if not ok:
        table = _scan_csv(name, rows, missing)
    return table, np.array([i for i, _ in rows], dtype=np.int64)


def _show(value: float) -> str:
    """A label as the user wrote it, near enough: 7, 2.5, 1e+300."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else f"{value:g}"


def load_labelled_csv(path, label_column: int = -1, missing: bool = False):
    """``(X, y, lines)``: :func:`load_csv` plus the file's line number of each sample."""
    label_column = integer(label_column, "label_column", "load_csv")
    name = os.fspath(path)
    table, lines = read_numeric_csv(path, missing)
    n_cols = table.shape[1]
    if n_cols < 2:
        raise ValueError(f"{name}: expected at least 2 comma-separated columns (features and a label), found {n_cols}")
    if not -n_cols <= label_column < n_cols:
        raise ValueError(
            f"load_csv: label_column must be in [{-n_cols}, {n_cols}) for {name} with {n_cols} "
            f"columns, found {label_column}"
        )
    col = label_column % n_cols

    # checked as floats, converted only once in range: 1e300 must not become -2**63
    y_float = table[:, col]
    unlabelled = np.flatnonzero(np.isnan(y_float))
    if unlabelled.size:  # only features may be missing: a sample without its label teaches nothing
        raise ValueError(
            f"{name}, line {lines[unlabelled[0]]}, column {col + 1}: the label is missing; every "
            f"sample needs one (only feature cells may be missing)"
        )
    bad = np.flatnonzero((y_float != np.floor(y_float)) | (y_float < 0) | (y_float >= MAX_LABEL))
    if bad.size:
        i = int(bad[0])
        value = float(y_float[i])
        too_big = " (too large: labels must be below 2**53)" if value >= MAX_LABEL else ""
        raise ValueError(
            f"{name}, line {lines[i]}, column {col + 1}: labels must be non-negative integers, "
            f"found {_show(value)}{too_big}"
        )
    features = np.delete(table, col, axis=1)
    check_float32(features, name, lines, [c + (c >= col) for c in range(features.shape[1])])
    return features.astype(np.float32), y_float.astype(np.int64), lines


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32(table, name, lines, columns=None) -> None:
    """An error naming the line and column (from 1) of the first value that float32, the
    dtype xpnn trains in, cannot hold (it would become inf). columns: each table column's
    index in the file (from 0), where some were taken out."""
    big = np.argwhere(np.abs(np.nan_to_num(table)) > FLOAT32_MAX)
    if big.size:
        i, j = (int(v) for v in big[0])
        col = (columns[j] if columns is not None else j) + 1
        raise ValueError(
            f"{name}, line {lines[i]}, column {col}: {table[i, j]:g} is too large for float32 (largest "
            f"{FLOAT32_MAX:.4g}); rescale that column"
        )


def load_csv(path, label_column: int = -1, missing: bool = False):
    """Read a numeric CSV file: one sample per line, one column of integer class labels.

    The first row is a header (skipped) if none of its cells is a number; a first row
    mixing numbers and text is an error. Blank lines are ignored. Cells are separated by
    commas.

    path: the file. label_column: index of the label column (Python-style, so -1 is the
        last column). missing: read missing feature cells (empty, NA, nan, N/A, null;
        any case) as NaN, for an imputer to fill (``xpnn.preprocessing.SimpleImputer``);
        without it they are an error (a MissingValueError, a ValueError). A missing label
        is an error either way.

    Returns ``(X, y)``: X float32 (n, columns - 1), y int64 (n,). The caller splits.

    Raises ValueError naming the file, the line and what was found for ragged rows,
    non-numeric or non-finite cells, and labels that are not non-negative integers
    (below 2**53).
    """
    X, y, _ = load_labelled_csv(path, label_column, missing)
    return X, y
