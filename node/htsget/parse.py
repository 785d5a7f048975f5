"""GET query strings and POST bodies → `HtsgetRequest` (htsget 1.3 §Query parameters,
§POST request). Every rejection names the parameter and uses the spec's error class."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from node.errors import InvalidInput, InvalidRange, PayloadTooLarge, UnsupportedFormat
from node.htsget.models import FORMATS, READ_FIELDS, HtsgetRequest, Kind
from node.reads.layout import Query

__all__ = ["parse_get", "parse_post"]

_UINT32_MAX = 2**32 - 1
_GET_KEYS = frozenset(
    {"format", "class", "referenceName", "start", "end", "fields", "tags", "notags"}
)
_POST_KEYS = frozenset({"format", "class", "fields", "tags", "notags", "regions"})


def parse_get(kind: Kind, entry_id: str, params: Mapping[str, Sequence[str]]) -> HtsgetRequest:
    """`params`: every value of each query parameter (a repeated parameter is an error)."""
    _refuse_unknown(params, _GET_KEYS, "query parameter(s):")
    single: dict[str, str] = {}
    for key, values in params.items():
        if len(values) != 1:
            raise InvalidInput(f"parameter {key} given more than once")
        single[key] = values[-1]
    fmt = _format(kind, single.get("format"))
    header_only = _class(single.get("class"), list(single))
    regions: tuple[Query, ...] = ()
    ref = single.get("referenceName")
    start, end = _coord(single, "start"), _coord(single, "end")
    if ref is None and (start is not None or end is not None):
        raise InvalidInput("start and end require referenceName")
    if ref is not None:
        # htsget §Query parameters: GET start > end is InvalidRange (start == end: empty).
        if start is not None and end is not None and start > end:
            raise InvalidRange(f"start {start} is greater than end {end}")
        regions = (_region(kind, ref, start, end),)
    fields, tags, notags = _fields_tags(
        kind, _csv(single.get("fields")), _csv(single.get("tags")), _csv(single.get("notags"))
    )
    return HtsgetRequest(kind, entry_id, fmt, header_only, regions, fields, tags, notags or ())


def parse_post(
    kind: Kind, entry_id: str, body: bytes, *, has_query: bool, max_regions: int
) -> HtsgetRequest:
    if has_query:
        raise InvalidInput("a POST request takes its parameters from the body, not the URL")
    try:
        doc = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the request body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("the request body must be a JSON object")
    _refuse_unknown(doc, _POST_KEYS, "field(s) in the request body:")
    fmt = _format(kind, _str_or_none(doc, "format"))
    header_only = _class(_str_or_none(doc, "class"), list(doc))
    regions = _post_regions(kind, doc.get("regions"), max_regions)
    fields, tags, notags = _fields_tags(
        kind, _list_or_none(doc, "fields"), _list_or_none(doc, "tags"), _list_or_none(doc, "notags")
    )
    return HtsgetRequest(kind, entry_id, fmt, header_only, regions, fields, tags, notags or ())


def _refuse_unknown(given: Mapping[str, object], known: frozenset[str], what: str) -> None:
    """GET and POST alike (docs/decisions.md): an unknown key is InvalidInput, never
    ignored; htsget §Design principles makes POST bodies protobuf3 JSON, whose parsers
    reject unknown fields by default, and a misspelt `referencename` ignored would
    silently answer the whole file."""
    unknown = sorted(set(given) - known)
    if unknown:
        raise InvalidInput(f"unknown {what} {', '.join(unknown)[:200]}")


def _format(kind: Kind, value: str | None) -> str:
    if value is None:
        return FORMATS[kind][0]
    # Case-insensitive: the spec's own POST example sends "bam" (htsget §POST request).
    if value.upper() not in FORMATS[kind]:
        allowed = ", ".join(FORMATS[kind])
        raise UnsupportedFormat(f"format {value[:20]!r} is not supported for {kind} ({allowed})")
    return value.upper()


def _class(value: str | None, present: Sequence[str]) -> bool:
    if value is None:
        return False
    if value != "header":
        raise InvalidInput(f"class must be 'header', not {value!r}")
    # htsget §class: with class=header, no parameter other than format is allowed.
    extra = [k for k in present if k not in ("class", "format")]
    if extra:
        raise InvalidInput(f"class=header does not combine with {', '.join(sorted(extra))}")
    return True


def _coord(params: Mapping[str, str], key: str) -> int | None:
    raw = params.get(key)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > _UINT32_MAX:
        raise InvalidInput(f"{key} must be an integer from 0 to {_UINT32_MAX}")
    return int(raw)


def _region(kind: Kind, ref: str, start: int | None, end: int | None) -> Query:
    if not ref:
        raise InvalidInput("referenceName must not be empty")
    if ref == "*":
        if kind != "reads":
            raise InvalidInput("referenceName=* (unplaced reads) applies to reads only")
        if start is not None or end is not None:
            raise InvalidInput("start and end do not apply to referenceName=*")
    return Query(ref, start or 0, end)


def _post_regions(kind: Kind, raw: Any, max_regions: int) -> tuple[Query, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("regions must be a non-empty list")
    if len(raw) > max_regions:
        raise PayloadTooLarge(f"at most {max_regions} regions per request")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"referenceName", "start", "end"}:
            raise InvalidInput("each region is {referenceName, start?, end?}")
        ref = item.get("referenceName")
        if not isinstance(ref, str):
            raise InvalidInput("each region needs a referenceName string")
        start, end = _post_int(item, "start"), _post_int(item, "end")
        # htsget §POST request: start must be less than end.
        if start is not None and end is not None and start >= end:
            raise InvalidRange(f"region start {start} is not less than end {end}")
        out.append(_region(kind, ref, start, end))
    return tuple(out)


def _post_int(item: Mapping[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT32_MAX:
        raise InvalidInput(f"region {key} must be an integer from 0 to {_UINT32_MAX}")
    return value


def _str_or_none(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    return value


def _list_or_none(doc: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{key} must be a list of strings")
    return tuple(value)


def _csv(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(v for v in raw.split(",") if v)


def _fields_tags(
    kind: Kind,
    fields: tuple[str, ...] | None,
    tags: tuple[str, ...] | None,
    notags: tuple[str, ...] | None,
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...] | None]:
    if fields is not None and kind == "reads":
        bad = [f for f in fields if f not in READ_FIELDS]
        if bad:
            raise InvalidInput(f"unknown field(s): {', '.join(bad)}")
    if tags is not None and notags and set(tags) & set(notags):
        raise InvalidInput("a tag cannot be in both tags and notags")
    return fields, tags, notags
