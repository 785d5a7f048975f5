"""Checks of an ingest's inputs against the dataset, before anything is written."""

from __future__ import annotations

from collections.abc import Sequence

from node.errors import Conflict, IngestError, InvalidInput
from node.store.ingest.vcfio import VcfInput

__all__ = ["check_assembly", "check_samples"]

_BAD_SAMPLE_CHARS = set("'\"\\\n\t\0")


def check_samples(
    inputs: Sequence[VcfInput], present: Sequence[str], *, replace: bool
) -> tuple[list[str], list[str]]:
    """(samples added, samples replaced); names must be unique and usable in a condition."""
    seen: dict[str, str] = {}
    for inp in inputs:
        if not inp.samples:
            raise IngestError("no samples (sites-only VCFs cannot be ingested)", path=inp.name)
        for sample in inp.samples:
            if _BAD_SAMPLE_CHARS & set(sample):
                raise IngestError(
                    f"unsupported characters in sample name {sample!r}", path=inp.name
                )
            if sample in seen:
                raise Conflict(f"sample {sample!r} appears in both {seen[sample]} and {inp.name}")
            seen[sample] = inp.name
    existing = [s for s in seen if s in set(present)]
    if existing and not replace:
        raise Conflict(f"sample {existing[0]!r} is already in the dataset (use replace)")
    return [s for s in seen if s not in set(existing)], existing


def check_assembly(
    inputs: Sequence[VcfInput], requested: str | None, current: str, *, empty: bool
) -> str:
    """The dataset's assembly after these inputs (an empty dataset takes theirs)."""
    for inp in inputs:
        declared = inp.assembly or requested or "GRCh38"
        if requested and declared != requested:
            raise IngestError(f"header declares {declared}, not {requested}", path=inp.name)
        if declared != current and not empty:
            raise InvalidInput(
                f"{inp.name}: assembly {declared} does not match the dataset's {current}"
            )
        current = declared if empty else current
    return current
