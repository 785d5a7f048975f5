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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tiledb

from node.domain import ZERO_STATS, AlleleStats, normalize_contig
from node.store import layout

__all__ = [
    "ZERO_STATS",
    "StatsCollector",
    "normalise_stats_allele",
    "variant_stats_lookup",
    "variant_type_of",
]

_NON_VARIANT = {"<NON_REF>", "<*>", "*", "."}
_SV_TYPES = {"DEL", "INS", "DUP", "INV", "CNV", "BND"}
SMALL = 8  # records of at most this many samples take the plain-Python path
FednodeKey = tuple[str, int, str, str]  # canonical contig, pos, ref, alt ("" = site row)


def normalise_stats_allele(ref: str, alt: str) -> str:
    """TileDB-VCF variant_stats v3 key: one shared trailing base trimmed ("CAC,C" -> "CA,")."""
    if ref and alt and not alt.startswith("<") and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    return f"{ref},{alt}"


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


class StatsCollector:
    """Accumulates the rows of every statistics array for one ingest (or one removal)."""

    def __init__(self, *, sign: int = 1) -> None:
        self.sign = sign
        self.keys: dict[FednodeKey, np.ndarray] = {}
        self.key_info: dict[FednodeKey, tuple[int, str, str]] = {}  # end, ids, source contig
        self._last_site: dict[tuple[str, ...], tuple[tuple[str, int], np.ndarray]] = {}
        self.coverage = _Columns()
        self.variant_stats = _Columns()
        self.allele_count = _Columns()
        self.sample_stats: dict[tuple[str, ...], np.ndarray] = {}
        self.max_length = 0
        self._running: dict[tuple[tuple[str, ...], str], int] = {}

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
    ) -> None:
        """One record of `samples` (rows of `gt`: allele index, -1 missing, -2 no allele)."""
        if gt.shape[0] <= SMALL:
            self._add_small(contig, pos, end, ref, alts, filters, gt, samples, ref_block, ids)
            return
        called_alleles = (gt >= 0).sum(axis=1)
        called = called_alleles > 0
        if not called.any():
            self._sample_counts(gt, samples, alts, called)
            return
        canonical = normalize_contig(contig)
        # Hom-ref calls of a gVCF reference block cover its whole span; any other call
        # counts at its own position only (like TileDB-VCF's "nr" rows).
        spanning = called & ~(gt > 0).any(axis=1) if ref_block else np.zeros_like(called)
        if spanning.any():
            self._coverage(
                canonical, pos, end, int(called_alleles[spanning].sum()), int(spanning.sum())
            )
        local = np.where(called & ~spanning, called_alleles, 0)
        if local.any():
            self._site(canonical, contig, pos, samples, local)
        ploidy = (gt != -2).sum(axis=1)
        complete = called_alleles == ploidy
        for index, alt in enumerate(alts, start=1):
            if alt in _NON_VARIANT:
                continue
            copies = (gt == index).sum(axis=1)
            carriers = copies > 0
            if not carriers.any():
                continue
            hom = carriers & complete & (copies == ploidy) & (ploidy >= 2)
            het = carriers & (called_alleles > copies)
            counts = [int(copies.sum()), 0, int(hom.sum()), int(het.sum()), int(carriers.sum()), 0]
            self._key((canonical, pos, ref, alt), counts, (end, ids, contig))
        self._tiledbvcf_rows(contig, pos, end, ref, alts, filters, gt, samples, ref_block)
        self._sample_counts(gt, samples, alts, called)

    def _add_small(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        gt: np.ndarray,
        samples: Sequence[str],
        ref_block: bool,
        ids: str,
    ) -> None:
        """`add` for a few samples (one-sample VCFs): plain Python, the same semantics.

        numpy's per-call overhead dominates below ~10 samples; a test checks both paths
        give identical rows on random genotypes.
        """
        rows = [[a for a in row if a != -2] for row in gt.tolist()]
        called = [[a for a in row if a >= 0] for row in rows]
        canonical = normalize_contig(contig)
        if any(called):
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
            self._tiledbvcf_small(contig, pos, end, ref, alts, filters, rows, samples, ref_block)
        self._sample_counts_small(rows, samples, alts)

    def _tiledbvcf_small(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        rows: list[list[int]],
        samples: Sequence[str],
        ref_block: bool,
    ) -> None:
        running = self._running_max(samples, contig, pos, end)
        self._allele_count_small(contig, pos, ref, alts, filters, rows)
        if self.sign < 0:
            return
        alleles = (ref, *alts)
        cols = self.variant_stats.cols
        for row, sample in zip(rows, samples, strict=True):
            called = [a for a in row if a >= 0]
            homozygous = len(called) == len(row) and len(set(called)) == 1
            for allele in sorted(set(called)):
                if allele == 0:
                    key = "nr" if ref_block and homozygous else "ref"
                else:
                    key = normalise_stats_allele(ref, alleles[allele])
                for name, value in (
                    ("contig", contig),
                    ("pos", pos),
                    ("end", end),
                    ("sample", sample),
                    ("allele", key),
                    ("ac", called.count(allele) * self.sign),
                    ("an", len(called) * self.sign),
                    ("n_hom", int(homozygous) * self.sign),
                    ("max_length", running),
                ):
                    cols[name].append(value)

    def _allele_count_small(
        self,
        contig: str,
        pos: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        rows: list[list[int]],
    ) -> None:
        filter_text = ";".join(filters) if filters else "."
        classes: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            if any(a > 0 for a in row):
                classes[_allele_count_class(row, (ref, *alts))] += 1
        self._emit_allele_counts(contig, pos, ref, filter_text, classes)

    def _emit_allele_counts(
        self, contig: str, pos: int, ref: str, filter_text: str, classes: dict[tuple[str, str], int]
    ) -> None:
        """allele_count rows: one per (ALT, genotype class), signed like every delta."""
        for (alt_text, gt_class), count in classes.items():
            self.allele_count.add(
                contig=contig,
                pos=pos,
                ref=ref,
                alt=alt_text,
                filter=filter_text,
                gt=gt_class,
                count=count * self.sign,
            )

    def _sample_counts_small(
        self, rows: list[list[int]], samples: Sequence[str], alts: Sequence[str]
    ) -> None:
        if self.sign < 0:
            return
        block = self._sample_block(samples)
        index = _COUNTER_INDEX
        for i, row in enumerate(rows):
            called = [a for a in row if a >= 0]
            non_ref = any(a > 0 for a in called)
            vector = block[i]
            vector[index["n_records"]] += 1
            vector[index["n_called" if called else "n_not_called"]] += 1
            vector[index["n_hom_ref"]] += int(bool(called) and not non_ref)
            vector[index["n_het"]] += int(bool(called) and max(called) != min(called))
            vector[index["n_multiallelic"]] += int(non_ref and len(alts) > 1)

    def _sample_block(self, samples: Sequence[str]) -> np.ndarray:
        block = self.sample_stats.get(tuple(samples))
        if block is None:
            block = np.zeros((len(samples), len(layout.SAMPLE_STATS_COUNTERS)), dtype=np.int64)
            self.sample_stats[tuple(samples)] = block
        return block

    def _running_max(self, samples: Sequence[str], contig: str, pos: int, end: int) -> int:
        """Per row, TileDB-VCF writes the running maximum length of its writer (input, contig)."""
        self.max_length = max(self.max_length, end - pos + 1)
        run_key = (tuple(samples), contig)
        running = max(self._running.get(run_key, 0), end - pos + 1)
        self._running[run_key] = running
        return running

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
        values = np.asarray(alleles, dtype=np.int64)
        last = self._last_site.get(group)
        same = last is not None and last[0] == (canonical, pos)
        counted = last[1] if last is not None and same else np.zeros_like(values)
        an = int(np.maximum(values - counted, 0).sum())
        n_called = int(((counted == 0) & (values > 0)).sum())
        self._last_site[group] = ((canonical, pos), np.maximum(values, counted))
        if an or n_called:
            self._key((canonical, pos, "", ""), [0, an, 0, 0, 0, n_called], (pos, ".", contig))

    def _key(self, key: FednodeKey, counts: list[int], info: tuple[int, str, str]) -> None:
        delta = np.asarray(counts, dtype=np.int64) * self.sign
        current = self.keys.get(key)
        self.keys[key] = delta if current is None else current + delta
        known = self.key_info.get(key)
        if known is not None and known[1] != info[1]:
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

    def _tiledbvcf_rows(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        gt: np.ndarray,
        samples: Sequence[str],
        ref_block: bool,
    ) -> None:
        """variant_stats v3 rows per (sample, called allele) and allele_count v1 rows.

        A removal (sign -1) writes no variant_stats rows: those are deleted by sample.
        """
        running = self._running_max(samples, contig, pos, end)
        self._allele_count_rows(contig, pos, ref, alts, filters, gt)
        if self.sign < 0:
            return
        called_alleles = (gt >= 0).sum(axis=1)
        ploidy = (gt != -2).sum(axis=1)
        homozygous = (called_alleles == ploidy) & (
            gt.max(axis=1) == np.where(gt >= 0, gt, 99).min(axis=1)
        )
        names = np.asarray(samples, dtype=object)
        for allele, text in enumerate((ref, *alts)):
            copies = (gt == allele).sum(axis=1)
            rows = np.flatnonzero(copies > 0)
            if rows.size == 0:
                continue
            if allele == 0:
                keys = ["ref"] * rows.size
                if ref_block:
                    keys = ["nr" if h else "ref" for h in homozygous[rows]]
            else:
                keys = [normalise_stats_allele(ref, text)] * rows.size
            cols = self.variant_stats.cols
            cols["contig"].extend([contig] * rows.size)
            cols["pos"].extend([pos] * rows.size)
            cols["end"].extend([end] * rows.size)
            cols["sample"].extend(names[rows].tolist())
            cols["allele"].extend(keys)
            cols["ac"].extend((copies[rows] * self.sign).tolist())
            cols["an"].extend((called_alleles[rows] * self.sign).tolist())
            cols["n_hom"].extend((homozygous[rows].astype(np.int64) * self.sign).tolist())
            cols["max_length"].extend([running] * rows.size)

    def _allele_count_rows(
        self,
        contig: str,
        pos: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        gt: np.ndarray,
    ) -> None:
        filter_text = ";".join(filters) if filters else "."
        classes: dict[tuple[str, str], int] = defaultdict(int)
        carriers = np.sort(gt[(gt > 0).any(axis=1)], axis=1)
        if carriers.size:
            # One class per genotype multiset: classify each distinct row once, in order
            # of first appearance (the order rows were written before).
            rows, first, counts = np.unique(carriers, axis=0, return_index=True, return_counts=True)
            for i in np.argsort(first, kind="stable"):
                present = [a for a in rows[i].tolist() if a != -2]
                classes[_allele_count_class(present, (ref, *alts))] += int(counts[i])
        self._emit_allele_counts(contig, pos, ref, filter_text, classes)

    def _sample_counts(
        self, gt: np.ndarray, samples: Sequence[str], alts: Sequence[str], called: np.ndarray
    ) -> None:
        if self.sign < 0:
            return
        block = self._sample_block(samples)
        non_ref = (gt > 0).any(axis=1)
        values = np.where(gt >= 0, gt, -1)
        distinct = (values.max(axis=1) != np.where(gt >= 0, gt, 99).min(axis=1)) & called
        counts = {
            "n_records": np.ones(len(samples), dtype=np.int64),
            "n_called": called,
            "n_not_called": ~called,
            "n_hom_ref": called & ~non_ref,
            "n_het": distinct,
            "n_multiallelic": non_ref & (len(alts) > 1),
        }
        for i, name in enumerate(layout.SAMPLE_STATS_COUNTERS):
            if name in counts:
                block[:, i] += np.asarray(counts[name], dtype=np.int64)

    def fednode_rows(self) -> dict[str, object]:
        keys = list(self.keys)
        counts = np.array([self.keys[k] for k in keys], dtype=np.int64).reshape(-1, 6)
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
        names: list[str] = []
        blocks = []
        for samples, block in self.sample_stats.items():
            names.extend(samples)
            blocks.append(block)
        self.sample_stats = {}
        width = len(layout.SAMPLE_STATS_COUNTERS)
        matrix = np.vstack(blocks) if blocks else np.zeros((0, width), dtype=np.int64)
        out: dict[str, object] = {"sample": names}
        for i, name in enumerate(layout.SAMPLE_STATS_COUNTERS):
            out[name] = matrix[:, i].astype(np.uint64)
        return out


