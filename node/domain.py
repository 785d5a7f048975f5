"""Frozen value objects shared by every layer.

Coordinates are 0-based and half-open everywhere inside the node (VCF POS 100 with REF
"A" is start=99, end=100); protocols convert only at their edges.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from node.errors import InvalidRange
from node.names import VariantType

__all__ = [
    "AlleleKey",
    "AlleleStats",
    "Call",
    "Filter",
    "Principal",
    "Record",
    "Region",
    "Variant",
    "normalize_contig",
]

_CHR_PREFIX = re.compile(r"^chr", re.IGNORECASE)
_MITO = {"M", "MT"}


@lru_cache(maxsize=1024)  # bounded: contig names come from requests
def normalize_contig(name: str) -> str:
    """The node's canonical contig name: no `chr` prefix, mitochondrion as `MT`.

    >>> normalize_contig("chr1"), normalize_contig("1"), normalize_contig("chrM")
    ('1', '1', 'MT')
    """
    bare = _CHR_PREFIX.sub("", name)
    return "MT" if bare.upper() in _MITO else bare


@dataclass(frozen=True, slots=True)
class Region:
    """A 0-based half-open interval on a contig (canonical contig name)."""

    contig: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise InvalidRange(f"invalid region {self.contig}:{self.start}-{self.end}")


@dataclass(frozen=True, slots=True)
class AlleleKey:
    """One allele at one position: canonical contig, 0-based start, REF and one ALT, as in VCF."""

    contig: str
    start: int
    ref: str
    alt: str


@dataclass(frozen=True, slots=True)
class AlleleStats:
    """Per-allele statistics over the called samples of one dataset.

    ac: copies of this ALT among called alleles; an: called alleles at the site;
    n_hom_alt: samples homozygous for this ALT; n_het: samples carrying it with another
    called allele; n_carriers: samples with at least one copy; n_called: samples with at
    least one called allele at the site.
    """

    ac: int
    an: int
    n_hom_alt: int
    n_het: int
    n_carriers: int
    n_called: int

    @property
    def af(self) -> float:
        return self.ac / self.an if self.an else 0.0

    def __add__(self, other: AlleleStats) -> AlleleStats:
        return AlleleStats(
            self.ac + other.ac,
            self.an + other.an,
            self.n_hom_alt + other.n_hom_alt,
            self.n_het + other.n_het,
            self.n_carriers + other.n_carriers,
            self.n_called + other.n_called,
        )


ZERO_STATS = AlleleStats(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Variant:
    """One ALT allele at one site, with its statistics in one dataset.

    start/end are 0-based half-open over REF (end = start + len(REF), or INFO/END for
    symbolic alleles). `contig` is canonical; `source_contig` is the name in the input.
    """

    contig: str
    start: int
    end: int
    ref: str
    alt: str
    variant_type: VariantType
    stats: AlleleStats
    ids: tuple[str, ...] = ()
    source_contig: str = ""
    annotations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def key(self) -> AlleleKey:
        return AlleleKey(self.contig, self.start, self.ref, self.alt)

    @property
    def length(self) -> int:
        """Beacon's variant length: the larger of the REF span and the ALT length."""
        if self.alt.startswith("<"):
            return self.end - self.start
        return max(len(self.ref), len(self.alt))


@dataclass(frozen=True, slots=True)
class Call:
    """One sample's genotype at a record: allele indexes (None = missing), phasing, FORMAT."""

    sample: str
    alleles: tuple[int | None, ...]
    phased: bool
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """A VCF record of one or more samples, as returned by record queries."""

    contig: str
    start: int
    end: int
    ref: str
    alts: tuple[str, ...]
    ids: tuple[str, ...]
    qual: float | None
    filters: tuple[str, ...]
    info: Mapping[str, object]
    calls: tuple[Call, ...]
    source_contig: str = ""


@dataclass(frozen=True, slots=True)
class Filter:
    """A Beacon v2 filter, protocol-independent.

    Ontology filter: `id` is a CURIE, `operator` is None. Alphanumeric filter: `operator`
    in =,<,>,!,>=,<= with a `value` (`%` is a wildcard). Custom filter: an id only, as
    listed by the catalog's filtering terms.
    """

    id: str
    operator: str | None = None
    value: str | None = None
    include_descendants: bool = True
    similarity: str = "exact"
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as established from a verified GA4GH Passport (or nobody).

    `controlled_grants` holds dataset ids (not visa values) the passport grants;
    `expires_at` is the instant from which the principal is refused (401, never
    downgraded: node/auth/policy.py): the earliest `exp` among the tokens the decision
    relied on (Passport v1 §Visa Expiry: the minimum across visas used) plus the leeway
    the verifier accepted them with. The leeway is added there only, never again by its
    readers. None: no expiry (anonymous, mTLS peers). Anonymous: all empty.
    """

    subject: str | None
    issuer: str | None
    registered: bool
    controlled_grants: frozenset[str]
    expires_at: int | None

    @classmethod
    def anonymous(cls) -> Principal:
        return _ANONYMOUS  # immutable: one instance serves every anonymous request

    @property
    def is_anonymous(self) -> bool:
        return self.subject is None

    @property
    def requester_id(self) -> str:
        """A stable pseudonymous key for budgets and audit: never the raw subject.

        Anonymous requesters share "anonymous"; transports may key them by client instead.
        """
        if self.subject is None or self.issuer is None:
            return "anonymous"
        # A NUL separator: neither iss nor sub can make two pairs collide.
        raw = f"{self.issuer}\x00{self.subject}".encode()
        return "sub:" + hashlib.sha256(raw).hexdigest()[:32]


_ANONYMOUS = Principal(None, None, False, frozenset(), None)
