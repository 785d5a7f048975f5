"""Beacon v2 requests (GET query strings and POST bodies) → `BeaconRequest`.

Every malformed value raises `InvalidInput` naming the parameter; nothing here knows HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from node.beacon.models import (
    DEFAULT_LIMIT,
    MAX_FILTERS,
    MAX_LIMIT,
    BeaconRequest,
    FilterBody,
    RequestBody,
)
from node.beacon.refseq import resolve_reference
from node.beacon.variants import MAX_COORD, VariantQuery
from node.domain import Filter
from node.errors import InvalidInput, InvalidRange
from node.names import Granularity

__all__ = ["parse_body", "parse_filters_param", "parse_get", "parse_variant_parameters"]

_BASES = re.compile(r"^[ACGTUNRYSWKMBDHV\-\.]*$", re.IGNORECASE)
_MAX_BASES = 10_000
_MAX_TEXT = 200
_HGVS_SHORT = re.compile(r"^([^:]+):g\.([0-9]+)([ACGTN]+)>([ACGTN]+)$", re.IGNORECASE)
# Only ASCII digits: `int()` also takes full-width digits, `_` separators and a sign
# (full-width `10176`, `1_0176`, `+10176`); no Beacon integer parameter is negative.
_DIGITS = re.compile(r"[0-9]+")

# GET parameters of every entry-type endpoint (Beacon v2 framework OpenAPI, components).
_COMMON_GET = frozenset(
    {"requestedGranularity", "includeResultsetResponses", "skip", "limit", "testMode",
     "filters", "datasetIds", "requestedSchema"}
)
# genomicVariations requestParameters (models/.../genomicVariations/requestParameters.json).
VARIANT_PARAMETERS = frozenset(
    {"referenceName", "start", "end", "referenceBases", "alternateBases", "variantType",
     "variantMinLength", "variantMaxLength", "assemblyId", "geneId", "aminoacidChange",
     "genomicAlleleShortForm", "mateName", "datasetIds"}
)
_ALIASES = {"geneid": "geneId", "allele": "genomicAlleleShortForm"}
_GET_VARIANTS = _COMMON_GET | VARIANT_PARAMETERS | frozenset(_ALIASES)
_GRANULARITIES = {g.value: g for g in Granularity}


def _text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{name} must be a string")
    text = str(value).strip()
    if not text or len(text) > _MAX_TEXT:
        raise InvalidInput(f"{name} must be 1 to {_MAX_TEXT} characters")
    return text


def _int(name: str, value: object, *, lo: int = 0, hi: int = MAX_COORD) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(text := value.strip(" \t")):
        number = int(text)
    else:
        raise InvalidInput(f"{name} must be an integer, not {str(value)[:40]!r}")
    if not lo <= number <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}")
    return number


def _ints(name: str, value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = [items]
    if not 1 <= len(items) <= 2:
        raise InvalidInput(f"{name} takes one or two positions")
    return tuple(_int(name, v) for v in items)


def _bases(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_BASES or not _BASES.match(value):
        raise InvalidInput(f"{name} must be IUPAC nucleotide codes (Beacon v2 pattern)")
    return value.upper()


def _coordinates(p: Mapping[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    start = _ints("start", p["start"]) if "start" in p else ()
    end = _ints("end", p["end"]) if "end" in p else ()
    if len(start) == 2 and len(end) != 2:
        raise InvalidInput("a bracket query needs two start and two end positions")
    if len(start) == 2 and (start[0] > start[1] or end[0] > end[1]):
        raise InvalidRange("bracket bounds must be in increasing order")
    if len(start) == 1 and len(end) == 2:
        raise InvalidInput("two end positions need two start positions (bracket query)")
    if len(start) == 1 and end and end[0] <= start[0]:
        raise InvalidRange("end must be greater than start (0-based, half-open)")
    return start, end


def _allele_form(text: str, assembly: str | None) -> dict[str, Any]:
    m = _HGVS_SHORT.match(text)
    if m is None:
        raise InvalidInput("genomicAlleleShortForm must look like NC_000017.11:g.43057063G>A")
    pos = _int("genomicAlleleShortForm", m.group(2), lo=1)
    return {"referenceName": m.group(1), "start": pos - 1, "referenceBases": m.group(3),
            "alternateBases": m.group(4), **({"assemblyId": assembly} if assembly else {})}


def _opt(p: Mapping[str, Any], name: str, conv: Any) -> Any:
    return conv(name, p[name]) if name in p else None


def parse_variant_parameters(raw: Mapping[str, Any]) -> VariantQuery | None:
    """genomicVariations request parameters → a `VariantQuery` (None when there are none)."""
    p = {_ALIASES.get(k, k): v for k, v in raw.items() if k != "datasetIds"}
    if not VARIANT_PARAMETERS.issuperset(p):
        unknown = sorted(set(p) - VARIANT_PARAMETERS)
        raise InvalidInput(f"unknown request parameter(s): {', '.join(unknown)[:200]}")
    if "mateName" in p:
        raise InvalidInput("mateName (fusion queries) is not supported by this beacon")
    assembly = _opt(p, "assemblyId", _text)
    if "genomicAlleleShortForm" in p:
        short = _text("genomicAlleleShortForm", p.pop("genomicAlleleShortForm"))
        p = {**p, **_allele_form(short, assembly)}
    if not p:
        return None
    contig = None
    if "referenceName" in p:
        contig, assembly = resolve_reference(_text("referenceName", p["referenceName"]), assembly)
    start, end = _coordinates(p)
    if (contig is None) != (not start):
        raise InvalidInput("referenceName and start must be given together")
    query = VariantQuery(
        contig=contig, assembly=assembly, start=start, end=end,
        reference_bases=_opt(p, "referenceBases", _bases),
        alternate_bases=_opt(p, "alternateBases", _bases),
        variant_type=_opt(p, "variantType", _text),
        min_length=_opt(p, "variantMinLength", _int),
        max_length=_opt(p, "variantMaxLength", _int),
        gene_id=_opt(p, "geneId", _text),
        aminoacid_change=_opt(p, "aminoacidChange", _text),
    )
    _check_kind(query)
    return query


def _check_kind(q: VariantQuery) -> None:
    q.type_classes()  # rejects an unknown variantType
    if q.contig is None and q.gene_id is None and (q.reference_bases or q.alternate_bases
                                                   or q.aminoacid_change):
        raise InvalidInput("bases or aminoacidChange need referenceName and start, or geneId")
    if q.kind == "sequence" and q.alternate_bases is None and q.variant_type is None:
        raise InvalidInput("a query with one start and no end needs alternateBases "
                           "(sequence query) or end (range query)")
    if q.min_length is not None and q.max_length is not None and q.min_length > q.max_length:
        raise InvalidRange("variantMinLength is greater than variantMaxLength")


# GET alphanumeric filters (Beacon v2 docs, Filters, "Alphanumerical value queries"):
# `id:OPvalue` (`PATO_0000011:>P70Y`, `age:>P70Y`, `HP_0032443:!unknown medical history`);
# `idOPvalue` (`age>P70Y`) is read the same way. The id is the shortest prefix before an
# operator, so a CURIE id keeps its own colon (`PATO:0000011:>P70Y`).
_GET_ALPHANUMERIC = re.compile(
    r"^(?P<id>[^<>=!:][^<>=!]*?):?(?P<op>>=|<=|=|<|>|!)(?P<value>.*)$")
_OPERATOR_CHARS = frozenset("<>=!")
# The docs write CURIEs in GET values with `_` for the prefix colon (`PATO_0000011`).
_OBO_ID = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9]*)_(?P<local>[A-Za-z]?[0-9]+)$")


def _get_filter(item: str) -> Filter:
    _text("filters", item)
    m = _GET_ALPHANUMERIC.match(item)
    if m is None:
        if _OPERATOR_CHARS.intersection(item):
            raise InvalidInput(f"filter {item[:100]!r}: an alphanumeric filter is id:OPvalue")
        return Filter(id=item)  # ontology term or custom filter (`libraryStrategy:WGS`)
    fid, value = m.group("id").strip(), m.group("value").strip()
    if not fid or not value:
        raise InvalidInput(f"filter {item[:100]!r}: an alphanumeric filter is id:OPvalue")
    curie = _OBO_ID.match(fid)
    if curie is not None:
        fid = f"{curie.group('prefix')}:{curie.group('local')}"
    return Filter(id=fid, operator=m.group("op"), value=value)


def parse_filters_param(value: str) -> tuple[Filter, ...]:
    """GET `filters=`: comma-separated CURIEs (ontology or custom filters) and
    alphanumeric filters written `id:OPvalue` (operators `= < > ! >= <=`)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if len(items) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters")
    return tuple(_get_filter(i) for i in items)


