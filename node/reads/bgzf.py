"""BGZF (SAM v1 §4.1): block boundaries from block headers, virtual offsets, slices.

Block boundaries are found by reading each block's own header (BSIZE in the `BC` extra
subfield), so no `.gzi` is needed. A virtual offset is `coffset << 16 | uoffset`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from node.errors import InvalidInput

__all__ = [
    "BGZF_EOF",
    "Block",
    "block_at",
    "compress_block",
    "iter_blocks",
    "read_block",
    "split_voffset",
]

# SAM v1 §4.1.2: the empty block that ends every BGZF file.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_HEADER_LEN = 18
_MAX_BLOCK_DATA = 0xFF00  # keep compressed blocks under 64 KiB, as htslib does


@dataclass(frozen=True, slots=True)
class Block:
    """One BGZF block: compressed offset and total compressed size (BSIZE + 1)."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def split_voffset(voffset: int) -> tuple[int, int]:
    return voffset >> 16, voffset & 0xFFFF


def _parse_header(raw: bytes, offset: int) -> int:
    """The total size of the block whose first bytes are `raw` (SAM v1 §4.1)."""
    if len(raw) < _HEADER_LEN or raw[:4] != b"\x1f\x8b\x08\x04":
        raise InvalidInput(f"not a BGZF block at byte {offset}")
    xlen = struct.unpack_from("<H", raw, 10)[0]
    extra = raw[12 : 12 + xlen]
    pos = 0
    while pos + 4 <= len(extra):
        si1, si2, slen = extra[pos], extra[pos + 1], struct.unpack_from("<H", extra, pos + 2)[0]
        if si1 == 66 and si2 == 67 and slen == 2:
            return int(struct.unpack_from("<H", extra, pos + 4)[0]) + 1
        pos += 4 + slen
    raise InvalidInput(f"BGZF block at byte {offset} has no BSIZE")


def block_at(fh: BinaryIO, offset: int) -> Block:
    """The block starting at `offset`, from its header alone."""
    fh.seek(offset)
    head = fh.read(_HEADER_LEN + 64)
    return Block(offset, _parse_header(head, offset))


def read_block(fh: BinaryIO, offset: int) -> tuple[Block, bytes]:
    """The block at `offset` and its decompressed content."""
    fh.seek(offset)
    head = fh.read(_HEADER_LEN + 64)
    size = _parse_header(head, offset)
    fh.seek(offset)
    raw = fh.read(size)
    try:
        data = zlib.decompress(raw[_HEADER_LEN + _xlen_pad(raw) : -8], wbits=-15)
    except zlib.error as exc:
        raise InvalidInput(f"corrupt BGZF block at byte {offset}") from exc
    return Block(offset, size), data


def _xlen_pad(raw: bytes) -> int:
    # The fixed header is 12 bytes + XLEN; _HEADER_LEN assumes XLEN == 6.
    return int(struct.unpack_from("<H", raw, 10)[0]) - 6


def iter_blocks(fh: BinaryIO, offset: int = 0) -> Iterator[tuple[Block, bytes]]:
    """Blocks with their content from `offset` to the end of the file."""
    while True:
        fh.seek(offset)
        if not fh.read(1):
            return
        block, data = read_block(fh, offset)
        yield block, data
        offset = block.end


def compress_block(data: bytes) -> bytes:
    """`data` as one or more BGZF blocks (so a slice of a block can be served inline)."""
    out = bytearray()
    for pos in range(0, len(data), _MAX_BLOCK_DATA):
        chunk = data[pos : pos + _MAX_BLOCK_DATA]
        # Level 1: inline pieces are small and built per ticket, where latency counts.
        comp = zlib.compressobj(1, zlib.DEFLATED, -15)
        body = comp.compress(chunk) + comp.flush()
        bsize = _HEADER_LEN + len(body) + 8 - 1
        out += b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
        out += struct.pack("<H", bsize) + body
        out += struct.pack("<II", zlib.crc32(chunk), len(chunk))
    return bytes(out)
