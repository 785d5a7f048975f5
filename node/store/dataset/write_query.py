"""TileDB write queries that let other Python threads run while TileDB works.

tiledb-py's own query object holds the GIL in `finalize`, and a global-order write does its
last tile's filtering (compression) and writes the fragment's metadata there: for a
fragment of a few thousand cells (one per-sample file's `data`) that is all of its work,
and the ingest's parsing thread stood still meanwhile (issue 18; docs/decisions.md "Write
queries through TileDB's C API"). This module drives the same write through TileDB's C API
with ctypes, which releases the GIL for every call, on the library tiledb-py itself loaded.

A column is a numpy array, a `Var` (data and byte offsets), a `Null` (every cell null), or
a `(values, validity)` pair; a nullable attribute given plain values is written all valid.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import tiledb

from node.store.dataset.write_buffers import Null, Var

__all__ = ["WriteQuery", "write_once"]

# tiledb_query_type_t and tiledb_layout_t (tiledb_enum.h); tiledb-py's enums are the same
_WRITE = 1
GLOBAL_ORDER = 2
UNORDERED = 3
_OK = 0

_P = ctypes.c_void_p
_U64P = ctypes.POINTER(ctypes.c_uint64)
_SIGNATURES: dict[str, list[object]] = {
    "tiledb_query_alloc": [_P, _P, ctypes.c_int, ctypes.POINTER(_P)],
    "tiledb_query_set_layout": [_P, _P, ctypes.c_int],
    "tiledb_query_set_data_buffer": [_P, _P, ctypes.c_char_p, _P, _U64P],
    "tiledb_query_set_offsets_buffer": [_P, _P, ctypes.c_char_p, _P, _U64P],
    "tiledb_query_set_validity_buffer": [_P, _P, ctypes.c_char_p, _P, _U64P],
    "tiledb_query_submit": [_P, _P],
    "tiledb_query_finalize": [_P, _P],
    "tiledb_query_get_fragment_num": [_P, _P, ctypes.POINTER(ctypes.c_uint32)],
    "tiledb_query_get_fragment_uri": [_P, _P, ctypes.c_uint64, ctypes.POINTER(ctypes.c_char_p)],
    "tiledb_query_free": [ctypes.POINTER(_P)],
    "tiledb_ctx_get_last_error": [_P, ctypes.POINTER(_P)],
    "tiledb_error_message": [_P, ctypes.POINTER(ctypes.c_char_p)],
    "tiledb_error_free": [ctypes.POINTER(_P)],
}


@functools.cache
def _lib() -> ctypes.CDLL:
    """The libtiledb that tiledb-py loaded (found among the process's mapped files): the
    handles its objects hand out belong to that copy."""
    mapped = Path("/proc/self/maps").read_text().splitlines()
    paths = {line.split(None, 5)[-1] for line in mapped if "libtiledb" in line}
    found = sorted(
        p for p in paths
        if Path(p).name.startswith("libtiledb") and ".so" in p and "cpython" not in p
    )  # tiledb-py's own extension module is named libtiledb.cpython-*.so
    if not found:
        raise tiledb.TileDBError("the TileDB library tiledb-py loaded was not found")
    lib = ctypes.CDLL(found[0])
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ctypes.c_int32
    return lib


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.argtypes, _capsule_pointer.restype = [ctypes.py_object, ctypes.c_char_p], _P


class WriteQuery:
    """One write query on an array opened for writing (which must stay open until
    `finalize` or `free`). Every call into TileDB runs without the GIL."""

    def __init__(self, array: tiledb.Array, layout: int) -> None:
        self._lib = _lib()
        self._array = array  # its handles must outlive the query
        self._ctx = _capsule_pointer(array.ctx.__capsule__(), b"ctx")
        handle = _capsule_pointer(array.array.__capsule__(), b"array")
        self._schema = array.schema
        self._query = _P()
        self._check(self._lib.tiledb_query_alloc(self._ctx, handle, _WRITE,
                                                 ctypes.byref(self._query)))
        self._keep: list[object] = []  # buffers and sizes: TileDB reads them at submit
        try:
            self._check(self._lib.tiledb_query_set_layout(self._ctx, self._query, layout))
        except BaseException:
            self.free()
            raise

    @property
    def schema(self) -> tiledb.ArraySchema:
        return self._schema

    def set_columns(self, columns: Mapping[str, object]) -> None:
        """The buffers of the next submission, one column per dimension and attribute."""
        self._keep = []
        for name, column in columns.items():
            self._set(name, column)

    def _set(self, name: str, column: object) -> None:
        key = name.encode()
        lib = self._lib
        if isinstance(column, Var):
            self._buffer(lib.tiledb_query_set_data_buffer, key, column.data)
            self._buffer(lib.tiledb_query_set_offsets_buffer, key, column.offsets)
            return
        validity = None
        if isinstance(column, Null):
            values = column.values
            validity = np.zeros(values.size, dtype=np.uint8)
        elif isinstance(column, tuple):
            values, validity = (np.ascontiguousarray(c) for c in column)
            validity = validity.astype(np.uint8, copy=False)
        else:
            values = np.ascontiguousarray(column)
            if self._schema.has_attr(name) and self._schema.attr(name).isnullable:
                validity = np.ones(values.size, dtype=np.uint8)
        self._buffer(lib.tiledb_query_set_data_buffer, key, values)
        if validity is not None:
            self._buffer(lib.tiledb_query_set_validity_buffer, key, validity)

    def _buffer(self, setter: Callable[..., int], key: bytes, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values)
        size = ctypes.c_uint64(values.nbytes)
        self._keep += [values, size]
        self._check(setter(self._ctx, self._query, key, values.ctypes.data, ctypes.byref(size)))

    def submit(self) -> None:
        self._check(self._lib.tiledb_query_submit(self._ctx, self._query))
        self._keep = []

    def finalize(self) -> str | None:
        """Commit: the fragment's URI, None when the query wrote nothing. Frees the query."""
        try:
            self._check(self._lib.tiledb_query_finalize(self._ctx, self._query))
            count = ctypes.c_uint32()
            self._check(self._lib.tiledb_query_get_fragment_num(
                self._ctx, self._query, ctypes.byref(count)))
            if count.value == 0:
                return None
            uri = ctypes.c_char_p()
            self._check(self._lib.tiledb_query_get_fragment_uri(
                self._ctx, self._query, 0, ctypes.byref(uri)))
            return (uri.value or b"").decode()
        finally:
            self.free()

    def free(self) -> None:
        """Release the query (nothing is committed if `finalize` was not called)."""
        if self._query:
            self._lib.tiledb_query_free(ctypes.byref(self._query))
            self._query = _P()
        self._keep = []

    def _check(self, rc: int) -> None:
        if rc == _OK:
            return
        err, text = _P(), ctypes.c_char_p()
        message = f"TileDB error {rc}"
        if self._lib.tiledb_ctx_get_last_error(self._ctx, ctypes.byref(err)) == _OK and err:
            if self._lib.tiledb_error_message(err, ctypes.byref(text)) == _OK and text.value:
                message = text.value.decode(errors="replace")
            self._lib.tiledb_error_free(ctypes.byref(err))
        raise tiledb.TileDBError(message)


def write_once(array: tiledb.Array, columns: Mapping[str, object], layout: int) -> str | None:
    """One submission of `columns` in `layout`, committed; the fragment's URI (None: none)."""
    query = WriteQuery(array, layout)
    try:
        query.set_columns(columns)
        query.submit()
    except BaseException:
        query.free()
        raise
    return query.finalize()
