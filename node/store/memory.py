"""`MemoryStore`: a plain-Python reference implementation of `VariantStore`.

It is the oracle of the property tests, so it shares no code with the TileDB store: it
parses VCF/BCF with pysam and computes every statistic at query time from the stored
genotypes, by the rules below (also in docs/decisions.md).

Statistics rules (per allele key contig/start/REF/ALT):

- A *site* is a canonical contig and 0-based start. A sample is at the site when it has
  a record starting there; its called alleles are the non-missing GT entries
  (`./1` has one). With several records at the site (split multi-allelics, SNP and
  indel at one position) the sample's called alleles are the maximum over them, not the
  sum, so a decomposed site does not double AN; likewise its copies of an ALT that
  several records at the site repeat (exact duplicate lines) are the maximum.
- A sample with no record at the site but a gVCF reference block (only `<NON_REF>` or
  `<*>` ALTs, with END) covering the start is called hom-ref there, with the block's
  called alleles (as TileDB-VCF's variant_stats v3 "nr" rows and `bcftools merge
  --gvcf` do). A sample with neither is not called (`./.`, as `bcftools merge`).
- Homozygous for ALT: two or more called alleles, all that ALT; heterozygous: a copy
  and another called allele. A carrier with one called allele (haploid `1`, half-missing
  `./1`) is hemizygous: a carrier but neither hom nor het, as in `bcftools +fill-tags`
  (AC_Hemi apart from AC_Hom and AC_Het).
- An allele is in the dataset when at least one called genotype carries it: an ALT
  listed in a record but carried by no sample (AC 0, e.g. after sample subsetting) has
  no stats and is not returned by `variants()`, as in TileDB-VCF's stats arrays, which
  hold only called alleles.
- `<NON_REF>`, `<*>` and `*` (overlapping deletion) are not variants: no stats, never
  returned by `variants()`.
"""

from __future__ import annotations

import bisect
import gzip
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from node.domain import AlleleKey, AlleleStats, Call, Record, Region, Variant, normalize_contig
from node.errors import Conflict, IngestError, NotFound
from node.names import VariantType
from node.store.base import IngestSummary

__all__ = ["MemoryStore", "classify", "is_placeholder_allele"]

_PLACEHOLDERS = frozenset({"<NON_REF>", "<*>", "*"})
_SYMBOLIC = {
    "DEL": VariantType.DEL,
    "INS": VariantType.INS,
    "DUP": VariantType.DUP,
    "INV": VariantType.INV,
    "CNV": VariantType.CNV,
    "BND": VariantType.BND,
}


def is_placeholder_allele(alt: str) -> bool:
    """ALTs that stand for "any other allele" or an overlapping deletion (VCF 4.3 §1.6.1.5)."""
    return alt in _PLACEHOLDERS


def classify(ref: str, alt: str) -> VariantType:
    """The variant class of one ALT allele.

    >>> [str(classify("A", x)) for x in ("G", "AT", "<DUP:TANDEM>", "G[2:100[")]
    ['SNP', 'INDEL', 'DUP', 'BND']
    """
    if is_placeholder_allele(alt):
        return VariantType.REF
    if alt.startswith("<") and alt.endswith(">"):
        # VCF 4.3 §1.4.5: the first level of a symbolic ID is the structural type.
        return _SYMBOLIC.get(alt[1:-1].split(":", 1)[0].upper(), VariantType.SV)
    if "[" in alt or "]" in alt or alt.startswith(".") or alt.endswith("."):
        return VariantType.BND  # VCF 4.3 §5.4: mate and single breakends
    if len(ref) == len(alt):
        # Like bcftools' TYPE: padding bases shared on both ends do not make an MNP.
        diff = [i for i, (r, a) in enumerate(zip(ref.upper(), alt.upper(), strict=True)) if r != a]
        return VariantType.MNP if diff and diff[-1] > diff[0] else VariantType.SNP
    return VariantType.INDEL


@dataclass(slots=True)
class _Rec:
    """One input record restricted to the samples it carries, plus its origin."""

    contig: str
    source_contig: str
    start: int
    end: int
    ref: str
    alts: tuple[str, ...]
    ids: tuple[str, ...]
    qual: float | None
    filters: tuple[str, ...]
    info: dict[str, object]
    calls: dict[str, Call] = field(default_factory=dict)

    @property
    def is_ref_block(self) -> bool:
        return bool(self.alts) and all(a in ("<NON_REF>", "<*>") for a in self.alts)

    def to_record(self, samples: Sequence[str]) -> Record:
        calls = tuple(self.calls[s] for s in samples if s in self.calls)
        return Record(
            self.contig, self.start, self.end, self.ref, self.alts, self.ids, self.qual,
            self.filters, dict(self.info), calls, self.source_contig,
        )


def _called(call: Call) -> int:
    return sum(1 for a in call.alleles if a is not None)


