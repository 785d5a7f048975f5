"""Per-allele statistics: computed at ingest, written as row deltas, summed at lookup.

Semantics (bcftools `+fill-tags` on a `bcftools merge` of the inputs, missing = ./.):

- a sample is *called* at a site when it has a record there with at least one called
  allele, or a gVCF reference block covering the site (then it is hom-ref there);
  a sample with no record at a site is not called (bcftools merge writes ./.);
- AN counts called alleles only (`./1` adds 1), AC the copies of the ALT;
- n_hom_alt: samples whose alleles are all called and all this ALT, ploidy >= 2 (haploid
  calls are hemizygous: carriers, neither hom nor het; bcftools counts them in AC_Hemi);
- n_het: carriers with at least one other called allele (`./1` is a carrier, not het);
- n_carriers: samples with >= 1 copy; n_called: samples called at the site.

Every row is a signed delta: replacing a sample writes the negation of its old rows.

The TileDB-VCF arrays (`allele_count`, `variant_stats`, `sample_stats`) hold TileDB-VCF's
own semantics instead, row for row (`allele_count_rows`, `vs_rows`, `sample_stats_rows`).
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from node.domain import ZERO_STATS, normalize_contig
from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.allele_count_rows import (
    AlleleCountRows,
    Classes,
    genotype_classes,
    genotype_classes_small,
)
from node.store.ingest.calls import Calls, allele_rows
from node.store.ingest.sample_stats_rows import SampleStatsRows
from node.store.ingest.vs_rows import VariantStatsRows, normalise_stats_allele
from node.store.read.stats_lookup import Point as Point
from node.store.read.stats_lookup import point_ranges as point_ranges
from node.store.read.stats_lookup import text_of
from node.store.read.stats_lookup import variant_stats_lookup as variant_stats_lookup

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = [
    "ZERO_STATS",
    "Point",
    "StatsCollector",
    "normalise_stats_allele",
    "point_ranges",
    "variant_stats_lookup",
    "variant_type_of",
]

_text = text_of  # the read path decodes TileDB text with it
_NON_VARIANT = {"<NON_REF>", "<*>", "*", "."}
_SV_TYPES = {"DEL", "INS", "DUP", "INV", "CNV", "BND"}
SMALL = 8  # records of at most this many samples take the plain-Python path
_SHAPES = 1 << 16  # `_Shape`s kept (distinct calls of a few samples)
FednodeKey = tuple[str, int, str, str]  # canonical contig, pos, ref, alt ("" = site row)


@functools.lru_cache(maxsize=1 << 10)
def _canonical(contig: str) -> str:
    return normalize_contig(contig)


def variant_type_of(ref: str, alt: str) -> str:
    """Beacon variantType of one ALT (names in node.names.VariantType)."""
    if alt in _NON_VARIANT:
        return "REF"
    if alt.startswith("<"):
        kind = alt[1:-1].split(":")[0]
        return kind if kind in _SV_TYPES else "SV"
    if "[" in alt or "]" in alt:
        return "BND"
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "INDEL"


@dataclass
class _Columns:
    """Column buffers of one array's pending rows."""

    cols: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))

    def add(self, **values: object) -> None:
        for key, value in values.items():
            self.cols[key].append(value)

    def __len__(self) -> int:
        first = next(iter(self.cols.values()), [])
        return len(first)

    def take(self) -> dict[str, list[object]]:
        out, self.cols = dict(self.cols), defaultdict(list)
        return out


@dataclass(frozen=True, slots=True)
class _Shape:
    """What `_add_small` adds for a record of one ALT (not symbolic, not a gVCF block) at
    a position new to its samples: the same for every such record whose samples call the
    same alleles (at most a few hundred distinct calls of a few samples)."""

    local: list[int]  # each sample's called alleles, `_last_site`'s value ([]: none called)
    site: list[int]  # the site row's counts
    allele: list[int] | None  # the ALT row's counts (None: no carrier)
    classes: tuple[tuple[int, str, int], ...]  # (0 REF / 1 ALT, gt class, samples)


