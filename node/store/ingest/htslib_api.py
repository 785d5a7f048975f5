"""htslib's C API through ctypes, for reading VCF/BCF records in blocks (`bcf_blocks`).

The library is the htslib pysam ships (`pysam.libchtslib`, which exports htslib's symbols):
no second copy of htslib, and the same parser cyvcf2 runs. Pointers cross as 64-bit
integers, so numba kernels can call `bcf_read` and `memmove` without Python objects.

The structures read here are htslib's public ones, stable since htslib 1.10:
`bcf1_t` (pos, rlen: int64; rid: int32; qual: float; n_info|n_allele<<16: uint32;
n_fmt|n_sample<<8: uint32; then the `shared` and `indiv` kstrings {l, m, s}) and
`bcf_hdr_t` (int32 n[3], then the dictionaries' `bcf_idpair_t *id[3]`, each pair a key
pointer and a value pointer). `tests/store/test_bcf_blocks.py` reads every record both
through these offsets and through cyvcf2 and compares them.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

__all__ = ["Htslib", "htslib"]

_P = ctypes.c_uint64  # a pointer, as an integer
# bcf_hdr_t: int32 n[3], padding, bcf_idpair_t *id[3]
HDR_N, HDR_ID = 0, 16
DT_ID, DT_CTG = 0, 1  # the dictionary of FILTER/INFO/FORMAT keys; of contigs
REC_SIZE = 80  # bcf1_t up to the end of the `indiv` kstring
REC_SHARED, REC_INDIV = 32, 56  # bcf1_t's `shared` and `indiv` kstrings: {l, m, s}


class Htslib:
    """The few htslib functions a block reader calls (ctypes function objects: numba
    kernels call `bcf_read` and `memmove` through them)."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        self.path = path
        self.hts_open = _fn(lib, "hts_open", [ctypes.c_char_p, ctypes.c_char_p], _P)
        self.hts_close = _fn(lib, "hts_close", [_P], ctypes.c_int)
        self.hts_set_threads = _fn(lib, "hts_set_threads", [_P, ctypes.c_int], ctypes.c_int)
        self.bcf_hdr_read = _fn(lib, "bcf_hdr_read", [_P], _P)
        self.bcf_hdr_destroy = _fn(lib, "bcf_hdr_destroy", [_P], None)
        self.bcf_init = _fn(lib, "bcf_init", [], _P)
        self.bcf_destroy = _fn(lib, "bcf_destroy", [_P], None)
        self.bcf_read = _fn(lib, "bcf_read", [_P, _P, _P], ctypes.c_int)
        libc = ctypes.CDLL(None)
        self.memmove = _fn(libc, "memmove", [_P, _P, _P], _P)

    @staticmethod
    def record_lengths(rec: int) -> tuple[int, int]:
        """The lengths of a record's `shared` and `indiv` bytes."""
        return (
            ctypes.c_uint64.from_address(rec + REC_SHARED).value,
            ctypes.c_uint64.from_address(rec + REC_INDIV).value,
        )

    def names(self, hdr: int, dictionary: int) -> list[str | None]:
        """The keys of one of the header's dictionaries, by id (None: an unused id)."""
        count = ctypes.c_int32.from_address(hdr + HDR_N + 4 * dictionary).value
        base = ctypes.c_uint64.from_address(hdr + HDR_ID + 8 * dictionary).value
        out: list[str | None] = []
        for i in range(count):
            key = ctypes.c_char_p.from_address(base + 16 * i).value
            out.append(None if key is None else key.decode("utf-8", "replace"))
        return out


def _fn(lib: ctypes.CDLL, name: str, args: list[type], result: type | None) -> Any:
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = args, result
    return fn


@functools.cache
def htslib() -> Htslib:
    """pysam's htslib, loaded once per process."""
    import pysam.libchtslib as chts

    return Htslib(str(Path(chts.__file__)))
