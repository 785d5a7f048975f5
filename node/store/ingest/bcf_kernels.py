# mypy: disable-error-code="no-untyped-def,call-overload"
# (numba types the kernels; their arguments are numpy arrays and integers)
"""numba kernels of the block reader (`bcf_blocks`): records read by htslib into raw BCF
bytes, then decoded into the values a TileDB-VCF cell stores, a block at a time.

`read_records` calls htslib's `bcf_read` (which parses VCF text or reads BCF) and copies
each record's fixed fields and its `shared` and `indiv` bytes (BCF's typed-value encoding,
VCFv4.3 section 6.3) into arrays. `decode` walks those bytes and writes, per record: the
alleles joined by commas and the ID as text, the FILTER ids, TileDB-VCF's `info` blob, each
sample's `fmt` blob (GT excluded) and the genotypes as cyvcf2's `genotype.array()` rows
(alleles, -1 missing, -2 past the ploidy, then the phase of the second allele). A record
whose values this decoder does not reproduce exactly as the cyvcf2 parser of `vcfio` would
(a type its header does not declare, a value past the ASCII range, a NaN other than
htslib's missing value, ...) stops the block with `UNSUPPORTED` at that record; the caller
reads it and the rest of the file through cyvcf2. Both kernels release the GIL.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types

from node.store.ingest.htslib_api import REC_INDIV, REC_SHARED, REC_SIZE, htslib

__all__ = ["DONE", "FULL", "NEW_KEY", "UNSUPPORTED", "decode", "read_records"]

# The kernels call htslib by a name of their own, bound to the address ctypes found: no
# library is opened with RTLD_GLOBAL, whose symbols would take the place of those of any
# other htslib the process loads later (cyvcf2's, Debian's libhts).
llvm.add_symbol("fednode_bcf_read", ctypes.cast(htslib().bcf_read, ctypes.c_void_p).value)
_U64 = types.uint64
_bcf_read = types.ExternalFunction("fednode_bcf_read", types.int32(_U64, _U64, _U64))
_memmove = types.ExternalFunction("memmove", _U64(_U64, _U64, _U64))

_SHARED_L, _INDIV_L = REC_SHARED // 8, REC_INDIV // 8  # int64 words of bcf1_t

# decode's outcomes
DONE, FULL, UNSUPPORTED, NEW_KEY = 0, 1, 2, 3
_HT_FLAG, _HT_INT, _HT_REAL, _HT_STR = 0, 1, 2, 3  # layout.HT_*
_I32_MISSING, _I32_VECTOR_END = -(2**31), -(2**31) + 1
_F32_MISSING, _F32_VECTOR_END, _F32_NAN = 0x7F800001, 0x7F800002, 0x7FC00000


@njit(nogil=True, cache=True)
def read_records(fp, hdr, rec, pending, fixed, shared, soff, indiv, ioff):
    """Read records until `fixed` (rows: pos, rlen, rid, qual bits, n_info | n_allele <<
    16, n_fmt | n_sample << 8) or a byte buffer is full. `pending`: the record `rec` holds
    was read by the last call and did not fit. Returns (records, status): status 0 the
    arrays are full, 1 the next record is pending in `rec`, -1 end of file, < -1 htslib's
    error."""
    scratch = np.empty(REC_SIZE // 8, np.int64)
    n, sl, il = 0, 0, 0
    soff[0] = 0
    ioff[0] = 0
    while n < fixed.shape[0]:
        if pending:
            pending = False
        else:
            ret = _bcf_read(fp, hdr, rec)
            if ret != 0:
                return n, min(ret, -1)
        _memmove(scratch.ctypes.data, rec, REC_SIZE)
        ls, ps = scratch[_SHARED_L], scratch[_SHARED_L + 2]  # kstring {l, m, s}
        li, pi = scratch[_INDIV_L], scratch[_INDIV_L + 2]
        if sl + ls > shared.size or il + li > indiv.size:
            return n, 1
        fixed[n, 0] = scratch[0]
        fixed[n, 1] = scratch[1]
        word = scratch[2]
        rid = word & 0xFFFFFFFF
        fixed[n, 2] = rid - (1 << 32) if rid >= (1 << 31) else rid
        fixed[n, 3] = (word >> 32) & 0xFFFFFFFF
        word = scratch[3]
        fixed[n, 4] = word & 0xFFFFFFFF
        fixed[n, 5] = (word >> 32) & 0xFFFFFFFF
        if ls:
            _memmove(shared.ctypes.data + sl, ps, ls)
        if li:
            _memmove(indiv.ctypes.data + il, pi, li)
        sl += ls
        il += li
        soff[n + 1] = sl
        ioff[n + 1] = il
        n += 1
    return n, 0


@njit(inline="always")
def _size(t):
    if t == 1 or t == 7:
        return 1
    if t == 2:
        return 2
    if t == 3 or t == 5:
        return 4
    return 0


@njit(inline="always")
def _int(buf, p, t):
    """The signed integer of BCF type `t` (1, 2, 3) at `p`."""
    if t == 1:
        v = np.int64(buf[p])
        return v - 256 if v >= 128 else v
    if t == 2:
        v = np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
        return v - 65536 if v >= 32768 else v
    v = (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )
    return v - (1 << 32) if v >= (1 << 31) else v


@njit(inline="always")
def _u32(buf, p):
    return (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )


@njit(inline="always")
def _missing(v, t):
    """0 a value, 1 htslib's missing value of type `t`, 2 its vector end."""
    if t == 1:
        low = -128
    elif t == 2:
        low = -32768
    else:
        low = _I32_MISSING
    if v == low:
        return 1
    if v == low + 1:
        return 2
    return 0


