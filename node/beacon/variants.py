"""Beacon v2 variant queries over domain `Variant`s: matching, ids, HGVS, VRS locations.

Coordinates are 0-based interbase as in Beacon v2 (genomicVariations requestParameters:
"start ... 0-based, inclusive"; "end ... exclusive"), which is the node's convention too.
Query kinds (Beacon v2 docs, "Genomic variation queries"):

- sequence: one `start`, `alternateBases` (and optionally `referenceBases`): alleles
  starting exactly there.
- range: `start`, `end`: alleles overlapping [start, end), optionally narrowed by bases,
  `variantType`, lengths, `geneId` or `aminoacidChange`.
- bracket: `start=[s0,s1]`, `end=[e0,e1]`: allele start in [s0, s1] and end in [e0, e1]
  (both closed intervals).
- gene: `geneId` (annotations, or the gene's coordinates from a BED file) without a region.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

from node.beacon.annotations import (
    Annotation,
    GeneIndex,
    for_allele,
    parse_info,
    short_aa_change,
)
from node.beacon.refseq import accession
from node.domain import AlleleKey, Region, Variant
from node.errors import InvalidInput
from node.names import VariantType
from node.store.base import VariantStore

__all__ = [
    "VariantQuery",
    "exact_key",
    "hgvs_id",
    "internal_id",
    "matches",
    "parse_internal_id",
    "query_for_id",
    "selector",
    "vrs_location",
]

# A contig's largest coordinate the node accepts (chr1 is ~249 Mb; leave headroom).
MAX_COORD = 1 << 31
# ASCII digits only (`\d` takes any script's digits, which int() reads), and fullmatch:
# `$` would let a trailing newline through.
_ID = re.compile(r"chr([A-Za-z0-9._-]+)_([0-9]+)_([ACGTNacgtn*]+)_([A-Za-z0-9<>:*.\[\]_-]+)")

# Beacon variantType → the store's classes it covers. Beacon (following VCF/SO) calls
# insertions and deletions of sequence "INDEL"; "DEL"/"INS" also match symbolic alleles.
_TYPE_ALIASES: dict[str, frozenset[str]] = {
    "SNP": frozenset({"SNP"}),
    "SNV": frozenset({"SNP"}),
    "MNP": frozenset({"MNP"}),
    "INDEL": frozenset({"INDEL"}),
    "DEL": frozenset({"DEL"}),
    "INS": frozenset({"INS"}),
    "DUP": frozenset({"DUP"}),
    "INV": frozenset({"INV"}),
    "CNV": frozenset({"CNV", "DEL", "DUP"}),
    "BND": frozenset({"BND"}),
    "SV": frozenset({"SV", "DEL", "INS", "DUP", "INV", "CNV", "BND"}),
}


@dataclass(frozen=True, slots=True)
class VariantQuery:
    """A parsed g_variants query; `contig` is canonical, coordinates 0-based."""

    contig: str | None = None
    assembly: str | None = None
    start: tuple[int, ...] = ()
    end: tuple[int, ...] = ()
    reference_bases: str | None = None
    alternate_bases: str | None = None
    variant_type: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    gene_id: str | None = None
    aminoacid_change: str | None = None

    @property
    def kind(self) -> str:
        if self.contig is None:
            return "all" if self.gene_id is None else "gene"
        if len(self.start) == 2:
            return "bracket"
        return "sequence" if not self.end else "range"

    @property
    def needs_annotations(self) -> bool:
        return self.gene_id is not None or self.aminoacid_change is not None

    def region(self) -> Region | None:
        """The interval to scan, None for a gene query (regions come from the gene)."""
        if self.contig is None:
            return None
        if self.kind == "bracket":
            return Region(self.contig, self.start[0], max(self.end[1], self.start[1] + 1))
        if self.kind == "sequence":
            return Region(self.contig, self.start[0], self.start[0] + 1)
        return Region(self.contig, self.start[0], self.end[0])

    def type_classes(self) -> frozenset[str] | None:
        if self.variant_type is None:
            return None
        classes = _TYPE_ALIASES.get(self.variant_type.upper())
        if classes is None:
            raise InvalidInput(
                f"unknown variantType {self.variant_type!r}; one of {', '.join(_TYPE_ALIASES)}"
            )
        return classes


def bases_match(pattern: str, bases: str) -> bool:
    """Beacon bases: IUPAC letters, `N` a wildcard for one base (Beacon v2
    requestParameters, alternateBases); `.`/`-` stand for the empty sequence."""
    pattern = "" if pattern in (".", "-") else pattern.upper()
    bases = bases.upper()
    if len(pattern) != len(bases):
        return False
    if "N" not in pattern:  # no wildcard (the usual query): plain equality
        return pattern == bases
    return all(p == b or p == "N" for p, b in zip(pattern, bases, strict=True))


def normalized(v: Variant) -> Variant:
    """The allele with shared trailing, then leading, bases trimmed (keeping one base), as
    `bcftools norm` writes split multi-allelics: `TATATA>AATATA` at 66381 is `T>A`. Ids,
    HGVS, locations and matching use this form; store lookups keep the original."""
    ref, alt, start = v.ref, v.alt, v.start
    if alt.startswith("<") or not ref or not alt:
        return v
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, start = ref[1:], alt[1:], start + 1
    if (ref, alt, start) == (v.ref, v.alt, v.start):
        return v
    return replace(v, start=start, end=start + len(ref), ref=ref, alt=alt)


def beacon_type(v: Variant) -> str:
    """The Beacon variantType of the normalised allele (a padded SNP is a SNP)."""
    n = normalized(v)
    if n.variant_type in (VariantType.SNP, VariantType.MNP) and len(n.ref) == len(n.alt):
        return (VariantType.SNP if len(n.ref) == 1 else VariantType.MNP).value
    return v.variant_type.value


def _position_ok(q: VariantQuery, v: Variant) -> bool:
    if q.kind == "sequence":
        return v.start == q.start[0]
    if q.kind == "bracket":
        return q.start[0] <= v.start <= q.start[1] and q.end[0] <= v.end <= q.end[1]
    if q.kind == "range":
        return v.start < q.end[0] and v.end > q.start[0]
    return True


def _shape_ok(q: VariantQuery, v: Variant) -> bool:
    if q.reference_bases is not None and not bases_match(q.reference_bases, v.ref):
        return False
    if q.alternate_bases is not None and not bases_match(q.alternate_bases, v.alt):
        return False
    classes = q.type_classes()
    if classes is not None and beacon_type(v) not in classes:
        return False
    if q.min_length is not None and v.length < q.min_length:
        return False
    return q.max_length is None or v.length <= q.max_length


def _annotations_ok(q: VariantQuery, annots: list[Annotation], in_gene: bool) -> bool:
    if q.gene_id is not None and not in_gene:
        wanted = q.gene_id.upper()
        if not any(wanted in (a.gene.upper(), a.gene_id.upper()) for a in annots):
            return False
    if q.aminoacid_change is not None:
        wanted = short_aa_change(q.aminoacid_change).upper()
        return any(a.aa_change.upper() == wanted for a in annots)
    return True


def matches(
    q: VariantQuery,
    v: Variant,
    *,
    annotations: Callable[[Variant], list[Annotation]] | None = None,
    in_gene: bool = False,
) -> bool:
    """Whether `v` answers `q`. `in_gene`: `v` lies in the BED coordinates of `q.gene_id`."""
    if q.contig is not None and v.contig != q.contig:
        return False
    # Normalised form first; the padded VCF form a client may also send still matches.
    forms = (normalized(v), v)
    if not any(_position_ok(q, f) and _shape_ok(q, f) for f in forms):
        return False
    if not q.needs_annotations:
        return True
    annots = annotations(v) if annotations is not None else []
    return _annotations_ok(q, annots, in_gene)


def internal_id(v: Variant) -> str:
    """A stable id: `chr<contig>_<VCF POS>_<REF>_<ALT>` (the form the Beacon reference
    tools emit, so ids agree across nodes); it round-trips through /g_variants/{id}."""
    n = normalized(v)
    return f"chr{n.contig}_{n.start + 1}_{n.ref}_{n.alt}"


def parse_internal_id(text: str) -> tuple[str, int, str, str]:
    """(canonical contig, 0-based start, REF, ALT) of an id made by `internal_id`."""
    m = _ID.fullmatch(text)
    if m is None:
        raise InvalidInput(f"not a variant id of this node: {text[:100]!r}")
    pos = int(m.group(2))
    if not 1 <= pos < MAX_COORD:
        raise InvalidInput(f"position out of range in variant id {text[:100]!r}")
    return m.group(1), pos - 1, m.group(3).upper(), m.group(4)


def query_for_id(text: str) -> VariantQuery:
    contig, start, ref, alt = parse_internal_id(text)
    return VariantQuery(contig=contig, start=(start,), reference_bases=ref, alternate_bases=alt)


def hgvs_id(v: Variant) -> str:
    """`genomicHGVSId` as the Beacon reference converter writes it (`1:g.10177A>AC`):
    VCF position and alleles on the canonical contig."""
    n = normalized(v)
    return f"{n.contig}:g.{n.start + 1}{n.ref}>{n.alt}"


def vrs_location(v: Variant, assembly: str) -> dict[str, object]:
    """A VRS 1.3 SequenceLocation (interbase) on the RefSeq accession of the contig."""
    v = normalized(v)
    acc = accession(assembly, v.contig)
    sequence_id = f"refseq:{acc}" if acc else f"{assembly}:{v.contig}"
    return {
        "type": "SequenceLocation",
        "sequence_id": sequence_id,
        "interval": {
            "type": "SequenceInterval",
            "start": {"type": "Number", "value": v.start},
            "end": {"type": "Number", "value": v.end},
        },
    }


Selector = Callable[[VariantStore], Iterator[Variant]]


def _regions(
    q: VariantQuery | None, store: VariantStore, genes: GeneIndex | None
) -> list[tuple[Region, bool]]:
    """(region, inside the queried gene's BED coordinates) pairs to scan."""
    if q is not None and q.region() is not None:
        return [(q.region(), False)]  # type: ignore[list-item]
    if q is not None and q.gene_id is not None and genes is not None:
        found = genes.regions(q.gene_id)
        if found:
            return [(r, True) for r in found]
    return [(Region(c, 0, MAX_COORD), False) for c in store.contigs()]


def _annotation_index(store: VariantStore, region: Region) -> dict[AlleleKey, list[Annotation]]:
    # INFO travels with records; one sample is enough to get them (records() returns the
    # records where the requested samples have a call).
    index: dict[AlleleKey, list[Annotation]] = {}
    for batch in store.records(region, samples=store.samples[:1]):
        for rec in batch:
            parsed = parse_info(rec.info)
            for alt in rec.alts:
                key = AlleleKey(rec.contig, rec.start, rec.ref, alt)
                index[key] = for_allele(parsed, rec.ref, alt, n_alts=len(rec.alts))
    return index


def variant_annotations(v: Variant, info: Mapping[str, object], n_alts: int) -> list[Annotation]:
    return for_allele(parse_info(info), v.ref, v.alt, n_alts=n_alts)


_EXACT = re.compile(r"^[ACGT]+$")


def exact_key(q: VariantQuery | None) -> AlleleKey | None:
    """The one allele a sequence query names exactly (no wildcard), for a stats lookup."""
    if q is None or q.kind != "sequence" or q.contig is None or q.needs_annotations:
        return None
    ref, alt = q.reference_bases, q.alternate_bases
    if ref is None or alt is None or not _EXACT.match(ref) or not _EXACT.match(alt):
        return None
    return AlleleKey(q.contig, q.start[0], ref, alt)


def _stats_variant(store: VariantStore, key: AlleleKey) -> Variant | None:
    (stats,) = store.allele_stats([key])
    if stats is None or stats.ac == 0:  # as variants(): uncarried alleles are not listed
        return None
    if len(key.ref) == len(key.alt):
        kind = VariantType.SNP if len(key.ref) == 1 else VariantType.MNP
    else:
        kind = VariantType.INDEL
    return Variant(key.contig, key.start, key.start + len(key.ref), key.ref, key.alt, kind, stats)


def selector(
    q: VariantQuery | None,
    genes: Mapping[str, GeneIndex] | None = None,
    *,
    by_stats: bool = False,
) -> Selector:
    """The matching variants of a store, in store order (start, REF, ALT), each once.

    `by_stats`: an exact-allele query is answered from the precomputed allele statistics
    (cost independent of sample count; no ids or INFO, so not for record answers); an
    allele the lookup misses (a client's trimmed form of a padded allele) is still found
    by the region scan.
    """
    key = exact_key(q) if by_stats else None
    constrained = q is not None and (
        q.variant_type is not None or q.min_length is not None or q.max_length is not None)

    def run(store: VariantStore) -> Iterator[Variant]:
        hit = _stats_variant(store, key) if key is not None else None
        # The lookup found exactly the queried position and bases: only a type or length
        # bound can still reject it.
        if hit is not None and q is not None and (not constrained or matches(q, hit)):
            yield hit
            return
        yield from _scan(q, genes)(store)

    return run


def _scan(q: VariantQuery | None, by_assembly: Mapping[str, GeneIndex] | None) -> Selector:
    classes = q.type_classes() if q is not None else None
    if classes is not None and "SNP" in classes:
        classes = classes | {"MNP"}  # padded SNPs; `beacon_type` decides per allele
    types = frozenset(VariantType(c) for c in classes) if classes is not None else None

    def run(store: VariantStore) -> Iterator[Variant]:
        genes = by_assembly.get(store.assembly) if by_assembly else None
        regions = _regions(q, store, genes)
        # Overlapping gene regions can list an allele twice; one region never does.
        seen: set[AlleleKey] | None = set() if len(regions) > 1 else None
        for region, in_gene in regions:
            index: dict[AlleleKey, list[Annotation]] | None = None

            def lookup(v: Variant, region: Region = region) -> list[Annotation]:
                nonlocal index
                if v.annotations:
                    return variant_annotations(v, v.annotations, n_alts=1)
                if index is None:
                    index = _annotation_index(store, region)
                return index.get(v.key, [])

            for v in store.variants(region, variant_types=types):
                if seen is not None and v.key in seen:
                    continue
                if q is not None and not matches(q, v, annotations=lookup, in_gene=in_gene):
                    continue
                if seen is not None:
                    seen.add(v.key)
                yield v

    return run
