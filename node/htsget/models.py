"""htsget request values and protocol constants (htsget 1.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from node.reads.layout import Query

__all__ = [
    "CONTENT_TYPE",
    "FORMATS",
    "READ_FIELDS",
    "HtsgetRequest",
    "Kind",
]

# htsget §Response JSON: the ticket's media type.
CONTENT_TYPE = "application/vnd.ga4gh.htsget.v1.3.0+json"
Kind = Literal["reads", "variants"]
FORMATS: dict[str, tuple[str, ...]] = {"reads": ("BAM", "CRAM"), "variants": ("VCF", "BCF")}
# htsget §Query parameters: fields (SAM v1 §1.4 column names).
READ_FIELDS = frozenset(
    {"QNAME", "FLAG", "RNAME", "POS", "MAPQ", "CIGAR", "RNEXT", "PNEXT", "TLEN", "SEQ", "QUAL"}
)


@dataclass(frozen=True, slots=True)
class HtsgetRequest:
    """A validated request. `regions` empty: the whole file."""

    kind: Kind
    id: str
    format: str
    header_only: bool = False
    regions: tuple[Query, ...] = ()
    fields: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    notags: tuple[str, ...] = ()
