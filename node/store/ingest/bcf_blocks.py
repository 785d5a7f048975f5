"""VCF/BCF records read and decoded a block at a time (issue 18: the per-record cost).

`BlockReader` opens a file through htslib (`htslib_api`), reads records into raw BCF bytes
and decodes them (`bcf_kernels`, numba, without the GIL) into `Block`s: per record the
position, length, contig id and QUAL, the alleles and ID as text, the FILTER ids, the
`info` blob, each sample's `fmt` blob and the genotypes, as arrays. `VcfInput` turns them
into the `ParsedRecord`s its cyvcf2 parser makes, value for value
(tests/store/test_bcf_blocks.py reads every test file both ways). A record the decoder
does not reproduce exactly ends the blocks (`BlockReader.stopped`), and `VcfInput` reads
on from that record through cyvcf2; so does an htslib error, so the error reported is the
cyvcf2 parser's, with its line.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from node.store.dataset import layout
from node.store.ingest import bcf_kernels as kernels
from node.store.ingest.htslib_api import DT_CTG, DT_ID, htslib

__all__ = ["Block", "BlockReader"]

_F32_MISSING = 0x7F800001


@dataclass(slots=True)
class Block:
    """Decoded records of a block (see `bcf_kernels.decode` for the arrays), by column:
    `columns` holds, each as a list over the records, the position (0-based), rlen,
    contig id, the alleles' start and end and the ID's in `txt`, the FILTER ids' start and
    end in `flt`, the info blob's in `info`, the fmt blobs' in `fmt`, the genotypes' start
    in `gtv` and the ploidy (0: no GT)."""

    columns: list[list[int]]
    qual: list[float]  # NaN: missing
    txt: bytes
    flt: list[int]
    info: bytes
    fmt: bytes
    fmt_len: np.ndarray  # (n, samples) uint64
    gtv: list[int]


class BlockReader:
    """The records of one file, in blocks; `stopped` after the blocks end: None at the end
    of the file, else why the rest must be read another way."""

    BLOCK = 4096  # records per block

    def __init__(
        self,
        path: str,
        *,
        threads: int,
        samples: int,
        info_types: Mapping[str, int],
        format_types: Mapping[str, int],
    ) -> None:
        _prepare()
        self._lib = lib = htslib()
        self._samples = samples
        self._info_types, self._format_types = info_types, format_types
        self.stopped: str | None = None
        self._fp = lib.hts_open(path.encode(), b"r")
        if not self._fp:
            raise OSError(f"htslib cannot open {path}")
        self._hdr = self._rec = 0
        try:
            if threads > 1:
                lib.hts_set_threads(self._fp, threads)
            self._hdr = lib.bcf_hdr_read(self._fp)
            if not self._hdr:
                raise OSError(f"htslib cannot read the header of {path}")
            self._rec = lib.bcf_init()
        except BaseException:
            self.close()
            raise
        self.refresh()
        self._flag = np.frombuffer(layout.FLAG_VALUE, np.uint8)
        self._fixed = np.empty((self.BLOCK, 6), np.int64)
        self._shared = np.empty(1 << 20, np.uint8)
        self._indiv = np.empty(1 << 20, np.uint8)
        self._soff = np.zeros(self.BLOCK + 1, np.int64)
        self._ioff = np.zeros(self.BLOCK + 1, np.int64)
        self._out = _Outputs(self.BLOCK, samples)

    def close(self) -> None:
        lib = self._lib
        if self._rec:
            lib.bcf_destroy(self._rec)
            self._rec = 0
        if self._hdr:
            lib.bcf_hdr_destroy(self._hdr)
            self._hdr = 0
        if self._fp:
            lib.hts_close(self._fp)
            self._fp = 0

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """The header's key and contig names by id (htslib adds keys and contigs a VCF's
        header lacks as it reads records: called again when a record names a new one)."""
        self.keys = self._lib.names(self._hdr, DT_ID)
        self.contigs = self._lib.names(self._hdr, DT_CTG)
        names = [(k.encode() + b"\0") if k is not None else b"" for k in self.keys]
        self._prefix = np.frombuffer(b"".join(names) or b"\0", np.uint8)
        self._poff = np.zeros(len(names) + 1, np.int64)
        np.cumsum([len(x) for x in names], out=self._poff[1:])
        info, fmt = self._info_types, self._format_types
        keys = [k or "" for k in self.keys]
        self._info_ht = np.array([info.get(k, layout.HT_STR) for k in keys], np.int32)
        self._fmt_ht = np.array([fmt.get(k, layout.HT_STR) for k in keys], np.int32)
        self._gt_key = keys.index("GT") if "GT" in keys else -1

    def __iter__(self) -> Iterator[Block]:
        pending = False
        while True:
            n, status = self._read(pending)
            pending = status == 1
            if n == 0 and pending:  # one record larger than the buffers
                shared, indiv = self._lib.record_lengths(self._rec)
                self._shared = np.empty(max(2 * self._shared.size, shared), np.uint8)
                self._indiv = np.empty(max(2 * self._indiv.size, indiv), np.uint8)
                continue
            if n:
                block, stop = self._decode(n)
                if block is not None:
                    yield block
                if stop is not None:
                    self.stopped = stop
                    return
            if status < -1:
                self.stopped = f"htslib error {status}"
                return
            if status == -1:
                return

    def _read(self, pending: bool) -> tuple[int, int]:
        """`bcf_kernels.read_records` into this reader's arrays."""
        return kernels.read_records(  # type: ignore[no-any-return]
            self._fp, self._hdr, self._rec, pending,
            self._fixed, self._shared, self._soff, self._indiv, self._ioff,
        )  # fmt: skip

    def _decode(self, n: int) -> tuple[Block | None, str | None]:
        """Records [0, n) decoded (None: not the first), and why the blocks end there."""
        out, refreshed = self._out, False
        while True:
            done, status = kernels.decode(
                n, self._fixed, self._shared, self._soff, self._indiv, self._ioff,
                self._samples, self._prefix, self._poff, self._info_ht, self._fmt_ht,
                self._gt_key, self._flag, out.txt, out.rec_txt, out.flt, out.rec_flt, out.info,
                out.rec_info, out.fmt, out.fmt_len, out.rec_fmt, out.gtv, out.rec_gt,
            )  # fmt: skip
            if status == kernels.FULL:  # larger outputs, the whole block again
                out.grow()
                continue
            if status == kernels.NEW_KEY and not refreshed:
                self.refresh()  # keys htslib added while reading the block
                refreshed = True
                continue
            stop = None
            if status == kernels.NEW_KEY:
                stop = "a key the header does not name"
            elif status == kernels.UNSUPPORTED:
                stop = "a value the block decoder does not reproduce"
            return (self._block(done) if done else None), stop

    def _block(self, n: int) -> Block:
        """Records [0, n) (n > 0) as `Block` columns."""
        out, fixed = self._out, self._fixed[:n]
        bits = fixed[:, 3].astype(np.uint32)
        qual = bits.view(np.float32).astype(np.float64)
        qual[bits == _F32_MISSING] = np.nan
        fmt_end = out.rec_fmt[:n] + out.fmt_len[:n].sum(axis=1, keepdims=True)
        parts = (out.rec_txt, out.rec_flt, out.rec_info, out.rec_fmt, fmt_end, out.rec_gt)
        columns = np.concatenate([fixed[:, :3], *(p[:n] for p in parts)], axis=1)
        last = n - 1
        start, ploidy = out.rec_gt[last]
        return Block(
            columns=columns.T.tolist(),
            qual=qual.tolist(),
            txt=out.txt[: out.rec_txt[last, 1]].tobytes(),
            flt=out.flt[: out.rec_flt[last, 1]].tolist(),
            info=out.info[: out.rec_info[last, 1]].tobytes(),
            fmt=out.fmt[: fmt_end[last, 0]].tobytes(),
            fmt_len=out.fmt_len[:n].astype(np.uint64),
            gtv=out.gtv[: start + (out.samples * (ploidy + 1) if ploidy else 0)].tolist(),
        )


