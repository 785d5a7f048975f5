"""`fednode federate count`: parse the question, ask the federation, print the answer.

Variants are `CHROM:POS:REF:ALT` (VCF POS, 1-based) or `CHROM-POS-REF-ALT`; a --file
holds one per line, or is a VCF (`.vcf`, `.vcf.gz`: CHROM, POS, REF, ALT columns, every
ALT). A --region is `CHROM:START-END`, 1-based inclusive as in samtools/bcftools.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from node.domain import AlleleKey, Region, normalize_contig
from node.errors import InvalidInput
from node.names import CountPrecision
from node.peer.coordinator import Coordinator, FederatedIndividuals, FederatedStats, Interval
from node.peer.peers import PeersFile

__all__ = [
    "parse_region",
    "parse_variant",
    "read_variants",
    "render_individuals",
    "render_json",
    "render_table",
    "run",
    "run_individuals",
]

_VARIANT = re.compile(r"^([\w.]+)[:-](\d+)[:-]([ACGTNacgtn]+)[:-]([ACGTNacgtn]+|<[^>]+>)$")
_REGION = re.compile(r"^([\w.]+):([\d,]+)-([\d,]+)$")
MAX_VARIANTS = 1_000_000


def parse_variant(text: str) -> AlleleKey:
    match = _VARIANT.match(text.strip())
    if match is None or int(match[2]) < 1:
        raise InvalidInput(f"bad variant {text!r}: expected CHROM:POS:REF:ALT (POS 1-based)")
    alt = match[4] if match[4].startswith("<") else match[4].upper()
    return AlleleKey(normalize_contig(match[1]), int(match[2]) - 1, match[3].upper(), alt)


def parse_region(text: str) -> Region:
    match = _REGION.match(text.strip())
    if match is None:
        raise InvalidInput(f"bad region {text!r}: expected CHROM:START-END (1-based)")
    start, end = (int(match[i].replace(",", "")) for i in (2, 3))
    if start < 1 or end < start:
        raise InvalidInput(f"bad region {text!r}: START must be >= 1 and <= END")
    return Region(normalize_contig(match[1]), start - 1, end)


def read_variants(path: Path) -> list[AlleleKey]:
    try:
        keys = list(_variants_in(path))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"{path}: not a text or gzipped text file") from exc
    return keys


def _variants_in(path: Path) -> Iterator[AlleleKey]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as lines:
        for n, line in enumerate(lines, 1):
            if n > MAX_VARIANTS:
                raise InvalidInput(f"{path}: more than {MAX_VARIANTS} lines")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 5:
                yield parse_variant(fields[0])
                continue
            for alt in fields[4].split(","):  # a VCF body line
                yield parse_variant(f"{fields[0]}:{fields[1]}:{fields[3]}:{alt}")


async def run(
    peers: PeersFile,
    *,
    variants: Sequence[AlleleKey] = (),
    region: Region | None = None,
    deadline_s: float | None = None,
) -> FederatedStats:
    coordinator = Coordinator(peers)
    try:
        if region is not None:
            return await coordinator.region_stats(region, deadline_s=deadline_s)
        return await coordinator.allele_stats(variants, deadline_s=deadline_s)
    finally:
        await coordinator.close()


async def run_individuals(
    peers: PeersFile, variants: Sequence[AlleleKey], *, deadline_s: float | None = None
) -> FederatedIndividuals:
    coordinator = Coordinator(peers)
    try:
        return await coordinator.count_individuals(variants, deadline_s=deadline_s)
    finally:
        await coordinator.close()


def render_individuals(result: FederatedIndividuals, *, as_json: bool) -> str:
    """Individuals carrying every variant asked: the total, then per node and dataset."""
    nodes = [
        {
            "id": n.node_id,
            "status": n.status,
            "message": n.message,
            "elapsedSeconds": round(n.elapsed_s, 4),
            "datasets": list(n.datasets),
        }
        for n in result.nodes
    ]
    if as_json:
        doc = {
            "complete": result.complete,
            "elapsedSeconds": round(result.elapsed_s, 4),
            "variants": [_variant_name(k) for k in result.keys],
            "individuals": _interval_json(result.total),
            "datasets": [
                {"node": node, "dataset": ds, "individuals": _interval_json(count)}
                for node, ds, count in result.parts
            ],
            "nodes": nodes,
        }
        return json.dumps(doc, indent=2)
    rows: list[tuple[str, ...]] = [("NODE", "DATASET", "INDIVIDUALS")]
    rows += [(node, ds, _show(count)) for node, ds, count in result.parts]
    rows.append(("total", "", _show(result.total)))
    status = [("NODE", "STATUS", "SECONDS", "MESSAGE")]
    status += [(n.node_id, n.status, f"{n.elapsed_s:.3f}", n.message or "") for n in result.nodes]
    answered = sum(n.status == "OK" for n in result.nodes)
    footer = f"individuals carrying all {len(result.keys)} variant(s); "
    footer += f"{answered}/{len(result.nodes)} nodes answered"
    if not result.complete:
        footer += "; totals are partial (failed nodes not included)"
    return "\n".join([_columns(rows), "", _columns(status), "", footer])


def _show(count: Interval) -> str:
    if count.exact:
        return str(count.value)
    upper = "inf" if count.upper is None else str(count.upper)
    return f"{count.value} [{count.lower}-{upper}]"


def _variant_name(key: AlleleKey) -> str:
    return f"{key.contig}:{key.start + 1}:{key.ref}:{key.alt}"


def render_table(result: FederatedStats) -> str:
    rows: list[tuple[str, ...]] = [("VARIANT", "AC", "AN", "AF", "CARRIERS", "HOM_ALT", "EXISTS")]
    for t in result.alleles:
        af = "." if t.frequency is None else f"{t.frequency:.4g}"
        if t.frequency is not None and t.frequency_precision is not CountPrecision.EXACT:
            af = f"~{af}"
        counts = (t.allele_count, t.allele_number, t.carriers, t.homozygotes)
        rows.append(
            (
                _variant_name(t.key),
                *(_show(c) for c in counts[:2]),
                af,
                *(_show(c) for c in counts[2:]),
                "yes" if t.exists else "no",
            )
        )
    nodes: list[tuple[str, ...]] = [("NODE", "STATUS", "SECONDS", "DATASETS", "MESSAGE")]
    nodes += [
        (n.node_id, n.status, f"{n.elapsed_s:.3f}", ",".join(n.datasets) or "-", n.message or "")
        for n in result.nodes
    ]
    answered = sum(n.status == "OK" for n in result.nodes)
    footer = f"{answered}/{len(result.nodes)} nodes answered"
    if not result.complete:
        footer += "; totals are partial (failed nodes not included)"
    return "\n".join([_columns(rows), "", _columns(nodes), "", footer])


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _interval_json(count: Interval) -> dict[str, Any]:
    out: dict[str, Any] = {
        "value": count.value,
        "lower": count.lower,
        "upper": count.upper,
        "precision": count.precision,
    }
    if count.unknown:  # datasets that did not know this count: the total is a bound
        out["unknownIn"] = count.unknown
    return out


def render_json(result: FederatedStats) -> str:
    doc = {
        "complete": result.complete,
        "elapsedSeconds": round(result.elapsed_s, 4),
        "totals": [
            {
                "variant": _variant_name(t.key),
                "exists": t.exists,
                "alleleCount": _interval_json(t.allele_count),
                "alleleNumber": _interval_json(t.allele_number),
                "alleleFrequency": t.frequency,
                "alleleFrequencyPrecision": t.frequency_precision,
                "carriers": _interval_json(t.carriers),
                "homozygotes": _interval_json(t.homozygotes),
            }
            for t in result.alleles
        ],
        "nodes": [
            {
                "id": n.node_id,
                "status": n.status,
                "message": n.message,
                "elapsedSeconds": round(n.elapsed_s, 4),
                "datasets": list(n.datasets),
            }
            for n in result.nodes
        ],
    }
    return json.dumps(doc, indent=2)
