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
_CODES = {
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


def _read_bytes(path) -> bytes:
    """The file's bytes, decompressed if it is gzip (judged by content, not by name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        # A cut-off download ends here: gzip reports "Compressed file ended before ...".
        raise ValueError(f"{os.fspath(path)}: damaged gzip data ({exc})") from None


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array of its own shape and type.

    Returns an array in native byte order: ``uint8`` for MNIST images ``(n, 28, 28)``
    and labels ``(n,)``.

    Raises ``ValueError`` naming the file and what is wrong when the magic number, type
    code or number of dimensions is bad, or when the data is shorter or longer than the
    header's sizes say; ``FileNotFoundError`` when there is no such file.
    """
    name = os.fspath(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{name}: {len(buf)} bytes, too short for an IDX file (the header alone is at least 8)")

    magic = int.from_bytes(buf[:4], "big")
    zero, code, ndim = buf[0:2], buf[2], buf[3]
    if zero != b"\x00\x00":
        raise ValueError(f"{name}: bad magic 0x{magic:08X}, not an IDX file (its first two bytes must be zero)")
    if code not in _CODES:
        raise ValueError(f"{name}: bad magic 0x{magic:08X}, not an IDX file "
                         f"(unknown data type code 0x{code:02X}; expected one of {_KNOWN})")
    if ndim == 0:
        raise ValueError(f"{name}: bad magic 0x{magic:08X}: the header says 0 dimensions, expected at least 1")

    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise ValueError(f"{name}: truncated header: {ndim} dimensions need {header_len} header bytes, "
                         f"found {len(buf)}")
    shape = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))

    dtype, type_name = _CODES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(buf) - header_len
    if found != expected:
        dims = "x".join(str(s) for s in shape)
        what = "bytes" if dtype.itemsize == 1 else f"bytes ({type_name}, {dtype.itemsize} bytes each)"
        says = f"header says {dims} = {expected} {what} of data, found {found}"
        if found < expected:
            raise ValueError(f"{name}: truncated: {says}")
        raise ValueError(f"{name}: {found - expected} trailing bytes after the data: {says}")

    data = np.frombuffer(buf, dtype=dtype, count=math.prod(shape), offset=header_len)
    # astype copies: the result is writable, native-endian, and owns its memory.
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


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
        raise ValueError(f"write_idx: array dtype must be uint8, int8, int16, int32, float32 or float64, "
                         f"found {a.dtype}")
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
