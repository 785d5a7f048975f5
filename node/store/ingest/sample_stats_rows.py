"""`sample_stats` rows as TileDB-VCF's SampleStats writes them (stats/sample_stats.cc).

Each sample's call at a record is read as htslib reads it from that sample's own file (its
own ploidy, as `bcftools +split` writes a multi-sample input):

- n_records: every record; n_called: at least one GT allele called; n_not_called: the
  rest (no GT included);
- n_hom_ref: called and every allele 0; n_het: called and the alleles not all equal, a
  missing allele counting as one (`.|0` and `./1` are het);
- n_singleton: ALT alleles present exactly once in the call (`0/1` 1, `1/2` 2, `1/1` 0);
- n_snp (= n_transition + n_transversion), n_insertion, n_deletion, n_star: per called ALT
  copy, by htslib 1.16's variant type of (REF, ALT) (`variant_class`); MNPs and symbolic
  ALTs count in none;
- n_multiallelic: records with two or more ALTs, whatever the call;
- dp_* / gq_*: the first FORMAT DP / GQ value when the header types it Integer and it is
  not missing: sum, sum of squares, count, min, max in uint64 (TileDB-VCF casts the int32);
  null when the sample has none.

TileDB-VCF writes one row per sample and writer thread; `tiledbvcf store --threads 1`
writes one per sample, as fednode does per ingest. Readers sum (min/max) the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import tiledb

from node.store.dataset import layout
from node.store.dataset.write_buffers import Var, VarChunk
from node.store.dataset.write_query import UNORDERED, write_once
from node.store.ingest.calls import Calls, allele_rows
from node.store.ingest.sample_stats_fields import (
    FIELDS,
    U64_MAX,
    FieldStats,
    SmallFieldStats,
    add_blobs,
    block_fields,
    concat,
    format_ints,
)

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = [
    "SampleStatsRows",
    "merge_sample_stats",
    "variant_class",
    "write_sample_stats",
]

SMALL = 8  # records of at most this many samples take the plain-Python path
COUNTERS = layout.SAMPLE_STATS_COUNTERS
_C = {name: i for i, name in enumerate(COUNTERS)}
Delta = tuple[tuple[int, int, int], ...]  # (sample, counter, amount) of one record
# variant classes counted by sample_stats (index into _CLASS_COUNTERS); 0 counts nowhere
_NONE, _TI, _TV, _INS, _DEL, _STAR = range(6)
_CLASS_COUNTERS: tuple[tuple[str, ...], ...] = (
    (),
    ("n_snp", "n_transition"),
    ("n_snp", "n_transversion"),
    ("n_insertion",),
    ("n_deletion",),
    ("n_star",),
)
# htslib vcf.h VCF_* type bits
VCF_SNP, VCF_MNP, VCF_INDEL, VCF_OTHER, VCF_BND, VCF_OVERLAP, VCF_INS, VCF_DEL = (
    1, 2, 4, 8, 16, 32, 64, 128
)


def variant_type(ref: str, alt: str) -> int:
    """htslib 1.16 `bcf_set_variant_type`: the VCF_* bits of one ALT (0 = VCF_REF)."""
    if alt == "*":
        return VCF_OVERLAP
    if len(ref) == 1 and len(alt) == 1:
        return 0 if alt in (".", ref, "X") else VCF_SNP  # case-sensitive here, as in htslib
    if alt.startswith("<"):
        return 0 if alt.startswith(("<X>", "<*>")) or alt == "<NON_REF>" else VCF_OTHER
    if alt[0] in "[]":
        return VCF_BND  # a breakend joined before REF
    r, a = _upper(ref), _upper(alt)
    i = 0
    while i < len(r) and i < len(a) and r[i] == a[i]:
        i += 1
    if i < len(a) and i == len(r):
        return VCF_BND if a[i] in "[]" else VCF_INDEL | VCF_INS
    if i < len(r) and i == len(a):
        return VCF_INDEL | VCF_DEL
    if i == len(r) and i == len(a):
        return 0
    re, ae = len(r) - 1, len(a) - 1
    while re > i and ae > i and r[re] == a[ae]:
        re, ae = re - 1, ae - 1
    if ae == i:
        if re == i:
            return VCF_SNP
        return VCF_INDEL | VCF_DEL if r[re] == a[ae] else VCF_OTHER
    if re == i:
        return VCF_INDEL | VCF_INS if r[re] == a[ae] else VCF_OTHER
    return VCF_MNP if re - i == ae - i else VCF_OTHER


def variant_class(ref: str, alt: str) -> int:
    """What one called copy of `alt` adds to sample_stats (TileDB-VCF's `process`)."""
    kind = variant_type(ref, alt)
    if kind & VCF_SNP:
        # the first base where REF and ALT differ by bcf_acgt2int (A0 C1 G2 T3, else -1)
        for j, base in enumerate(ref):
            r, a = _acgt(base), _acgt(alt[j] if j < len(alt) else "\0")
            if r != a:
                return _TI if abs(r - a) == 2 else _TV
        return _NONE
    if kind & VCF_INS:
        return _INS
    if kind & VCF_DEL:
        return _DEL
    return _STAR if kind & VCF_OVERLAP else _NONE


def _upper(text: str) -> str:
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text)