_COUNTER_INDEX = {name: i for i, name in enumerate(layout.SAMPLE_STATS_COUNTERS)}


def _allele_count_class(present: Sequence[int], alleles: Sequence[str]) -> tuple[str, str]:
    """allele_count `gt` class ("0,1", "1,1", "1,2", ".,1", "1") and its ALT text."""
    alts = sorted({a for a in present if a > 0})
    renumber = {a: i + 1 for i, a in enumerate(alts)}
    parts = sorted(present, key=lambda a: (a >= 0, a))
    text = ",".join("." if a < 0 else str(renumber.get(a, 0)) for a in parts)
    return ",".join(alleles[a] for a in alts), text


def sum_rows(rows: Iterable[np.ndarray]) -> np.ndarray:
    total = np.zeros(6, dtype=np.int64)
    for row in rows:
        total += row
    return total


# --- lookups --------------------------------------------------------------------------------

Point = tuple[int, str, str]  # pos, ref, alt


def point_ranges(positions: Sequence[int], *, before: int = 0) -> list[slice]:
    """Sorted positions as merged inclusive ranges [p - before, p] for a multi-range query."""
    out: list[list[int]] = []
    for p in sorted(set(positions)):
        lo = max(0, p - before)
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = p
        else:
            out.append([lo, p])
    return [slice(lo, hi) for lo, hi in out]


