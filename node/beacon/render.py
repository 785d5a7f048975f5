"""Beacon v2 response envelopes (framework/json/responses) and genomicVariation records.

Pure functions from parsed requests and service results to JSON-ready dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from node.beacon.annotations import Annotation
from node.beacon.info import EntryType
from node.beacon.models import API_VERSION, BeaconRequest
from node.beacon.variants import (
    beacon_type,
    hgvs_id,
    internal_id,
    normalized,
    variant_annotations,
    vrs_location,
)
from node.domain import Record, Variant
from node.errors import NodeError
from node.names import CountPrecision, Granularity

__all__ = [
    "MAX_CASES",
    "ResultSet",
    "case_page_info",
    "error_envelope",
    "record_of_variant",
    "response_envelope",
]

ResultSet = dict[str, Any]
# caseLevelData entries per record in one response (docs/decisions.md): a common allele
# has thousands of carriers; the rest are paged through /g_variants/{id}?skip=N.
MAX_CASES = 100
# Zygosity terms from the GENO ontology (genomicVariations caseLevelData.zygosity examples).
_HET = {"id": "GENO:0000135", "label": "heterozygous"}
_HOM = {"id": "GENO:0000136", "label": "homozygous"}
_HEMI = {"id": "GENO:0000134", "label": "hemizygous"}


def _summary(req: BeaconRequest | None, entry: EntryType | None) -> dict[str, Any]:
    r = req or BeaconRequest()
    summary: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "requestedSchemas": list(r.requested_schemas),
        # skip counts records, not pages (decision recorded in docs/decisions.md).
        "pagination": {"skip": r.skip, "limit": r.limit},
        "requestedGranularity": r.granularity.value,
        "includeResultsetResponses": r.include,
        "testMode": r.test_mode,
    }
    if r.filters:
        # Filters as submitted; an alphanumeric one in its GET form (id:OPvalue).
        summary["filters"] = [f.id if f.operator is None else f"{f.id}:{f.operator}{f.value}"
                              for f in r.filters]
    if r.parameters:
        # requestParameters is a map of objects (framework requestParameters.json).
        key = "g_variant" if entry is None or entry.path == "g_variants" else entry.id
        summary["requestParameters"] = {key: dict(r.parameters)}
    return summary


def meta(
    beacon_id: str,
    req: BeaconRequest | None,
    entry: EntryType | None,
    granularity: Granularity,
) -> dict[str, Any]:
    return {
        "beaconId": beacon_id,
        "apiVersion": API_VERSION,
        "returnedSchemas": [entry.returned_schema()] if entry else [],
        "returnedGranularity": granularity.value,
        "receivedRequestSummary": _summary(req, entry),
        "testMode": bool(req and req.test_mode),
    }


def error_envelope(
    beacon_id: str, status: int, message: str, req: BeaconRequest | None = None
) -> dict[str, Any]:
    """beaconErrorResponse: the full response meta and error{errorCode, errorMessage}."""
    return {
        "meta": meta(beacon_id, req, None, Granularity.BOOLEAN),
        "error": {"errorCode": status, "errorMessage": message},
    }


def error_of(beacon_id: str, exc: NodeError, req: BeaconRequest | None = None) -> dict[str, Any]:
    return error_envelope(beacon_id, exc.http_status, exc.message, req)


def _visible(sets: Sequence[ResultSet], include: str) -> list[ResultSet]:
    if include == "ALL":
        return list(sets)
    if include == "NONE":
        return []
    want = include == "HIT"
    return [s for s in sets if s["exists"] is want]


def response_envelope(
    beacon_id: str,
    req: BeaconRequest,
    entry: EntryType,
    granularity: Granularity,
    sets: Sequence[ResultSet],
    *,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Boolean, count, resultSets or collections response, by the returned granularity.

    `sets` carry exists/resultsCount/results per dataset (or per collection entry).
    """
    exists = any(s["exists"] for s in sets)
    out: dict[str, Any] = {
        "meta": meta(beacon_id, req, entry, granularity),
        "responseSummary": {"exists": exists},
    }
    if granularity is not Granularity.BOOLEAN:
        out["responseSummary"]["numTotalResults"] = sum(s["resultsCount"] for s in sets)
        out["responseSummary"].update(_summary_precision(sets))
    if granularity is Granularity.RECORD:
        if entry.collection:
            out["response"] = {"collections": [r for s in sets for r in s["results"]]}
        else:
            out["response"] = {"resultSets": _visible(sets, req.include)}
    if info:
        out["info"] = info
    return out


def _summary_precision(sets: Sequence[ResultSet]) -> dict[str, Any]:
    """Beacon v2.2 countPrecision (and countAdjustedTo) of a total: as imprecise as its
    least precise part, so a small count hidden in a sum is never called exact."""
    stated = [s for s in sets if "countPrecision" in s]
    if not stated:
        return {}
    worst = max((CountPrecision(s["countPrecision"]) for s in stated), key=lambda p: p.rank)
    out: dict[str, Any] = {"countPrecision": worst}
    adjusted = [int(s["countAdjustedTo"]) for s in stated if "countAdjustedTo" in s]
    if adjusted:
        out["countAdjustedTo"] = max(adjusted)
    return out