def _acgt(base: str) -> int:
    code = ord(base)
    code = code - 32 if code > 96 else code
    return {65: 0, 67: 1, 71: 2, 84: 3}.get(code, -1)


class _Group:
    """The counters of one input's samples (in input order)."""

    def __init__(self, n: int) -> None:
        self.counts = np.zeros((n, len(COUNTERS)), dtype=np.int64)
        self.small = [[0] * len(COUNTERS) for _ in range(n)] if n <= SMALL else None
        # per field: sum, sum of squares, count, min, max (uint64, wrapping as in C++)
        self.fields: dict[bytes, FieldStats | SmallFieldStats] = {
            f: FieldStats(n) if self.small is None else SmallFieldStats(n) for f in FIELDS
        }


_REF, _ALTS = attrgetter("ref"), attrgetter("alts")


class SampleStatsRows:
    """Per-sample counters of one ingest; `take` gives one row per sample."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._classes: dict[tuple[str, str], int] = {}
        # `_count_block`'s counters per number of samples, then (REF, ALTs, calls)
        self._deltas: dict[int, dict[tuple[str, tuple[str, ...], tuple[Any, ...]], Delta]] = {}

    def _group(self, samples: Sequence[str]) -> _Group:
        key = tuple(samples)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(len(key))
        return group

    def _class_of(self, ref: str, alt: str) -> int:
        key = (ref, alt)
        found = self._classes.get(key)
        if found is None:
            if len(self._classes) > 100_000:
                self._classes.clear()
            found = self._classes[key] = variant_class(ref, alt)
        return found

    def add_block(
        self,
        samples: Sequence[str],
        records: Sequence[ParsedRecord],
        rows: Sequence[list[list[int]]],
    ) -> None:
        """`add` of consecutive records of one input of a few samples; `rows[i]`: the
        allele lists of `records[i]` (no -2).

        The counters are sums, so records of one (REF, ALTs, calls) are counted once and
        multiplied; the DP/GQ values are read for the whole block from the blobs' bytes
        (`block_fields`)."""
        if not records:
            return
        group = self._group(samples)
        if group.small is None:
            for r, row in zip(records, rows, strict=True):
                self.add(samples, r.gt, r.ref, r.alts, r.fmt, rows=row)
            return
        self._count_block(group.small, records, rows)
        block_fields(group.fields, records, len(samples))  # type: ignore[arg-type]

    def _count_block(
        self,
        counters: list[list[int]],
        records: Sequence[ParsedRecord],
        rows: Sequence[list[list[int]]],
    ) -> None:
        """`_add_small` of each record, once per distinct (REF, ALTs, calls)."""
        calls: Iterable[tuple[Any, ...]]
        if len(counters) == 1:
            calls = map(tuple, map(itemgetter(0), rows))
        else:
            calls = (tuple(map(tuple, row)) for row in rows)
        seen = Counter(zip(map(_REF, records), map(_ALTS, records), calls, strict=True))
        deltas = self._deltas.setdefault(len(counters), {})
        for key, times in seen.items():
            delta = deltas.get(key)
            if delta is None:
                if len(deltas) > 100_000:
                    deltas.clear()
                delta = deltas[key] = self._delta(*key, n=len(counters))
            for sample, j, x in delta:
                counters[sample][j] += x * times

    def _delta(self, ref: str, alts: tuple[str, ...], call: tuple[Any, ...], *, n: int) -> Delta:
        """What `_add_small` adds for one record: (sample, counter, amount) triples."""
        classes = [_NONE, *(self._class_of(ref, alt) for alt in alts)]
        counters = [[0] * len(COUNTERS) for _ in range(n)]
        row: list[list[int]] = [list(call)] if n == 1 else [list(c) for c in call]
        self._add_small(counters, row, classes, len(alts) > 1)
        return tuple((i, j, x) for i, c in enumerate(counters) for j, x in enumerate(c) if x)

    def add(
        self,
        samples: Sequence[str],
        gt: np.ndarray,
        ref: str,
        alts: Sequence[str],
        fmt: VarChunk | None,
        *,
        calls: Calls | None = None,
        rows: list[list[int]] | None = None,
    ) -> None:
        """One record of `samples` (`gt` rows: allele index, -1 missing, -2 no allele;
        `rows`, when the caller has them: each sample's alleles without the -2s)."""
        group = self._group(samples)
        classes = [_NONE, *(self._class_of(ref, alt) for alt in alts)]
        if group.small is not None:
            if rows is None:
                rows = allele_rows(gt)
            self._add_small(group.small, rows, classes, len(alts) > 1)
            if fmt is not None and len(fmt):
                add_blobs(group.fields, fmt)  # type: ignore[arg-type]
            return
        calls = Calls(gt) if calls is None else calls
        self._add_numpy(group.counts, calls, classes, len(alts) > 1)
        if fmt is not None and len(fmt):
            for name, (values, present) in format_ints(fmt, FIELDS).items():
                group.fields[name].add(values, present)

    @staticmethod
    def _add_small(
        counters: list[list[int]], rows: list[list[int]], classes: list[int], multi: bool
    ) -> None:
        for row, c in zip(rows, counters, strict=True):
            called = [a for a in row if a >= 0]
            c[_C["n_records"]] += 1
            c[_C["n_multiallelic"]] += multi
            if not called:
                c[_C["n_not_called"]] += 1
                continue
            c[_C["n_called"]] += 1
            if all(a == row[0] for a in row):
                c[_C["n_hom_ref"]] += row[0] == 0
            else:
                c[_C["n_het"]] += 1
            alts = [a for a in called if a > 0]
            c[_C["n_singleton"]] += sum(1 for a in set(alts) if alts.count(a) == 1)
            for a in alts:
                for name in _CLASS_COUNTERS[classes[a]]:
                    c[_C[name]] += 1

    @staticmethod
    def _add_numpy(counts: np.ndarray, calls: Calls, classes: list[int], multi: bool) -> None:
        t = calls.transposed  # (ploidy, samples)
        valid = t != -2
        called = calls.called
        hom = ((t == t[0]) | ~valid).all(axis=0)
        counts[:, _C["n_records"]] += 1
        counts[:, _C["n_multiallelic"]] += multi
        counts[:, _C["n_called"]] += called
        counts[:, _C["n_not_called"]] += ~called
        counts[:, _C["n_hom_ref"]] += called & hom & (t[0] == 0)
        counts[:, _C["n_het"]] += called & ~hom
        copies = calls.copies(len(classes))[:, 1:]
        counts[:, _C["n_singleton"]] += (copies == 1).sum(axis=1)
        kinds = np.asarray(classes[1:], dtype=np.int64)
        for kind in set(classes[1:]) - {_NONE}:
            per_sample = copies[:, kinds == kind].sum(axis=1)
            for name in _CLASS_COUNTERS[kind]:
                counts[:, _C[name]] += per_sample

    def take(self) -> dict[str, object]:
        """Columns of one row per sample: counters as uint64, and each nullable DP/GQ
        statistic as (values, validity)."""
        names: list[str] = []
        counts, fields = [], {f: [] for f in FIELDS}  # type: ignore[var-annotated]
        for samples, group in self._groups.items():
            block = group.counts.copy()
            if group.small is not None:
                block += np.asarray(group.small, dtype=np.int64)
            names.extend(samples)
            counts.append(block)
            for f in FIELDS:
                group.fields[f].fold()
                fields[f].append(group.fields[f])
        self._groups = {}
        width = len(COUNTERS)
        matrix = np.vstack(counts) if counts else np.zeros((0, width), dtype=np.int64)
        out: dict[str, object] = {"sample": names}
        for f in FIELDS:
            prefix = f.decode().lower()
            stats = fields[f]
            count = concat([s.count for s in stats])
            valid = (count > 0).astype(np.uint8)
            for part in ("sum", "sum2", "count", "min", "max"):
                values = concat([getattr(s, part) for s in stats])
                out[f"{prefix}_{part}"] = (np.where(valid == 1, values, np.uint64(0)), valid)
        for i, name in enumerate(COUNTERS):
            out[name] = matrix[:, i].astype(np.uint64)
        return out


def merge_sample_stats(parts: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """One row per sample from several `take()`s (tasks of a partitioned ingest, each
    over some of a sample's records): counters, sums and counts add up, min/max are
    taken over the parts that have a value, as TileDB-VCF's reader combines its rows."""
    names = sorted({s for part in parts for s in part["sample"]})  # type: ignore[attr-defined]
    row = {name: i for i, name in enumerate(names)}
    out: dict[str, object] = {"sample": names}
    for key in parts[0] if parts else ():
        if key == "sample":
            continue
        nullable = isinstance(parts[0][key], tuple)
        kind = key.rsplit("_", 1)[-1] if nullable else "sum"
        start = {"min": U64_MAX, "max": np.uint64(0)}.get(kind, np.uint64(0))
        values = np.full(len(names), start, dtype=np.uint64)
        valid = np.zeros(len(names), dtype=np.uint8)
        for part in parts:
            at = np.fromiter((row[s] for s in part["sample"]), np.int64)  # type: ignore[attr-defined]
            column: Any = part[key]
            raw, ok = column if nullable else (column, np.ones(len(at), np.uint8))
            keep = np.asarray(ok) == 1
            at, these = at[keep], np.asarray(raw, dtype=np.uint64)[keep]
            if kind == "min":
                np.minimum.at(values, at, these)
            elif kind == "max":
                np.maximum.at(values, at, these)
            else:
                np.add.at(values, at, these)
            valid[at] = 1
        if nullable:
            out[key] = (np.where(valid == 1, values, np.uint64(0)), valid)
        else:
            out[key] = values
    return out


def write_sample_stats(array: tiledb.Array, columns: Mapping[str, object]) -> None:
    """One unordered write of `take()`'s columns, nullable ones as (values, validity)."""
    sample = Var.text(columns["sample"])  # type: ignore[arg-type]
    write_once(array, {**columns, "sample": sample}, UNORDERED)