def variant_stats_lookup(
    array: tiledb.Array, names: Sequence[str], points: Sequence[Point], *, max_length: int
) -> list[AlleleStats | None]:
    """Fallback for datasets TileDB-VCF wrote (no fednode aggregate): sum variant_stats rows.

    Scales with the samples at the position; `fednode` could build the aggregate later.
    """
    if not points or not names:
        return [None] * len(points)
    ranges = point_ranges([p for p, _, _ in points], before=max_length)
    rows = array.query(
        attrs=["allele", "ac", "an", "n_hom"], dims=["pos", "sample", "end"]
    ).multi_index[list(names), ranges]
    pos, end = rows["pos"].astype(np.int64), rows["end"].astype(np.int64)
    alleles = [_text(a) for a in rows["allele"]]
    samples, ac, an, hom = rows["sample"], rows["ac"], rows["an"], rows["n_hom"]
    at: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(pos.tolist()):
        at[p].append(i)
    blocks = [i for i, a in enumerate(alleles) if a == "nr"]
    out: list[AlleleStats | None] = []
    for p, ref, alt in points:
        keys = {normalise_stats_allele(ref, alt), f"{ref},{alt}"}
        here = at.get(p, [])
        wanted = [i for i in here if alleles[i] in keys]
        if not wanted:
            out.append(None)
            continue
        site = here + [i for i in blocks if pos[i] < p <= end[i]]
        n_hom = sum(1 for i in wanted if hom[i] > 0 and an[i] >= 2)
        n_het = sum(1 for i in wanted if 0 < ac[i] < an[i])
        called = len({samples[i] for i in site})
        total = int(sum(int(ac[i]) for i in site))
        out.append(
            AlleleStats(
                int(sum(int(ac[i]) for i in wanted)), total, n_hom, n_het, len(wanted), called
            )
        )
    return out


def _text(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