@njit(inline="always")
def _typed(buf, p, end, times):
    """A typed value's descriptor at `p`: (type, count, where its values start); count -1
    when the descriptor, or `times` x count values of its type, would pass `end` (the
    record's last byte: a malformed record is never read past), or the type is not BCF's."""
    if p >= end:
        return 0, -1, p
    b = np.int64(buf[p])
    t, c = b & 15, b >> 4
    p += 1
    if c == 15:
        if p >= end:
            return 0, -1, p
        tt = np.int64(buf[p]) & 15
        if not (tt == 1 or tt == 2 or tt == 3) or p + 1 + _size(tt) > end:
            return 0, -1, p
        c = _int(buf, p + 1, tt)
        p += 1 + _size(tt)
    if not (t == 0 or t == 1 or t == 2 or t == 3 or t == 5 or t == 7) or c < 0:
        return 0, -1, p
    if p + times * c * _size(t) > end:
        return 0, -1, p
    return t, c, p


@njit(inline="always")
def _key(buf, p, end, poff):
    """A key id (a typed int) at `p`: (id, where its value starts, DONE, or UNSUPPORTED
    when it is no key, or NEW_KEY when `poff` names no key of that id)."""
    t, c, p = _typed(buf, p, end, 1)
    if c != 1 or not (t == 1 or t == 2 or t == 3):
        return 0, p, UNSUPPORTED
    k = _int(buf, p, t)
    p += _size(t)
    if k < 0 or k >= poff.size - 1 or poff[k + 1] == poff[k]:
        return k, p, NEW_KEY
    return k, p, DONE


@njit(inline="always")
def _put32(out, q, v):
    out[q] = v & 0xFF
    out[q + 1] = (v >> 8) & 0xFF
    out[q + 2] = (v >> 16) & 0xFF
    out[q + 3] = (v >> 24) & 0xFF
    return q + 4


@njit(inline="always")
def _text(buf, p, c):
    """The length of the C string of at most `c` chars at `p`, or -1 past ASCII."""
    n = 0
    while n < c:
        b = buf[p + n]
        if b == 0:
            break
        if b >= 128:
            return -1
        n += 1
    return n


@njit(inline="always")
def _prefix(out, q, prefix, poff, k):
    for j in range(poff[k], poff[k + 1]):
        out[q] = prefix[j]
        q += 1
    return q


