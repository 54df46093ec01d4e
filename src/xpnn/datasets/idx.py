"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a tiny header followed by the raw array, everything big-endian:

    bytes 0-1   zero
    byte  2     data type code: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
                0x0D float, 0x0E double
    byte  3     number of dimensions, ndim
    then        ndim sizes, each a 4-byte unsigned int
    then        the data, prod(sizes) items, last index fastest (C order)

Files are often gzip-compressed (``train-images-idx3-ubyte.gz``). ``read_idx`` looks at
the first two bytes (gzip starts with 0x1f 0x8b, IDX with two zeros), so a compressed file
without the ``.gz`` name, or the reverse, still reads.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

__all__ = ["read_idx", "write_idx"]

# type code -> (big-endian dtype, name used in messages)
_CODES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(">u1"), "ubyte"),
    0x09: (np.dtype(">i1"), "byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
_CODE_OF = {np.dtype(dt).newbyteorder("=").str: code for code, (dt, _) in _CODES.items()}
_KNOWN = ", ".join(f"0x{code:02X} ({name})" for code, (_, name) in _CODES.items())

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # read in pieces: memory grows with the data actually there, never with what a header claims
_MAX_TRAILING = 1 << 26  # trailing bytes counted up to this (a gzip bomb must not keep us decompressing)


def _read_up_to(f, n: int) -> bytearray:
    """At most ``n`` bytes from ``f``, fewer at the end of the data."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(_CHUNK, n - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array of its own shape and type.

    Returns an array in native byte order: ``uint8`` for MNIST images ``(n, 28, 28)``
    and labels ``(n,)``.

    Raises ``ValueError`` naming the file and what is wrong when the magic number, type
    code or number of dimensions is bad, when the data is shorter or longer than the
    header's sizes say, or when gzip data is damaged; ``FileNotFoundError`` when there is
    no such file. Memory grows with the data read, never with the sizes a header claims.
    """
    name = os.fspath(path)
    with open(path, "rb") as raw:
        if raw.read(2) != _GZIP_MAGIC:  # gzip is judged by content, not by name
            raw.seek(0)
            return _read_idx(name, raw)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _read_idx(name, f)
        except (OSError, EOFError, zlib.error) as exc:
            # A cut-off download ends here: gzip reports "Compressed file ended before ...".
            raise ValueError(f"{name}: damaged gzip data ({exc})") from None


def _read_idx(name, f) -> np.ndarray:
    buf = _read_up_to(f, 4)
    if len(buf) < 4:
        raise ValueError(f"{name}: {len(buf)} bytes, too short for an IDX file (the header alone is at least 8)")

    magic = int.from_bytes(buf[:4], "big")
    zero, code, ndim = bytes(buf[0:2]), buf[2], buf[3]
    if zero != b"\x00\x00":
        raise ValueError(f"{name}: bad magic 0x{magic:08X}, not an IDX file (its first two bytes must be zero)")
    if code not in _CODES:
        raise ValueError(
            f"{name}: bad magic 0x{magic:08X}, not an IDX file "
            f"(unknown data type code 0x{code:02X}; expected one of {_KNOWN})"
        )
    if ndim == 0:
        raise ValueError(f"{name}: bad magic 0x{magic:08X}: the header says 0 dimensions, expected at least 1")

    header_len = 4 + 4 * ndim
    buf += _read_up_to(f, header_len - 4)
    if len(buf) < header_len:
        raise ValueError(
            f"{name}: truncated header: {ndim} dimensions need {header_len} header bytes, found {len(buf)}"
        )
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))

    dtype, type_name = _CODES[code]
    expected = math.prod(shape) * dtype.itemsize
    data = _read_up_to(f, expected)
    found = len(data)
    if found == expected:  # and nothing may follow: count what does, up to a bound
        extra = len(_read_up_to(f, 1))
        while extra and extra <= _MAX_TRAILING:
            more = len(f.read(_CHUNK))
            if not more:
                break
            extra += more
        found += extra
    if found != expected:
        dims = "x".join(str(s) for s in shape)
        what = "bytes" if dtype.itemsize == 1 else f"bytes ({type_name}, {dtype.itemsize} bytes each)"
        says = f"header says {dims} = {expected} {what} of data, found {found}"
        if found < expected:
            raise ValueError(f"{name}: truncated: {says}")
        or_more = " or more" if found - expected > _MAX_TRAILING else ""
        raise ValueError(f"{name}: {found - expected}{or_more} trailing bytes after the data: {says}{or_more}")

    try:  # astype copies: the result is writable, native-endian, and owns its memory.
        return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    except ValueError as exc:  # more dimensions than NumPy allows (64)
        raise ValueError(f"{name}: the header's shape {shape} cannot be a NumPy array ({exc})") from None


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    array: any shape with at least one dimension, dtype uint8, int8, int16, int32,
    float32 or float64 (the six IDX types). Other dtypes raise ``ValueError``: cast first,
    for example ``labels.astype(np.uint8)``.
    """
    a = np.asarray(array)
    if a.ndim == 0:
        raise ValueError("write_idx: array must have at least 1 dimension, found a 0-d array")
    if a.ndim > 255:
        raise ValueError(f"write_idx: IDX holds at most 255 dimensions, found {a.ndim}")
    native = a.dtype.newbyteorder("=").str if a.dtype.byteorder != "|" else a.dtype.str
    code = _CODE_OF.get(native)
    if code is None:
        raise ValueError(
            f"write_idx: array dtype must be uint8, int8, int16, int32, float32 or float64, found {a.dtype}"
        )
    if any(s >= 2**32 for s in a.shape):
        raise ValueError(f"write_idx: each size must fit in 4 bytes, found shape {a.shape}")

    header = bytes([0, 0, code, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    payload = np.ascontiguousarray(a, dtype=_CODES[code][0]).tobytes()
    if os.fspath(path).endswith(".gz"):
        # mtime=0: the same array always gives the same bytes.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(header + payload)
    else:
        with open(path, "wb") as f:
            f.write(header + payload)