def _filter(item: FilterBody | str) -> Filter:
    if isinstance(item, str):
        return Filter(id=_text("filters", item))
    if (item.operator is None) != (item.value is None):
        raise InvalidInput(f"filter {item.id!r}: operator and value go together")
    return Filter(
        id=item.id, operator=item.operator,
        value=None if item.value is None else str(item.value),
        include_descendants=item.include_descendant_terms,
        similarity=item.similarity, scope=item.scope,
    )


def _limit(limit: int) -> int:
    # Beacon v2 pagination: limit 0 asks for the server's maximum; larger pages are capped.
    return MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)


def _datasets(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) > 100:
        raise InvalidInput("datasetIds must be a list of at most 100 ids")
    return tuple(_text("datasetIds", i) for i in items)


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise InvalidInput(f"{name} must be true or false")
    return value.lower() in ("true", "1")


def parse_get(query: Mapping[str, str], *, variants: bool) -> BeaconRequest:
    """A GET query string. `variants`: the endpoint takes genomicVariations parameters."""
    if variants and _PLAIN_ALLELE.issuperset(query.keys()):
        plain = _plain_allele_get(query)
        if plain is not None:
            return plain
    return _parse_get(query, variants=variants)


# The usual allele query (`referenceName`, `start`, bases; granularity, datasets): read
# with a few checks inline instead of the general path's per-parameter calls. Whatever
# is not plain (two starts, an unusual number, a value the general path rejects) goes
# to the general path, which also words every error; both give equal requests
# (tests/beacon/test_parse_plain.py).
_PLAIN_ALLELE = frozenset(
    {"referenceName", "start", "referenceBases", "alternateBases", "assemblyId",
     "requestedGranularity", "includeResultsetResponses", "datasetIds"}
)
_INCLUDE = frozenset({"HIT", "MISS", "ALL", "NONE"})