class _Contig:
    """Records of one canonical contig: by start, and the reference blocks apart."""

    def __init__(self) -> None:
        self.by_start: dict[int, list[_Rec]] = {}
        self.starts: list[int] = []
        self.blocks: list[_Rec] = []  # sorted by start
        self.block_starts: list[int] = []
        self.max_block = 0

    def add(self, rec: _Rec) -> None:
        if rec.is_ref_block:
            i = bisect.bisect_right(self.block_starts, rec.start)
            self.blocks.insert(i, rec)
            self.block_starts.insert(i, rec.start)
            self.max_block = max(self.max_block, rec.end - rec.start)
        if rec.start not in self.by_start:
            bisect.insort(self.starts, rec.start)
            self.by_start[rec.start] = []
        self.by_start[rec.start].append(rec)

    def blocks_covering(self, pos: int) -> Iterator[_Rec]:
        lo = bisect.bisect_left(self.block_starts, pos - self.max_block)
        hi = bisect.bisect_right(self.block_starts, pos)
        for rec in self.blocks[lo:hi]:
            if rec.end > pos:
                yield rec

    def records_from(self, lo: int, hi: int) -> Iterator[_Rec]:
        """Records starting in [lo, hi), in start then input order."""
        first = bisect.bisect_left(self.starts, lo)
        last = bisect.bisect_left(self.starts, hi)
        for start in self.starts[first:last]:
            yield from self.by_start[start]

    def longest(self) -> int:
        return max((r.end - r.start for recs in self.by_start.values() for r in recs), default=0)


