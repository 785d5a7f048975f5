"""The header of a VCF exported from the store: the headers the dataset keeps, merged.

TileDB-VCF keeps each sample's header in `metadata/vcf_headers` (htslib's text of the
sample's input, the #CHROM line without samples; fednode writes it alike), so an export
can carry the input's own lines: INFO/FORMAT types and numbers, contig lengths,
`##reference`, descriptions. Inputs of one dataset may differ; they are merged as
`bcftools merge` merges headers: the first header's lines in order, then each line of
the others that declares something new (a structured line by its key and ID, any other
line by its text; one `##fileformat`).

>>> a = '##fileformat=VCFv4.3\\n##INFO=<ID=DP,Number=1,Type=Integer,Description="D">\\n#CHROM'
>>> b = '##fileformat=VCFv4.2\\n##INFO=<ID=DP,Number=1,Type=Float,Description="X">\\n' \\
...     '##INFO=<ID=AF,Number=A,Type=Float,Description="F">\\n#CHROM'
>>> print(merged_header([a, b], samples=["S1"], contigs=["1"]))  # doctest: +NORMALIZE_WHITESPACE
##fileformat=VCFv4.3
##INFO=<ID=DP,Number=1,Type=Integer,Description="D">
##INFO=<ID=AF,Number=A,Type=Float,Description="F">
##contig=<ID=1>
#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT S1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import tiledb

from node.domain import normalize_contig
from node.store.dataset.dataset_state import header_texts

__all__ = ["HeaderSource", "merged_header", "stored_headers"]

_STRUCTURED = re.compile(r"^##([^=]+)=<ID=([^,>]+)")
_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")


@runtime_checkable
class HeaderSource(Protocol):
    """A store that keeps its inputs' VCF headers (per sample)."""

    def vcf_headers(self) -> Mapping[str, str]: ...


def stored_headers(array: tiledb.Array) -> dict[str, str]:
    """Each sample's header text from an open `metadata/vcf_headers` array; samples of
    one header share one string (read a range of samples at a time, `header_texts`: the
    array holds a copy per sample, 1.6 GB for 100,000 samples of 16 KB)."""
    texts: dict[bytes, str] = {}
    out: dict[str, str] = {}
    for sample, digest, text in header_texts(array):
        if text is not None:
            texts[digest] = text
        out[sample] = texts[digest]
    return out


def merged_header(headers: Iterable[str], *, samples: Sequence[str], contigs: Sequence[str]) -> str:
    """One header of `headers` (in order), with a #CHROM line naming `samples`; a contig of
    `contigs` no header declares under any of its names (`chr1`, `1`) is declared."""
    lines: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for header in dict.fromkeys(headers):  # equal headers (one input's samples) once
        for line in header.splitlines():
            key = _key(line)
            if key is None or key in seen:
                continue
            seen.add(key)
            lines.append(line)
    declared = {normalize_contig(k[1]) for k in seen if k[0] == "contig"}
    missing = [c for c in dict.fromkeys(contigs) if normalize_contig(c) not in declared]
    at = max(
        (i + 1 for i, ln in enumerate(lines) if ln.startswith("##contig=")), default=len(lines)
    )
    lines[at:at] = [f"##contig=<ID={c}>" for c in missing]
    columns = [*_COLUMNS, "FORMAT", *samples] if samples else list(_COLUMNS)
    return "\n".join([*lines, "\t".join(columns)]) + "\n"


def _key(line: str) -> tuple[str, ...] | None:
    """What a meta line declares; None for what is not a meta line (#CHROM, blanks)."""
    if not line.startswith("##"):
        return None
    if line.startswith("##fileformat="):
        return ("fileformat",)
    structured = _STRUCTURED.match(line)
    return (structured.group(1), structured.group(2)) if structured else ("line", line)
