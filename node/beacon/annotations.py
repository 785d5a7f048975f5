"""Functional annotations carried in the ingested VCF: VEP `CSQ` and SnpEff `ANN`, and an
optional gene-coordinates BED file.

The store hands records' INFO over without the VCF header, so the field order is the
tools' defaults: SnpEff ANN (the fixed "VCF annotation format" 1.0: Allele | Annotation |
Annotation_Impact | Gene_Name | Gene_ID | ... | HGVS.p at 10) and VEP's default CSQ
(Allele | Consequence | IMPACT | SYMBOL | Gene | ... | HGVSp at 11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from node.domain import Region, normalize_contig
from node.errors import InvalidInput

__all__ = ["Annotation", "GeneIndex", "for_allele", "parse_info", "short_aa_change"]


@dataclass(frozen=True, slots=True)
class Annotation:
    allele: str
    gene: str
    gene_id: str
    effects: tuple[str, ...]
    impact: str
    aa_change: str  # short one-letter form, e.g. "R534Q"; "" when not coding


# field indexes: allele, effects, impact, gene symbol, gene id, HGVSp
_ANN = (0, 1, 2, 3, 4, 10)
_CSQ = (0, 1, 2, 3, 4, 11)

_THREE_TO_ONE = {
    "Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q", "Glu": "E",
    "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K", "Met": "M", "Phe": "F",
    "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W", "Tyr": "Y", "Val": "V", "Ter": "*",
    "Sec": "U", "Pyl": "O", "Xaa": "X",
}
_THREE = re.compile("|".join(_THREE_TO_ONE))


def short_aa_change(text: str) -> str:
    """An amino-acid change in the one-letter form Beacon examples use (`V600E`).

    >>> short_aa_change("ENSP00000356770.3:p.Arg534Gln"), short_aa_change("p.V600E")
    ('R534Q', 'V600E')
    """
    change = text.rsplit(":", 1)[-1].strip()
    change = change.removeprefix("p.").strip("()")
    return _THREE.sub(lambda m: _THREE_TO_ONE[m.group(0)], change).replace("%3D", "=")


def _entries(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []


def _parse_entry(entry: str, idx: tuple[int, ...]) -> Annotation | None:
    fields = entry.split("|")
    if len(fields) <= max(idx[:5]):
        return None

    def get(i: int) -> str:
        return fields[i].strip() if i < len(fields) else ""

    effects = tuple(e for e in get(idx[1]).split("&") if e)
    return Annotation(
        get(idx[0]), get(idx[3]), get(idx[4]), effects, get(idx[2]),
        short_aa_change(get(idx[5])) if get(idx[5]) else "",
    )


def parse_info(info: Mapping[str, object]) -> list[Annotation]:
    """Every ANN and CSQ entry of one record's INFO."""
    out: list[Annotation] = []
    for key, idx in (("ANN", _ANN), ("CSQ", _CSQ)):
        for entry in _entries(info.get(key)):
            parsed = _parse_entry(entry, idx)
            if parsed is not None:
                out.append(parsed)
    return out


def _vep_allele(ref: str, alt: str) -> str:
    # VEP drops the shared first base of indels and writes an empty allele as "-".
    if ref and alt and ref[0] == alt[0] and len(ref) != len(alt):
        return alt[1:] or "-"
    return alt


def for_allele(
    annotations: Sequence[Annotation], ref: str, alt: str, *, n_alts: int
) -> list[Annotation]:
    """The entries that describe `alt` (all of them at a single-ALT record)."""
    if n_alts == 1:
        return list(annotations)
    wanted = {alt, _vep_allele(ref, alt)}
    return [a for a in annotations if a.allele in wanted]


class GeneIndex:
    """Gene symbol or id → regions, from a BED file (chrom, start, end, name[, ...]).

    BED is 0-based half-open, as the node's regions.
    """

    def __init__(self, genes: Mapping[str, tuple[Region, ...]]) -> None:
        self._genes = {k.upper(): v for k, v in genes.items()}

    @classmethod
    def load(cls, path: Path) -> GeneIndex:
        genes: dict[str, list[Region]] = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.split("\t")
            if len(cols) < 4 or not cols[1].isdigit() or not cols[2].isdigit():
                raise InvalidInput(f"{path}:{n}: not a BED line with a name column")
            region = Region(normalize_contig(cols[0]), int(cols[1]), int(cols[2]))
            genes.setdefault(cols[3].strip().upper(), []).append(region)
        return cls({k: tuple(v) for k, v in genes.items()})

    def regions(self, gene: str) -> tuple[Region, ...]:
        return self._genes.get(gene.upper(), ())