class MemoryStore:
    """An in-memory `VariantStore` (see the module docstring for the statistics rules)."""

    def __init__(self, *, assembly: str = "GRCh38") -> None:
        self._assembly = assembly
        self._samples: list[str] = []
        self._contigs: dict[str, _Contig] = {}
        self._cache: dict[AlleleKey, AlleleStats | None] = {}  # cleared by every ingest
        self._lock = threading.Lock()

    @property
    def samples(self) -> tuple[str, ...]:
        return tuple(self._samples)

    @property
    def assembly(self) -> str:
        return self._assembly

    def contigs(self) -> tuple[str, ...]:
        return tuple(sorted(c for c, data in self._contigs.items() if data.starts))

    def close(self) -> None:
        """Nothing to release; present for the Protocol."""

    def resident(self, contig: str) -> bool:
        """Every lookup is answered from memory (no I/O) unless an ingest is running."""
        del contig
        return not self._lock.locked()

    # -- ingest -----------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        assembly: str | None = None,
        replace: bool = False,
        threads: int = 1,
        progress: bool = False,
    ) -> IngestSummary:
        """Parse every file first, then commit, so a bad file changes nothing."""
        if assembly is not None and assembly != self._assembly:
            raise Conflict(f"store assembly is {self._assembly}, not {assembly}")
        parsed = [_read_file(Path(p)) for p in paths]
        incoming = [s for samples, _ in parsed for s in samples]
        dupes = sorted({s for s in incoming if incoming.count(s) > 1})
        if dupes:
            raise Conflict(f"samples in more than one input file: {', '.join(dupes[:5])}")
        existing = [s for s in incoming if s in self._samples]
        if existing and not replace:
            raise Conflict(f"samples already ingested (use replace): {', '.join(existing[:5])}")
        with self._lock:
            self._cache.clear()
            self._drop_samples(set(existing))
            for _, recs in parsed:
                for rec in recs:
                    self._contigs.setdefault(rec.contig, _Contig()).add(rec)
            self._samples.extend(s for s in incoming if s not in self._samples)
        added = tuple(s for s in incoming if s not in existing)
        n_records = sum(len(recs) for _, recs in parsed)
        return IngestSummary(len(parsed), added, tuple(existing), n_records, self._assembly)

    def _drop_samples(self, gone: set[str]) -> None:
        if not gone:
            return
        old = self._contigs
        self._contigs = {}
        for name, data in old.items():
            for start in data.starts:
                for rec in data.by_start[start]:
                    for s in gone & rec.calls.keys():
                        del rec.calls[s]
                    if rec.calls:
                        self._contigs.setdefault(name, _Contig()).add(rec)

    # -- queries ----------------------------------------------------------------------

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        return [self._stats(k) for k in keys]

    def _stats(self, key: AlleleKey) -> AlleleStats | None:
        if key not in self._cache:
            self._cache[key] = self._compute(key)
        return self._cache[key]

    def _compute(self, key: AlleleKey) -> AlleleStats | None:
        data = self._contigs.get(key.contig)
        if data is None or is_placeholder_allele(key.alt):
            return None
        recs = [r for r in data.by_start.get(key.start, []) if not r.is_ref_block]
        holders = [r for r in recs if r.ref == key.ref and key.alt in r.alts]
        called: dict[str, int] = {}
        for rec in recs:
            for s, call in rec.calls.items():
                called[s] = max(called.get(s, 0), _called(call))
        for block in data.blocks_covering(key.start):
            for s, call in block.calls.items():
                if s not in called:
                    called[s] = _called(call)
        stats = _allele_stats(holders, key.alt, called)
        if stats.n_called == 0:
            return None  # nobody called here: the allele number is unknown, not 0
        # An allele nobody carries at a called site: AC 0 over the site's called alleles.
        return stats if stats.ac > 0 else AlleleStats(0, stats.an, 0, 0, 0, stats.n_called)

    def variants(
        self,
        region: Region,
        *,
        variant_types: frozenset[VariantType] | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> Iterator[Variant]:
        data = self._contigs.get(region.contig)
        if data is None:
            return
        found: dict[AlleleKey, Variant] = {}
        lo = region.start - data.longest()
        for rec in data.records_from(lo, region.end):
            for v in self._rec_variants(rec):
                if v.key in found or not (v.start < region.end and v.end > region.start):
                    continue
                if _keep(v, variant_types, min_length, max_length):
                    found[v.key] = v
        yield from sorted(found.values(), key=lambda v: (v.start, v.ref, v.alt))

    def _rec_variants(self, rec: _Rec) -> Iterator[Variant]:
        for alt in rec.alts:
            kind = classify(rec.ref, alt)
            if kind is VariantType.REF:
                continue
            stats = self._stats(AlleleKey(rec.contig, rec.start, rec.ref, alt))
            if stats is None or stats.ac == 0:
                continue  # carried by no called genotype
            end = rec.end if alt.startswith("<") else rec.start + len(rec.ref)
            yield Variant(
                rec.contig, rec.start, end, rec.ref, alt, kind, stats,
                ids=rec.ids, source_contig=rec.source_contig,
            )

    def records(
        self,
        region: Region,
        *,
        samples: Sequence[str] | None = None,
        batch_size: int = 1024,
    ) -> Iterator[list[Record]]:
        wanted = list(self._samples) if samples is None else list(samples)
        unknown = [s for s in wanted if s not in self._samples]
        if unknown:
            raise NotFound(f"no sample {unknown[0]!r} in this dataset")
        data = self._contigs.get(region.contig)
        if data is None:
            return
        batch: list[Record] = []
        for rec in data.records_from(region.start - data.longest(), region.end):
            if rec.end <= region.start or not rec.calls.keys() & set(wanted):
                continue
            batch.append(rec.to_record(wanted))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _allele_stats(holders: list[_Rec], alt: str, called: dict[str, int]) -> AlleleStats:
    ac = n_hom = n_het = n_hemi = 0
    for s in {s for rec in holders for s in rec.calls}:
        copies = ploidy = 0
        hom = False
        for rec in holders:
            call = rec.calls.get(s)
            if call is None:
                continue
            index = rec.alts.index(alt) + 1
            mine = sum(1 for a in call.alleles if a == index)
            copies = max(copies, mine)
            ploidy = max(ploidy, _called(call))
            hom = hom or (mine > 0 and mine == _called(call))
        ac += copies
        if copies and ploidy == 1:
            n_hemi += 1
        elif copies:
            n_hom += 1 if hom else 0
            n_het += 0 if hom else 1
    an = sum(called.values())
    n_called = sum(1 for n in called.values() if n > 0)
    return AlleleStats(ac, an, n_hom, n_het, n_hom + n_het + n_hemi, n_called)


def _keep(
    v: Variant,
    types: frozenset[VariantType] | None,
    min_length: int | None,
    max_length: int | None,
) -> bool:
    if types is not None and v.variant_type not in types:
        return False
    if min_length is not None and v.length < min_length:
        return False
    return max_length is None or v.length <= max_length


def _read_file(path: Path) -> tuple[list[str], list[_Rec]]:
    try:
        try:
            return _read_vcf(str(path))
        except NotImplementedError:
            # htslib cannot open plain-gzip (non-BGZF) text through pysam; inflate first.
            with tempfile.NamedTemporaryFile(suffix=".vcf") as tmp:
                with gzip.open(path, "rb") as src:
                    shutil.copyfileobj(src, tmp)
                tmp.flush()
                return _read_vcf(tmp.name)
    except (OSError, ValueError, EOFError) as exc:
        raise IngestError(f"cannot read as VCF/BCF: {exc}", path=str(path)) from exc


def _read_vcf(path: str) -> tuple[list[str], list[_Rec]]:
    with pysam.VariantFile(path) as vf:
        samples = list(vf.header.samples)
        return samples, [_parse(rec, samples) for rec in vf]


def _parse(rec: pysam.VariantRecord, samples: list[str]) -> _Rec:
    alts = tuple(rec.alts or ())
    calls: dict[str, Call] = {}
    has_gt = "GT" in rec.format
    others = [k for k in rec.format if k != "GT"]
    for name, sample in zip(samples, rec.samples.values(), strict=True):
        alleles = tuple(sample.allele_indices or ()) if has_gt else ()
        fields = {k: sample[k] for k in others} if others else {}
        calls[name] = Call(name, alleles, bool(sample.phased), fields)
    return _Rec(
        contig=normalize_contig(rec.chrom),
        source_contig=rec.chrom,
        start=rec.start,
        end=rec.stop,  # htslib's rlen honours INFO/END
        ref=rec.ref or "",
        alts=alts,
        ids=tuple(rec.id.split(";")) if rec.id else (),
        qual=rec.qual,
        filters=tuple(str(f) for f in rec.filter),
        info={k: rec.info[k] for k in rec.info},
        calls=calls,
    )
