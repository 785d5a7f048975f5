"""RefSeq accessions of the primary assembly chromosomes, per assembly (facts, no logic).

Beacon v2 (genomicVariations requestParameters, `referenceName`) prefers RefSeq
accessions such as `NC_000017.11`; `17` or `chr17` together with `assemblyId` are
accepted too. The version suffix pins the assembly: NC_000001.10 is GRCh37,
NC_000001.11 is GRCh38 (NCBI Assembly GCF_000001405.13 / GCF_000001405.26).
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType
from typing import Final

from node.domain import normalize_contig
from node.errors import InvalidInput

__all__ = ["ASSEMBLY_ALIASES", "accession", "canonical_assembly", "resolve_reference"]

_GRCH37: Final = {
    "1": "NC_000001.10", "2": "NC_000002.11", "3": "NC_000003.11", "4": "NC_000004.11",
    "5": "NC_000005.9", "6": "NC_000006.11", "7": "NC_000007.13", "8": "NC_000008.10",
    "9": "NC_000009.11", "10": "NC_000010.10", "11": "NC_000011.9", "12": "NC_000012.11",
    "13": "NC_000013.10", "14": "NC_000014.8", "15": "NC_000015.9", "16": "NC_000016.9",
    "17": "NC_000017.10", "18": "NC_000018.9", "19": "NC_000019.9", "20": "NC_000020.10",
    "21": "NC_000021.8", "22": "NC_000022.10", "X": "NC_000023.10", "Y": "NC_000024.9",
    "MT": "NC_012920.1",
}
_GRCH38: Final = {
    "1": "NC_000001.11", "2": "NC_000002.12", "3": "NC_000003.12", "4": "NC_000004.12",
    "5": "NC_000005.10", "6": "NC_000006.12", "7": "NC_000007.14", "8": "NC_000008.11",
    "9": "NC_000009.12", "10": "NC_000010.11", "11": "NC_000011.10", "12": "NC_000012.12",
    "13": "NC_000013.11", "14": "NC_000014.9", "15": "NC_000015.10", "16": "NC_000016.10",
    "17": "NC_000017.11", "18": "NC_000018.10", "19": "NC_000019.10", "20": "NC_000020.11",
    "21": "NC_000021.9", "22": "NC_000022.11", "X": "NC_000023.11", "Y": "NC_000024.10",
    "MT": "NC_012920.1",
}
_BY_ASSEMBLY: Final = MappingProxyType({"GRCh37": _GRCH37, "GRCh38": _GRCH38})

# Names clients send for the two assemblies (UCSC, 1000 Genomes, Ensembl, NCBI).
ASSEMBLY_ALIASES: Final = MappingProxyType(
    {
        "grch37": "GRCh37", "hg19": "GRCh37", "b37": "GRCh37", "hs37d5": "GRCh37",
        "grch37.p13": "GRCh37", "gcf_000001405.13": "GRCh37", "gca_000001405.1": "GRCh37",
        "grch38": "GRCh38", "hg38": "GRCh38", "grch38.p14": "GRCh38",
        "gcf_000001405.26": "GRCh38", "gca_000001405.15": "GRCh38",
    }
)

# Accession (without version) → (chromosome, {version: assembly}); the MT accession is
# shared by both assemblies (rCRS), so it never decides the assembly on its own.
_BY_ACCESSION: Final = {
    acc: (chrom, asm) for asm, table in _BY_ASSEMBLY.items() for chrom, acc in table.items()
}


def canonical_assembly(name: str) -> str:
    """The node's name for an assembly id a client sent; unknown names are kept as given.

    >>> canonical_assembly("hg19"), canonical_assembly("GRCh38")
    ('GRCh37', 'GRCh38')
    """
    return ASSEMBLY_ALIASES.get(name.strip().lower(), name.strip())


def accession(assembly: str, contig: str) -> str | None:
    """The RefSeq accession of a canonical contig in an assembly, None when unknown."""
    table = _BY_ASSEMBLY.get(canonical_assembly(assembly))
    return None if table is None else table.get(normalize_contig(contig))


@lru_cache(maxsize=4096)  # pure; bounded, as both come from requests (errors are not kept)
def resolve_reference(name: str, assembly: str | None) -> tuple[str, str | None]:
    """(canonical contig, assembly implied by the name or given) for a `referenceName`.

    A RefSeq accession implies its assembly; a conflicting `assemblyId` is an error rather
    than silently answering about another genome build.
    """
    hit = _BY_ACCESSION.get(name.strip())
    given = canonical_assembly(assembly) if assembly else None
    if hit is None:
        if name.strip().upper().startswith(("NC_", "NT_", "NW_")):
            raise InvalidInput(f"unknown RefSeq accession {name!r} in referenceName")
        return normalize_contig(name.strip()), given
    chrom, implied = hit
    if chrom == "MT":
        return chrom, given
    if given is not None and given != implied:
        raise InvalidInput(f"referenceName {name} is on {implied}, but assemblyId is {assembly}")
    return chrom, implied
