"""What a ticket needs to know about a BGZF block, remembered per version of a file.

Cutting a chunk at a block boundary needs the block's compressed size (its header) and
where whole records start inside it (its content, decompressed: most of a ticket's cost).
Both are fixed for one version of a file, so they are kept with the file's layout; a ticket
whose blocks are all known is computed without reading or decompressing anything, and one
that needs at most a couple of blocks is cheap enough for the server's event loop.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from node.reads.bgzf import Block, read_block
from node.reads.storage import ByteSource, Opened

__all__ = ["BlockCache", "BlockFacts", "BlockMiss", "BlockSource", "records_reach"]

TextOrBinary = Literal["BAM", "BCF", "VCF", "CRAM"]


class BlockMiss(Exception):
    """A block is not in the cache and the caller's budget of block reads is spent."""


def records_reach(fmt: TextOrBinary, data: bytes, pos: int, target: int) -> bool:
    """Whether whole records laid end to end from `pos` end exactly at `target`."""
    if fmt == "VCF":  # text: only a block's end can be checked (does it end a line?)
        return target == len(data) and data.endswith(b"\n")
    while pos < target and pos + 8 <= len(data):
        pos = _next_record(fmt, data, pos)
    return pos == target


def _walk(fmt: TextOrBinary, data: bytes) -> list[int]:
    """Every position the walk from byte 0 visits, the last one where it stops."""
    visited, pos, n = [], 0, len(data)
    if fmt == "BAM":  # the hot case, kept to one unpack per record
        unpack = _U32.unpack_from
        while pos + 8 <= n:
            visited.append(pos)
            pos += 4 + unpack(data, pos)[0]
    else:
        while pos + 8 <= n:
            visited.append(pos)
            pos = _next_record(fmt, data, pos)
    visited.append(pos)
    return visited


_U32 = struct.Struct("<I")


def _next_record(fmt: TextOrBinary, data: bytes, pos: int) -> int:
    if fmt == "BAM":  # SAM v1 §4.2: block_size opens each record
        return pos + 4 + int(struct.unpack_from("<I", data, pos)[0])
    l_shared, l_indiv = struct.unpack_from("<II", data, pos)  # BCF 2.2 §6.3
    return int(pos + 8 + l_shared + l_indiv)


@dataclass(frozen=True, slots=True)
class BlockFacts:
    """A block's extent, uncompressed length, and the record starts reached from byte 0."""

    block: Block
    length: int
    chain: array[int]  # BAM/BCF: every position the walk from byte 0 visits (ascending)
    ends_line: bool  # VCF: the block ends with a newline

    @classmethod
    def of(cls, fmt: TextOrBinary, block: Block, data: bytes) -> BlockFacts:
        chain = array("I")
        if fmt != "VCF":
            chain.extend(_walk(fmt, data))
        return cls(block, len(data), chain, data.endswith(b"\n"))

    def reaches(self, fmt: TextOrBinary, pos: int, target: int) -> bool | None:
        """`records_reach` from the facts alone; None when `pos` is not on the chain."""
        if fmt == "VCF":
            return target == self.length and self.ends_line
        if not self._on_chain(pos):
            return None
        return target >= pos and self._on_chain(target)

    def _on_chain(self, pos: int) -> bool:
        lo, hi = 0, len(self.chain)
        while lo < hi:  # bisect (array has no bisect support before Python 3.12's key=)
            mid = (lo + hi) // 2
            if self.chain[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo < len(self.chain) and self.chain[lo] == pos


class BlockCache:
    """Facts of the most recently used blocks of one file version (thread-safe), within a
    memory budget: a BAM block's facts take about 1 KB, so the default holds ~4,000."""

    def __init__(self, *, max_bytes: int = 4 << 20) -> None:
        self._facts: OrderedDict[int, BlockFacts] = OrderedDict()
        self._max, self._bytes = max_bytes, 0
        self._lock = threading.Lock()

    def get(self, offset: int) -> BlockFacts | None:
        with self._lock:
            facts = self._facts.get(offset)
            if facts is not None:
                self._facts.move_to_end(offset)
            return facts

    def put(self, offset: int, facts: BlockFacts) -> None:
        with self._lock:
            old = self._facts.pop(offset, None)
            self._bytes += _size(facts) - (_size(old) if old is not None else 0)
            self._facts[offset] = facts
            while self._bytes > self._max and len(self._facts) > 1:
                self._bytes -= _size(self._facts.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._facts)


def _size(facts: BlockFacts) -> int:
    return 128 + facts.chain.itemsize * len(facts.chain)


class BlockSource:
    """A file's blocks for one ticket: facts from the cache, the file (at the layout's
    version) read only on a miss, at most `max_reads` times (None: no limit); past that,
    `BlockMiss`."""

    def __init__(
        self,
        source: ByteSource,
        version: str,
        fmt: TextOrBinary,
        cache: BlockCache,
        *,
        max_reads: int | None,
    ) -> None:
        self.source, self.version, self.format = source, version, fmt
        self._cache, self._budget = cache, max_reads
        self._file: Opened | None = None
        self._data: dict[int, bytes] = {}  # decompressed during this ticket only

    def __enter__(self) -> BlockSource:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def facts(self, offset: int) -> BlockFacts:
        facts = self._cache.get(offset)
        if facts is None:
            block, data = self._read(offset)
            facts = BlockFacts.of(self.format, block, data)
            self._cache.put(offset, facts)
        return facts

    def data(self, offset: int) -> bytes:
        return self._data.get(offset) or self._read(offset)[1]

    def reaches(self, offset: int, pos: int, target: int) -> bool:
        known = self.facts(offset).reaches(self.format, pos, target)
        if known is not None:
            return known
        return records_reach(self.format, self.data(offset), pos, target)

    def _read(self, offset: int) -> tuple[Block, bytes]:
        if self._budget is not None:
            if self._budget <= 0:
                raise BlockMiss(offset)
            self._budget -= 1
        if self._file is None:
            self._file = self.source.open(self.version or None)
        block, data = read_block(self._file.fh, offset)
        self._data[offset] = data
        return block, data