def result_set(
    dataset_id: str, count: int, results: list[dict[str, Any]], **extra: Any
) -> ResultSet:
    return {"id": dataset_id, "setType": "dataset", "exists": count > 0,
            "resultsCount": count, "results": results, **extra}


def _zygosity(alleles: tuple[int | None, ...], index: int) -> dict[str, str] | None:
    called = [a for a in alleles if a is not None]
    copies = sum(1 for a in called if a == index)
    if copies == 0:
        return None
    if len(called) == 1:
        return _HEMI
    return _HOM if copies == len(called) else _HET


def case_level(
    v: Variant,
    records: Sequence[Record],
    biosample_of: Callable[[str], tuple[str | None, str | None]],
) -> list[dict[str, Any]]:
    """caseLevelData: one entry per sample carrying the allele."""
    out = []
    for rec in records:
        index = rec.alts.index(v.alt) + 1
        for call in rec.calls:
            zygosity = _zygosity(call.alleles, index)
            if zygosity is None:
                continue
            biosample, individual = biosample_of(call.sample)
            entry: dict[str, Any] = {"biosampleId": biosample or call.sample, "zygosity": zygosity}
            if individual:
                entry["individualId"] = individual
            out.append(entry)
    return out


def _molecular(annots: Sequence[Annotation]) -> dict[str, Any] | None:
    if not annots:
        return None
    genes = sorted({a.gene for a in annots if a.gene})
    effects = sorted({e for a in annots for e in a.effects})
    changes = sorted({a.aa_change for a in annots if a.aa_change})
    out: dict[str, Any] = {}
    if genes:
        out["geneIds"] = genes
    if effects:
        # Sequence Ontology terms by label; ids are not carried by VEP/SnpEff output.
        out["molecularEffects"] = [{"id": f"SO:{e}", "label": e} for e in effects]
    if changes:
        out["aminoacidChanges"] = changes
    return out or None


def record_of_variant(
    v: Variant,
    *,
    assembly: str,
    dataset_id: str,
    records: Sequence[Record],
    biosample_of: Callable[[str], tuple[str | None, str | None]],
    case_skip: int = 0,
) -> tuple[dict[str, Any], int]:
    """A genomicVariations default-schema record of one allele in one dataset, with the
    carriers from `case_skip` on (at most MAX_CASES of them), and the number of carriers."""
    s = v.stats
    shown = normalized(v)
    freq = {"population": dataset_id, "alleleFrequency": s.af,
            "alleleCount": s.ac, "alleleNumber": s.an,
            "alleleCountHomozygous": s.n_hom_alt, "alleleCountHeterozygous": s.n_het}
    out: dict[str, Any] = {
        "variantInternalId": internal_id(v),
        "variation": {"variantType": beacon_type(v), "referenceBases": shown.ref,
                      "alternateBases": shown.alt, "location": vrs_location(v, assembly)},
        "identifiers": {"genomicHGVSId": hgvs_id(v)},
        "frequencyInPopulations": [{
            "source": f"dataset {dataset_id}", "sourceReference": dataset_id,
            "version": assembly, "frequencies": [freq]}],
    }
    if any(i.startswith("rs") for i in v.ids):
        out["identifiers"]["variantAlternativeIds"] = [
            {"id": f"dbSNP:{i}", "reference": f"https://www.ncbi.nlm.nih.gov/snp/{i}"}
            for i in v.ids if i.startswith("rs")]
    annots = [a for rec in records[:1]
              for a in variant_annotations(v, rec.info, n_alts=len(rec.alts))]
    molecular = _molecular(annots)
    if molecular:
        out["molecularAttributes"] = molecular
    cases = case_level(v, records, biosample_of)
    if cases[case_skip : case_skip + MAX_CASES]:
        out["caseLevelData"] = cases[case_skip : case_skip + MAX_CASES]
    return out, len(cases)


def case_page_info(pages: Sequence[tuple[str, int]], skip: int) -> dict[str, Any]:
    """resultSet `info.caseLevelData`: the records whose carriers go on past this page,
    with the URL (relative to the API root) of each one's next page."""
    more = [(vid, total) for vid, total in pages if total > skip + MAX_CASES]
    if not more:
        return {}
    return {"caseLevelData": {
        "maxPerRecord": MAX_CASES,
        "skip": skip,
        "truncated": [
            {"variantInternalId": vid, "carriers": total,
             "nextPage": f"g_variants/{vid}?requestedGranularity=record"
                         f"&skip={skip + MAX_CASES}"}
            for vid, total in more],
    }}