@functools.cache
def _prepare() -> None:
    """Compile the kernels, or load them from numba's cache, once per process, before a
    reader opens a file: a failure here (numba unable to compile) leaves the file to the
    cyvcf2 parser instead of failing the ingest half-way."""
    rec = htslib().bcf_init()
    try:
        fixed = np.zeros((1, 6), np.int64)
        buffer, offsets = np.empty(1, np.uint8), np.zeros(2, np.int64)
        kernels.read_records(0, 0, rec, True, fixed, buffer, offsets, buffer, offsets)
    finally:
        htslib().bcf_destroy(rec)
    out, empty = _Outputs(1, 1), np.zeros(1, np.int32)
    names = np.frombuffer(b"\0", np.uint8)  # read-only, as the readers' key names and flag
    kernels.decode(
        0, fixed, buffer, offsets, buffer, offsets, 1, names, offsets, empty, empty, -1,
        names, out.txt, out.rec_txt, out.flt, out.rec_flt, out.info, out.rec_info, out.fmt,
        out.fmt_len, out.rec_fmt, out.gtv, out.rec_gt,
    )  # fmt: skip


class _Outputs:
    """`decode`'s output arrays, grown when a block does not fit."""

    def __init__(self, block: int, samples: int) -> None:
        self.samples = samples
        self.rec_txt = np.empty((block, 4), np.int64)
        self.rec_flt = np.empty((block, 2), np.int64)
        self.rec_info = np.empty((block, 2), np.int64)
        self.rec_fmt = np.empty((block, 1), np.int64)
        self.fmt_len = np.zeros((block, max(samples, 1)), np.int64)
        self.rec_gt = np.empty((block, 2), np.int64)
        self._size = 1 << 20
        self._alloc()

    def _alloc(self) -> None:
        size = self._size
        self.txt = np.empty(size, np.uint8)
        self.flt = np.empty(size // 4, np.int32)
        self.info = np.empty(4 * size, np.uint8)
        self.fmt = np.empty(4 * size, np.uint8)
        self.gtv = np.empty(size, np.int32)

    def grow(self) -> None:
        self._size *= 2
        self._alloc()


def warm() -> None:
    """Compile the kernels into numba's cache (`NUMBA_CACHE_DIR`, else beside this
    package): an image built with this step starts ingests without the compilation."""
    _prepare()


if __name__ == "__main__":
    warm()
