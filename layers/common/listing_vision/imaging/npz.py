"""Reading `.npz` archives of plain arrays without Python's `ast` module.

`np.load` parses each array's header (a dict literal) with `ast.literal_eval`, and on CPython 3.11
building AST objects is not thread-safe: two threads parsing at once can fail with "SystemError: AST
constructor recursion depth mismatch" (cpython#106905), whoever the other thread is (seen here
against the test runner's own `ast.parse` while the local stack parsed a features record). Records
are parsed on many threads (the endpoint's server threads, Lambda's concurrent requests locally),
so the header is read here with a pattern that accepts exactly what `np.save` writes for a
C-ordered array of an allowed type, and the data is copied out of the archive as it stands.
"""

from __future__ import annotations

import re
import struct
import zipfile
from io import BytesIO

import numpy as np

MAGIC = b"\x93NUMPY"
# What np.save writes: "{'descr': '<f4', 'fortran_order': False, 'shape': (400, 2), }", space-padded.
_HEADER = re.compile(r"\{'descr': '([<|>][a-z]\d{1,2})', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \} *\n")


def read_npz(data: bytes, dtypes: frozenset[str], max_bytes: int) -> dict[str, np.ndarray]:
    """Each array of the archive by name (without `.npy`); ValueError for anything else: not a zip,
    more than `max_bytes` uncompressed, a member that is not a C-ordered array of one of `dtypes`."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(member.file_size for member in members) > max_bytes:
                raise ValueError("the archive is too large")  # a zip bomb, not ours
            return {member.filename.removesuffix(".npy"): _array(archive.read(member), dtypes) for member in members}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise ValueError(f"not an .npz archive: {error}") from error


def _array(npy: bytes, dtypes: frozenset[str]) -> np.ndarray:
    if not npy.startswith(MAGIC) or len(npy) < 10:
        raise ValueError("an archive member is not an .npy array")
    major = npy[6]
    if major == 1:
        (length,), start = struct.unpack("<H", npy[8:10]), 10
    elif major in (2, 3):
        (length,), start = struct.unpack("<I", npy[8:12]), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    header = _HEADER.fullmatch(npy[start : start + length].decode("latin-1"))
    if header is None or header.group(1) not in dtypes:
        raise ValueError("an archive member is not a plain array of an expected type")
    shape = tuple(int(side) for side in header.group(2).split(",") if side.strip())
    dtype = np.dtype(header.group(1))
    body = npy[start + length :]
    if len(body) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError("an archive member's data does not match its shape")
    return np.frombuffer(body, dtype).reshape(shape).copy()