class StatsCollector:
    """Accumulates the rows of every statistics array for one ingest (or one removal).

    `allele_count`, `variant_stats` (version `variant_stats_version`) and `sample_stats`
    rows are TileDB-VCF's (see their modules); removals (`sign` -1) write negated
    `allele_count` rows, and negated `variant_stats` rows for version 2 only (version 3
    rows of a removed sample are deleted by their `sample` dimension). The fednode
    aggregate (`keys`, `coverage`) keeps fednode's own semantics (module docstring).
    """

    def __init__(self, *, sign: int = 1, variant_stats_version: int = 3) -> None:
        self.sign = sign
        self.keys: dict[FednodeKey, list[int]] = {}  # the six FEDNODE_COUNTS, signed
        self.key_info: dict[FednodeKey, tuple[int, str, str]] = {}  # end, ids, source contig
        self._last_site: dict[
            tuple[str, ...], tuple[tuple[str, int], list[int] | np.ndarray]] = {}
        self.coverage = _Columns()
        self.variant_stats = VariantStatsRows(version=variant_stats_version, sign=sign)
        self.allele_count = AlleleCountRows(sign=sign)
        self.sample_stats = SampleStatsRows()
        self._variant_stats = sign > 0 or variant_stats_version < 3
        self._shapes: dict[tuple[object, ...], _Shape] = {}  # by a record's calls

    @property
    def max_length(self) -> int:
        """The longest called record seen (`variant_stats` array metadata `max_length`)."""
        return self.variant_stats.max_length

    def pending(self) -> int:
        """Rows waiting in the per-sample arrays (the aggregate is counted apart)."""
        return len(self.coverage) + len(self.variant_stats) + len(self.allele_count)

    def add(
        self,
        *,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        gt: np.ndarray,
        samples: Sequence[str],
        ref_block: bool,
        ids: str = ".",
        fmt: VarChunk | None = None,
        rows: list[list[int]] | None = None,
    ) -> None:
        """One record of `samples` (rows of `gt`: allele index, -1 missing, -2 no allele;
        `fmt`: their FORMAT blobs, for sample_stats DP/GQ; `rows`, when the caller has
        them: each sample's alleles without the -2s)."""
        calls = None
        if len(gt) <= SMALL:
            if rows is None:
                rows = allele_rows(gt)
            self._add_small(contig, pos, end, ref, alts, rows, samples, ref_block, ids)
            classes = genotype_classes_small(rows, (ref, *alts))
        else:
            calls = Calls(gt)
            self._add_aggregate(calls, contig, pos, end, ref, alts, samples, ref_block, ids)
            classes = genotype_classes(gt, (ref, *alts))
        if self._variant_stats:
            self.variant_stats.add(contig, pos, end, ref, alts, gt, samples, calls, rows)
        self.allele_count.add(contig, pos, ref, alts, filters, classes)
        if self.sign > 0:
            self.sample_stats.add(samples, gt, ref, alts, fmt, calls=calls, rows=rows)

    def add_block(self, records: Sequence[ParsedRecord], samples: Sequence[str]) -> None:
        """Consecutive records of one input (one contig), as `add` of each in turn gives.

        Records of a few samples (at most SMALL) go to each builder as one block, so the
        builders can work over the block at once rather than record by record."""
        if len(samples) > SMALL:
            for r in records:
                self.add(
                    contig=r.contig,
                    pos=r.pos,
                    end=r.end,
                    ref=r.ref,
                    alts=r.alts,
                    filters=r.filters,
                    gt=r.gt,
                    samples=samples,
                    ref_block=r.is_ref_block,
                    ids=r.ids,
                    fmt=r.fmt,
                    rows=r.rows,
                )
            return
        rows = [r.rows if r.rows is not None else allele_rows(r.gt) for r in records]
        classes = self._aggregate_block(records, rows, samples)
        if self._variant_stats:
            self.variant_stats.add_block(records, rows, samples)
        self.allele_count.add_block(records, classes)
        if self.sign > 0:
            self.sample_stats.add_block(samples, records, rows)

    def _aggregate_block(
        self,
        records: Sequence[ParsedRecord],
        rows: list[list[list[int]]],
        samples: Sequence[str],
    ) -> list[Classes]:
        """The fednode aggregate's rows of a block of few-sample records, and each
        record's genotype classes (for `allele_count`): what `_add_small` and
        `genotype_classes_small` of each record in turn give.

        A record of one ALT at a position new to its samples (nearly every record of a
        one-sample VCF) adds what its calls' `_Shape` says; any other record goes through
        `_add_small`, with `_last_site` brought up to date around it.
        """
        group = tuple(samples)
        keys, key_info, shapes = self.keys, self.key_info, self._shapes
        state = self._last_site.get(group)  # kept here, written back around `_add_small`
        positive = self.sign > 0  # a new key's counts as they are (see `_key`)
        contig = canonical = ""
        out: list[Classes] = []
        for r, row in zip(records, rows, strict=True):
            if r.contig != contig:
                contig, canonical = r.contig, _canonical(r.contig)
            alts, pos = r.alts, r.pos
            shape = None
            if len(alts) == 1 and alts[0] not in _NON_VARIANT:
                calls = tuple(row[0]) if len(row) == 1 else tuple(map(tuple, row))
                shape = shapes.get(calls) or self._shape(calls, row)
            if shape is None or (shape.local and state and state[0] == (canonical, pos)):
                if state is not None:
                    self._last_site[group] = state
                self._add_small(contig, pos, r.end, r.ref, alts, row, samples,
                                r.is_ref_block, r.ids)
                out.append(genotype_classes_small(row, (r.ref, *alts)))
                state = self._last_site.get(group)
                continue
            if not shape.local:  # nothing called
                out.append({})
                continue
            state = ((canonical, pos), shape.local)
            key: FednodeKey = (canonical, pos, "", "")
            if positive and key not in keys:
                keys[key], key_info[key] = shape.site.copy(), (pos, ".", contig)
            else:
                self._key(key, shape.site.copy(), (pos, ".", contig))
            if shape.allele is not None:
                key = (canonical, pos, r.ref, alts[0])
                if positive and key not in keys:
                    keys[key], key_info[key] = shape.allele.copy(), (r.end, r.ids, contig)
                else:
                    self._key(key, shape.allele.copy(), (r.end, r.ids, contig))
            found = shape.classes
            if len(found) == 1:
                index, gt, n = found[0]
                out.append({(alts[0] if index else r.ref, gt): n})
            else:
                out.append({(alts[0] if i else r.ref, gt): n for i, gt, n in found})
        if state is not None:
            self._last_site[group] = state
        return out

    def _shape(self, calls: tuple[object, ...], rows: list[list[int]]) -> _Shape | None:
        """The `_Shape` of `rows` (a record's calls, keyed `calls`), cached; None when
        the calls name an allele past the one ALT (left to `_add_small`)."""
        if any(a > 1 for row in rows for a in row):
            return None
        probe = StatsCollector()
        group = tuple(str(i) for i in range(len(rows)))
        probe._add_small("1", 0, 0, "N", ("A",), rows, group, False, ".")
        state = probe._last_site.get(group)
        classes = genotype_classes_small(rows, ("N", "A"))
        shape = _Shape(
            local=[int(v) for v in state[1]] if state is not None else [],
            site=probe.keys.get(("1", 0, "", ""), []),
            allele=probe.keys.get(("1", 0, "N", "A")),
            classes=tuple((int(alt == "A"), gt, n) for (alt, gt), n in classes.items()),
        )
        if len(self._shapes) >= _SHAPES:  # few distinct calls in practice; bounded anyway
            self._shapes.clear()
        self._shapes[calls] = shape
        return shape

    def _add_aggregate(
        self,
        calls: Calls,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        samples: Sequence[str],
        ref_block: bool,
        ids: str,
    ) -> None:
        """The fednode aggregate's rows of one record (numpy)."""
        if not calls.called.any():
            return
        canonical = normalize_contig(contig)
        called, n_called = calls.called, calls.n_called
        # Hom-ref calls of a gVCF reference block cover its whole span; any other call
        # counts at its own position only (like TileDB-VCF's "nr" rows).
        spanning = called & ~calls.non_ref if ref_block else np.zeros_like(called)
        if spanning.any():
            self._coverage(canonical, pos, end, int(n_called[spanning].sum()), int(spanning.sum()))
        local = np.where(called & ~spanning, n_called, 0)
        if local.any():
            self._site(canonical, contig, pos, samples, local)
        copies_all = calls.copies(1 + len(alts))
        complete = n_called == calls.ploidy
        diploid = calls.ploidy >= 2
        for index, alt in enumerate(alts, start=1):
            if alt in _NON_VARIANT:
                continue
            copies = copies_all[:, index]
            carriers = copies > 0
            if not carriers.any():
                continue
            hom = carriers & complete & (copies == calls.ploidy) & diploid
            het = carriers & (n_called > copies)
            counts = [int(copies.sum()), 0, int(hom.sum()), int(het.sum()), int(carriers.sum()), 0]
            self._key((canonical, pos, ref, alt), counts, (end, ids, contig))

    def _add_small(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        rows: list[list[int]],
        samples: Sequence[str],
        ref_block: bool,
        ids: str,
    ) -> None:
        """`_add_aggregate` for a few samples (one-sample VCFs): plain Python, the same
        semantics (`rows`: each sample's alleles, no -2).

        numpy's per-call overhead dominates below ~10 samples; a test checks both paths
        give identical rows on random genotypes.
        """
        called = [[a for a in row if a >= 0] for row in rows]
        if not any(called):
            return
        canonical = _canonical(contig)
        spanning = [bool(c) and ref_block and max(c) == 0 for c in called]
        if any(spanning):
            an = sum(len(c) for c, sp in zip(called, spanning, strict=True) if sp)
            self._coverage(canonical, pos, end, an, sum(spanning))
        local = [0 if sp else len(c) for c, sp in zip(called, spanning, strict=True)]
        if any(local):
            self._site(canonical, contig, pos, samples, local)
        for index, alt in enumerate(alts, start=1):
            if alt not in _NON_VARIANT:
                self._small_allele(
                    canonical, pos, ref, alt, index, rows, called, (end, ids, contig)
                )

    def _small_allele(
        self,
        canonical: str,
        pos: int,
        ref: str,
        alt: str,
        index: int,
        rows: list[list[int]],
        called: list[list[int]],
        info: tuple[int, str, str],
    ) -> None:
        ac = hom = het = carriers = 0
        for row, alleles in zip(rows, called, strict=True):
            copies = alleles.count(index)
            if not copies:
                continue
            ac += copies
            carriers += 1
            hom += int(copies == len(row) >= 2)
            het += int(len(alleles) > copies)
        if carriers:
            self._key((canonical, pos, ref, alt), [ac, 0, hom, het, carriers, 0], info)

    def _site(
        self,
        canonical: str,
        contig: str,
        pos: int,
        samples: Sequence[str],
        alleles: Sequence[int] | np.ndarray,
    ) -> None:
        """Called alleles/samples at a position, each sample counted once per position.

        An input may split one site into several records (`bcftools norm -m-`); bcftools
        +fill-tags counts each sample once per record, so a second record at the same
        position adds only what the first did not.
        """
        group = tuple(samples)
        last = self._last_site.get(group)
        same = last is not None and last[0] == (canonical, pos)
        if not same and isinstance(alleles, list):  # the first record here (plain Python)
            an = sum(alleles)
            n_called = sum(1 for v in alleles if v > 0)
            seen: list[int] | np.ndarray = alleles
        elif len(alleles) <= SMALL:  # plain Python: numpy's per-call cost dominates
            now = [int(a) for a in alleles]
            before = [int(c) for c in last[1]] if last is not None and same else [0] * len(now)
            an = sum(max(v - c, 0) for v, c in zip(now, before, strict=True))
            n_called = sum(1 for v, c in zip(now, before, strict=True) if c == 0 and v > 0)
            seen = [max(v, c) for v, c in zip(now, before, strict=True)]
        else:
            values = np.asarray(alleles, dtype=np.int64)
            counted = last[1] if last is not None and same else np.zeros_like(values)
            an = int(np.maximum(values - counted, 0).sum())
            n_called = int(((counted == 0) & (values > 0)).sum())
            seen = np.maximum(values, counted)
        self._last_site[group] = ((canonical, pos), seen)
        if an or n_called:
            self._key((canonical, pos, "", ""), [0, an, 0, 0, 0, n_called], (pos, ".", contig))

    def _key(self, key: FednodeKey, counts: list[int], info: tuple[int, str, str]) -> None:
        current = self.keys.get(key)
        if current is None:
            self.keys[key] = counts if self.sign > 0 else [-c for c in counts]
            self.key_info[key] = info
            return
        sign = self.sign
        for i, c in enumerate(counts):
            current[i] += sign * c
        known = self.key_info[key]
        if known[1] != info[1]:
            merged = ";".join(sorted(set(known[1].split(";")) | set(info[1].split(";")) - {"."}))
            info = (max(known[0], info[0]), merged or ".", known[2])
        self.key_info[key] = info

    def _coverage(self, contig: str, pos: int, end: int, an: int, n_called: int) -> None:
        anchors = range(pos, end + 1, layout.ANCHOR_GAP)
        for start in anchors:
            self.coverage.add(
                contig=contig,
                start=start,
                real_start=pos,
                end=end,
                an=an * self.sign,
                n_called=n_called * self.sign,
            )

    def fednode_rows(self) -> dict[str, object]:
        keys = list(self.keys)
        width = len(layout.FEDNODE_COUNTS)
        counts = np.fromiter(  # one pass over the count lists, no array per key
            itertools.chain.from_iterable(self.keys.values()), np.int64, len(keys) * width
        ).reshape(-1, width)
        info = [self.key_info[k] for k in keys]
        self.keys, self.key_info = {}, {}
        out: dict[str, object] = {
            "contig": [k[0] for k in keys],
            "pos": np.array([k[1] for k in keys], dtype=np.uint32),
            "ref": [k[2] for k in keys],
            "alt": [k[3] for k in keys],
            "end": np.array([i[0] for i in info], dtype=np.uint32),
            "id": [i[1] for i in info],
            "source_contig": [i[2] for i in info],
        }
        for i, name in enumerate(layout.FEDNODE_COUNTS):
            out[name] = counts[:, i].astype(np.int32)
        return out

    def take_sample_stats(self) -> dict[str, object]:
        """One `sample_stats` row per sample (see `sample_stats_rows.SampleStatsRows.take`)."""
        return self.sample_stats.take()
