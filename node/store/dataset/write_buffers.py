"""Raw column buffers for TileDB writes (variable-length cells without a Python object each).

tiledb-py's `A[coords] = values` goes through numpy "S" arrays, which drop the trailing NUL
TileDB-VCF keeps in `alleles`/`id`; writing the buffers directly keeps bytes exact and
avoids one Python object per cell. `layout` re-exports these names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import tiledb

__all__ = ["Null", "Var", "VarChunk", "var_of_chunks", "write_columns"]


class Var:
    """A variable-length column: concatenated values and byte offsets."""

    __slots__ = ("data", "offsets")

    def __init__(self, values: Sequence[bytes], dtype: str = "u1") -> None:
        lengths = np.fromiter(map(len, values), dtype=np.uint64, count=len(values))
        self.offsets = np.zeros(len(values), dtype=np.uint64)
        if len(values) > 1:
            np.cumsum(lengths[:-1], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(values), dtype=dtype) if values else np.zeros(1, dtype)

    @classmethod
    def text(cls, values: Sequence[str]) -> Var:
        joined = "".join(values)
        data = joined.encode()
        if len(data) != len(joined):  # non-ASCII: lengths in bytes differ from characters
            return cls([v.encode() for v in values])
        out = cls([])
        lengths = np.fromiter(map(len, values), dtype=np.uint64, count=len(values))
        out.offsets = np.zeros(len(values), dtype=np.uint64)
        if len(values) > 1:
            np.cumsum(lengths[:-1], out=out.offsets[1:])
        out.data = np.frombuffer(data, dtype="u1") if values else out.data
        return out


class VarChunk:
    """Several cells of one variable-length column: their bytes joined, and each length."""

    __slots__ = ("data", "lengths")

    def __init__(self, data: bytes, lengths: np.ndarray) -> None:
        self.data, self.lengths = data, lengths

    @classmethod
    def of(cls, values: Sequence[bytes]) -> VarChunk:
        if len(values) == 1:  # one-sample records: no numpy call per cell
            return cls(values[0], _one_length(len(values[0])))
        lengths = np.fromiter(map(len, values), dtype=np.uint64, count=len(values))
        return cls(b"".join(values), lengths)

    @classmethod
    def repeat(cls, value: bytes, n: int) -> VarChunk:
        """`n` cells holding `value` (a site field copied to every sample's cell)."""
        return cls(value * n, np.full(n, len(value), dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, order: np.ndarray) -> VarChunk:
        """The cells in `order` (indexes into this chunk)."""
        lengths = self.lengths
        if lengths.size and (lengths == lengths[0]).all():
            width = int(lengths[0])
            if width == 0:
                return self
            rows = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, width)
            return VarChunk(rows[order].tobytes(), lengths)
        cells = self.cells()
        return VarChunk.of([cells[i] for i in order.tolist()])

    def cells(self) -> list[bytes]:
        ends = np.cumsum(self.lengths).tolist()
        starts = [0, *ends[:-1]]
        return [self.data[a:b] for a, b in zip(starts, ends, strict=True)]


@functools.lru_cache(maxsize=1 << 12)
def _one_length(size: int) -> np.ndarray:
    """The lengths of one cell of `size` bytes, shared (read-only) between chunks."""
    lengths = np.array([size], dtype=np.uint64)
    lengths.setflags(write=False)
    return lengths


def var_of_chunks(chunks: Sequence[VarChunk], dtype: str = "u1") -> Var:
    """One column from chunks, without a Python object per cell."""
    out = Var([], dtype)
    lengths = np.concatenate([c.lengths for c in chunks]) if chunks else np.zeros(0, np.uint64)
    out.offsets = np.zeros(len(lengths), dtype=np.uint64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1], out=out.offsets[1:])
    data = b"".join(c.data for c in chunks)
    if data:
        out.data = np.frombuffer(data, dtype=dtype)
    return out


class Null:
    """A column of nulls for a nullable attribute (TileDB requires every attribute)."""

    __slots__ = ("values",)

    def __init__(self, size: int, dtype: type[np.generic]) -> None:
        self.values = np.zeros(size, dtype=dtype)


def write_columns(
    array: tiledb.Array, columns: Mapping[str, object], *, ordered: bool = False
) -> str | None:
    """One sparse write of `columns` (dims and attrs); returns the fragment URI.

    `ordered`: the caller knows the cells are in the array's global order (no sort).
    """
    from node.store.dataset import write_query  # imports this module
    from node.store.ingest.global_order import sorted_columns  # imports this module

    layout = write_query.UNORDERED
    if array.schema.sparse and array.schema.allows_duplicates:
        if not ordered:
            columns = sorted_columns(array.schema, columns)
        layout = write_query.GLOBAL_ORDER
    return write_query.write_once(array, columns, layout)