def _plain_text(value: str) -> str | None:
    text = value.strip()
    return text if 0 < len(text) <= _MAX_TEXT else None


def _plain_allele_get(query: Mapping[str, str]) -> BeaconRequest | None:
    get = query.get
    name, start, alt = get("referenceName"), get("start"), get("alternateBases")
    if name is None or start is None or alt is None or len(query.keys()) != len(set(query)):
        return None
    granularity = _GRANULARITIES.get(get("requestedGranularity", "boolean"))
    include = get("includeResultsetResponses", "HIT")
    if granularity is None or include not in _INCLUDE:
        return None
    datasets = _datasets(get("datasetIds"))  # checked before the variant, as the general path
    start = start.strip()
    if not (start.isascii() and start.isdigit()) or int(start) > MAX_COORD:
        return None
    ref = get("referenceBases")
    if len(alt) > _MAX_BASES or not _BASES.match(alt) or (ref is not None and (
            len(ref) > _MAX_BASES or not _BASES.match(ref))):
        return None
    assembly = get("assemblyId")
    if assembly is not None and (assembly := _plain_text(assembly)) is None:
        return None
    contig = _plain_text(name)
    if contig is None:
        return None
    contig, assembly = resolve_reference(contig, assembly)
    params = {k: v for k, v in query.items() if k not in _COMMON_GET}
    variant = VariantQuery(contig=contig, assembly=assembly, start=(int(start),),
                           reference_bases=None if ref is None else ref.upper(),
                           alternate_bases=alt.upper())
    return BeaconRequest(granularity=granularity, include=include,  # type: ignore[arg-type]
                         dataset_ids=datasets, variant=variant,
                         parameters=params)


def _parse_get(query: Mapping[str, str], *, variants: bool) -> BeaconRequest:
    known = _GET_VARIANTS if variants else _COMMON_GET
    if not known.issuperset(query.keys()):
        unknown = sorted(set(query) - known)
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    params = {k: v for k, v in query.items() if k not in _COMMON_GET}
    granularity = _GRANULARITIES.get(query.get("requestedGranularity", "boolean"))
    if granularity is None:
        raise InvalidInput("requestedGranularity must be boolean, count or record")
    include = query.get("includeResultsetResponses", "HIT")
    if include not in ("HIT", "MISS", "ALL", "NONE"):
        raise InvalidInput("includeResultsetResponses must be HIT, MISS, ALL or NONE")
    return BeaconRequest(
        granularity=granularity,
        include=include,  # type: ignore[arg-type]
        skip=_int("skip", query["skip"], hi=1_000_000_000) if "skip" in query else 0,
        limit=_limit(_int("limit", query["limit"], hi=1_000_000_000))
        if "limit" in query else DEFAULT_LIMIT,
        filters=parse_filters_param(query["filters"]) if "filters" in query else (),
        dataset_ids=_datasets(query.get("datasetIds")),
        test_mode=_bool("testMode", query["testMode"]) if "testMode" in query else False,
        variant=parse_variant_parameters(params) if variants else None,
        parameters=params,
    )


def _pydantic_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"invalid request body at {where}: {err['msg']}"[:300]


def parse_body(body: object, *, variants: bool) -> BeaconRequest:
    """A POST body (beaconRequestBody). Variant parameters may be flat in
    `requestParameters` or nested under `g_variant` (Beacon v2 docs use both)."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    try:
        req = RequestBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(_pydantic_message(exc)) from None
    q = req.query
    params = dict(q.request_parameters)
    nested = params.pop("g_variant", None)
    if isinstance(nested, dict):
        params.update(nested)
    elif nested is not None:
        raise InvalidInput("requestParameters.g_variant must be an object")
    if params and not variants and set(params) - {"datasetIds"}:
        raise InvalidInput("this endpoint takes no requestParameters besides datasetIds")
    return BeaconRequest(
        granularity=q.requested_granularity,
        include=q.include_resultset_responses,
        skip=q.pagination.skip,
        limit=_limit(q.pagination.limit),
        filters=tuple(_filter(f) for f in q.filters),
        dataset_ids=_datasets(params.get("datasetIds")),
        test_mode=q.test_mode,
        variant=parse_variant_parameters(params) if variants else None,
        requested_schemas=tuple(
            {"entityType": s.entity_type, "schema": s.schema_} for s in req.meta.requested_schemas
        ),
        parameters=params,
    )
