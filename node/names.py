"""Vocabularies used across the node, in one place."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = [
    "ASSEMBLIES",
    "CountPrecision",
    "Granularity",
    "ReadsFormat",
    "SecurityLevel",
    "VariantType",
    "VariantsFormat",
]


class Granularity(StrEnum):
    """Beacon v2 granularities, ordered from least to most revealing."""

    BOOLEAN = "boolean"
    COUNT = "count"
    RECORD = "record"

    @property
    def rank(self) -> int:
        return _GRANULARITY_RANK[self]


_GRANULARITY_RANK = {Granularity.BOOLEAN: 0, Granularity.COUNT: 1, Granularity.RECORD: 2}


class CountPrecision(StrEnum):
    """Beacon v2.2 `countPrecision`: how a reported count relates to the true one."""

    EXACT = "exact"
    IMPRECISE = "imprecise"  # adjusted (small counts raised to the threshold) or noised
    ROUNDED = "rounded"  # rounded up to a multiple of `countAdjustedTo`

    @property
    def rank(self) -> int:
        """How far from the true count: a total is as imprecise as its worst part."""
        return _PRECISION_RANK[self]


_PRECISION_RANK = {CountPrecision.EXACT: 0, CountPrecision.ROUNDED: 1,
                   CountPrecision.IMPRECISE: 2}


class SecurityLevel(StrEnum):
    """Beacon v2 `securityAttributes.securityLevels`."""

    PUBLIC = "PUBLIC"
    REGISTERED = "REGISTERED"
    CONTROLLED = "CONTROLLED"


class VariantType(StrEnum):
    """Variant classes as the store reports them (Beacon `variantType` vocabulary)."""

    SNP = "SNP"
    MNP = "MNP"
    INDEL = "INDEL"
    DEL = "DEL"
    INS = "INS"
    DUP = "DUP"
    INV = "INV"
    CNV = "CNV"
    BND = "BND"
    SV = "SV"
    REF = "REF"  # gVCF reference block / <NON_REF>-only record; never returned as a variant


ReadsFormat = Literal["BAM", "CRAM"]
VariantsFormat = Literal["VCF", "BCF"]

# Assemblies the node knows how to name; RefSeq accessions for their primary chromosomes
# are in node/refseq.py.
ASSEMBLIES = ("GRCh37", "GRCh38")