@njit(nogil=True, cache=True)
def decode(
    n, fixed, shared, soff, indiv, ioff, n_samples,
    prefix, poff, info_ht, fmt_ht, gt_key, flag,
    txt, rec_txt, flt, rec_flt, info, rec_info, fmt, fmt_len, rec_fmt, gtv, rec_gt,
):  # fmt: skip
    """Decode records [0, n). Keys: `prefix[poff[k]:poff[k + 1]]` is key id k's name and
    NUL (empty: an id the caller does not know), `info_ht`/`fmt_ht` its htslib type as
    INFO/FORMAT (-1: not one), `gt_key` GT's id, `flag` a Flag's value bytes
    (`layout.FLAG_VALUE`). Per record i: `rec_txt[i]` = alleles'
    start and end, ID's start and end in `txt`; `rec_flt[i]` FILTER ids' start and end in
    `flt`; `rec_info[i]` the info blob's in `info`; `rec_fmt[i]` the record's fmt blobs'
    start in `fmt` (each sample's length in `fmt_len[i]`); `rec_gt[i]` = start in `gtv`,
    ploidy (0: no GT). Returns (records decoded, DONE | FULL | UNSUPPORTED | NEW_KEY)."""
    tq = fq = iq = mq = gq = 0
    entries = np.empty((256, 4), np.int64)
    longest = 0  # the longest key and NUL
    for k in range(poff.size - 1):
        longest = max(longest, poff[k + 1] - poff[k])
    for i in range(n):
        s0, s1 = soff[i], soff[i + 1]
        i0, i1 = ioff[i], ioff[i + 1]
        n_info = fixed[i, 4] & 0xFFFF
        n_allele = fixed[i, 4] >> 16
        n_fmt = fixed[i, 5] & 0xFF
        if (fixed[i, 5] >> 8) != n_samples and n_fmt:
            return i, UNSUPPORTED
        slen, ilen = s1 - s0, i1 - i0
        if (
            tq + 2 * slen + 8 > txt.size
            or fq + slen > flt.size
            or iq + 4 + n_info * (longest + 12 + flag.size) + 4 * slen > info.size
            or mq + n_samples * (4 + n_fmt * (longest + 12)) + 4 * ilen > fmt.size
            or gq + n_samples * (ilen + 1) > gtv.size
        ):
            return i, FULL
        p = s0
        # ID
        t, c, p = _typed(shared, p, s1, 1)
        if c < 0 or (t != 7 and c):
            return i, UNSUPPORTED
        length = _text(shared, p, c)
        if length < 0:
            return i, UNSUPPORTED
        rec_txt[i, 2] = tq
        if length == 0 or (length == 1 and shared[p] == 46):  # "." or none
            txt[tq] = 46
            tq += 1
        else:
            for j in range(length):
                txt[tq + j] = shared[p + j]
            tq += length
        rec_txt[i, 3] = tq
        p += c * _size(t)
        # alleles: REF,ALT,...
        rec_txt[i, 0] = tq
        for a in range(n_allele):
            t, c, p = _typed(shared, p, s1, 1)
            if c < 0 or (t != 7 and c):
                return i, UNSUPPORTED
            length = _text(shared, p, c)
            if length < 0 or (a == 0 and length == 0):
                return i, UNSUPPORTED
            if a:
                txt[tq] = 44
                tq += 1
            for j in range(length):
                txt[tq + j] = shared[p + j]
            tq += length
            p += c * _size(t)
        rec_txt[i, 1] = tq
        if n_allele == 0:
            return i, UNSUPPORTED
        # FILTER
        t, c, p = _typed(shared, p, s1, 1)
        if c < 0 or (c and not (t == 1 or t == 2 or t == 3)):
            return i, UNSUPPORTED
        rec_flt[i, 0] = fq
        for j in range(c):
            flt[fq] = _int(shared, p + j * _size(t), t)
            fq += 1
        rec_flt[i, 1] = fq
        p += c * _size(t)
        # INFO: TileDB-VCF's blob (count; then key NUL, type, count, values per key)
        rec_info[i, 0] = iq
        iq = _put32(info, iq, n_info)
        for _ in range(n_info):
            k, p, status = _key(shared, p, s1, poff)
            if status != DONE:
                return i, status
            ht = info_ht[k]
            t, c, p = _typed(shared, p, s1, 1)
            if c < 0:
                return i, UNSUPPORTED
            size = _size(t)
            iq = _prefix(info, iq, prefix, poff, k)
            if ht == _HT_FLAG:
                iq = _put32(info, iq, _HT_FLAG)
                iq = _put32(info, iq, 1)
                for j in range(flag.size):
                    info[iq + j] = flag[j]
                iq += flag.size
            elif ht == _HT_INT:
                if c < 1 or not (t == 1 or t == 2 or t == 3):
                    return i, UNSUPPORTED
                iq = _put32(info, iq, _HT_INT)
                iq = _put32(info, iq, c)
                for j in range(c):
                    v = _int(shared, p + j * size, t)
                    m = _missing(v, t)
                    if m == 2:
                        return i, UNSUPPORTED
                    iq = _put32(info, iq, _I32_MISSING if m == 1 else v)
            elif ht == _HT_REAL:
                if c < 1 or t != 5:
                    return i, UNSUPPORTED
                iq = _put32(info, iq, _HT_REAL)
                iq = _put32(info, iq, c)
                for j in range(c):
                    bits = _u32(shared, p + 4 * j)
                    if (
                        (bits & 0x7F800000) == 0x7F800000
                        and (bits & 0x7FFFFF)
                        and (bits != _F32_MISSING and bits != _F32_NAN)
                    ):
                        return i, UNSUPPORTED  # vector end, or a NaN Python may rewrite
                    iq = _put32(info, iq, bits)
            elif ht == _HT_STR:
                if t != 7 or c < 1:
                    return i, UNSUPPORTED
                length = _text(shared, p, c)
                if length < 0:
                    return i, UNSUPPORTED
                iq = _put32(info, iq, _HT_STR)
                iq = _put32(info, iq, length)
                for j in range(length):
                    info[iq + j] = shared[p + j]
                iq += length
            else:
                return i, UNSUPPORTED
            p += c * size
        rec_info[i, 1] = iq
        # FORMAT: first where each key's values are, then each sample's blob
        rec_fmt[i, 0] = mq
        rec_gt[i, 0] = gq
        rec_gt[i, 1] = 0
        if n_samples == 0:
            continue
        p = i0
        others = 0
        for e in range(n_fmt):
            k, p, status = _key(indiv, p, i1, poff)
            if status != DONE:
                return i, status
            t, c, p = _typed(indiv, p, i1, n_samples)
            if c < 0:
                return i, UNSUPPORTED
            entries[e, 0], entries[e, 1], entries[e, 2], entries[e, 3] = k, t, c, p
            p += n_samples * c * _size(t)
            if k == gt_key:
                if not (t == 1 or t == 2 or t == 3) or c < 1:
                    return i, UNSUPPORTED
                size = _size(t)
                rec_gt[i, 1] = c
                base = entries[e, 3]
                for s in range(n_samples):
                    at = base + s * c * size
                    for a in range(c):
                        v = _int(indiv, at + a * size, t)
                        m = _missing(v, t)
                        if m == 1 or (m == 0 and v < 0):
                            return i, UNSUPPORTED
                        if m == 2:
                            if a == 1:
                                return i, UNSUPPORTED  # the phase cyvcf2 reads there
                            gtv[gq] = -2
                        else:
                            gtv[gq] = (v >> 1) - 1
                        gq += 1
                    phase = 0
                    if c > 1:
                        phase = _int(indiv, at + size, t) & 1
                    gtv[gq] = phase
                    gq += 1
            else:
                others += 1
                ht = fmt_ht[k]
                if ht == _HT_INT:
                    if not (t == 1 or t == 2 or t == 3):
                        return i, UNSUPPORTED
                elif ht == _HT_REAL:
                    if t != 5:
                        return i, UNSUPPORTED
                elif ht == _HT_STR:
                    if t != 7:
                        return i, UNSUPPORTED
                else:
                    return i, UNSUPPORTED
        for s in range(n_samples):
            start = mq
            mq = _put32(fmt, mq, others)
            for e in range(n_fmt):
                k, t, c, base = entries[e, 0], entries[e, 1], entries[e, 2], entries[e, 3]
                if k == gt_key:
                    continue
                ht = fmt_ht[k]
                size = _size(t)
                at = base + s * c * size
                mq = _prefix(fmt, mq, prefix, poff, k)
                mq = _put32(fmt, mq, ht)
                if ht == _HT_INT:
                    count_at = mq
                    mq += 4
                    count = 0
                    for j in range(c):
                        v = _int(indiv, at + j * size, t)
                        m = _missing(v, t)
                        if m == 2:
                            continue
                        mq = _put32(fmt, mq, _I32_MISSING if m == 1 else v)
                        count += 1
                    _put32(fmt, count_at, count)
                elif ht == _HT_REAL:
                    mq = _put32(fmt, mq, c)
                    for j in range(4 * c):
                        fmt[mq + j] = indiv[at + j]
                    mq += 4 * c
                else:
                    length = _text(indiv, at, c)
                    if length < 0:
                        return i, UNSUPPORTED
                    mq = _put32(fmt, mq, length)
                    for j in range(length):
                        fmt[mq + j] = indiv[at + j]
                    mq += length
            fmt_len[i, s] = mq - start
    return n, DONE
