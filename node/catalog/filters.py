"""Evaluating Beacon v2 filters on one BFF record (Beacon v2 framework, "Filters").

- ontology: the record carries the term, or (with `includeDescendantTerms`) a descendant,
  in any of its ontology-term fields, however deep (`sex`, `diseases[].diseaseCode`, ...);
- alphanumeric: `id` names a field by its dotted path (`diseases.ageOfOnset.iso8601duration`,
  lists traversed), or is a CURIE naming a measurement's `assayCode` whose
  `measurementValue` is compared; operators `= < > ! >= <=`, `%` a wildcard in `=`/`!`,
  ISO 8601 durations compared as durations (`P45Y` > `P40Y1M1D`), numbers as numbers,
  anything else as text (ISO dates sort as text);
- custom: `<field>:<value>` on the categorical fields listed in CUSTOM_FIELDS.

`!` is the complement of `=`: a record without the field matches `!`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from node.errors import InvalidInput

__all__ = [
    "CUSTOM_FIELDS",
    "OPERATORS",
    "alphanumeric_match",
    "custom_match",
    "duration_days",
    "field_values",
    "measurement_values",
    "ontology_terms",
]

OPERATORS = ("=", "<", ">", "!", ">=", "<=")
# Categorical string fields offered as custom filters (`libraryStrategy:WGS`).
CUSTOM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "individuals": ("karyotypicSex",),
    "runs": ("libraryLayout", "librarySelection", "libraryStrategy", "platform"),
    "analyses": ("aligner", "pipelineName", "variantCaller"),
    "cohorts": ("cohortType",),
}

# ASCII digits only: `\d` takes any script's digits, which float() reads
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>[0-9]+(?:\.[0-9]+)?)Y)?(?:(?P<mo>[0-9]+(?:\.[0-9]+)?)M)?(?:(?P<w>[0-9]+(?:\.[0-9]+)?)W)?"
    r"(?:(?P<d>[0-9]+(?:\.[0-9]+)?)D)?(?:T(?!$)(?:(?P<h>[0-9]+(?:\.[0-9]+)?)H)?(?:(?P<mi>[0-9]+(?:\.[0-9]+)?)M)?"
    r"(?:(?P<s>[0-9]+(?:\.[0-9]+)?)S)?)?$"
)
# Days per unit. A year is 365.25 days and a month a twelfth of it, so P12M == P1Y.
_UNIT_DAYS = {"y": 365.25, "mo": 365.25 / 12, "w": 7.0, "d": 1.0,
              "h": 1 / 24, "mi": 1 / 1440, "s": 1 / 86400}


def duration_days(text: str) -> float | None:
    """An ISO 8601 duration in days, or None when `text` is not one.

    >>> duration_days("P1Y6M") == duration_days("P18M"), duration_days("45")
    (True, None)
    """
    match = _DURATION.match(text.strip().upper())
    if match is None:
        return None
    return sum(float(v) * _UNIT_DAYS[k] for k, v in match.groupdict().items() if v)


def ontology_terms(record: Mapping[str, Any]) -> dict[str, str | None]:
    """Every ontology term nested anywhere in the record (not the record's own id), with
    the label the record gives it."""
    found: dict[str, str | None] = {}
    for value in record.values():
        _collect_terms(value, found)
    return found


def _collect_terms(value: Any, found: dict[str, str | None]) -> None:
    if isinstance(value, dict):
        term_id = value.get("id")
        if isinstance(term_id, str) and _is_curie(term_id):
            label = value.get("label")
            if found.get(term_id) is None:
                found[term_id] = label if isinstance(label, str) else None
        for inner in value.values():
            _collect_terms(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _collect_terms(inner, found)


def field_values(record: Any, path: str) -> list[Any]:
    """Scalar values at a dotted path; lists are traversed at every step."""
    current = [record]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in _flatten(current):
            if isinstance(item, dict) and part in item:
                nxt.append(item[part])
        current = nxt
    return [v for v in _flatten(current) if v is not None]


def measurement_values(record: Any, assay_id: str) -> list[Any]:
    """`measurementValue`s of measures/measurements whose `assayCode` is `assay_id`."""
    out: list[Any] = []
    for obj in _dicts(record):
        code = obj.get("assayCode")
        if isinstance(code, dict) and code.get("id") == assay_id and "measurementValue" in obj:
            value = obj["measurementValue"]
            out.append(value.get("value") if isinstance(value, dict) else value)
    return [v for v in out if v is not None]


def alphanumeric_match(values: list[Any], operator: str, target: str) -> bool:
    """Whether any of `values` satisfies `operator target` (`!`: none equals target)."""
    if operator not in OPERATORS:
        raise InvalidInput(f"unsupported filter operator {operator!r}; use one of {OPERATORS}")
    if operator == "!":
        return not alphanumeric_match(values, "=", target)
    compare = _comparator(target)
    return any(compare(v, operator) for v in _candidates(values))


def custom_match(record: Mapping[str, Any], field: str, value: str) -> bool:
    return any(v == value for v in field_values(record, field))


def _comparator(target: str) -> Callable[[Any, str], bool]:
    days = duration_days(target)
    if days is not None:
        return lambda v, op: _cmp(_as_duration(v), days, op)
    number = _as_number(target)
    if number is not None:
        return lambda v, op: _cmp(_as_number(v), number, op)
    pattern = re.compile(
        "^" + ".*".join(map(re.escape, target.split("%"))) + "$", re.IGNORECASE
    )
    return lambda v, op: _text(v, target, pattern, op)


def _text(value: Any, target: str, pattern: re.Pattern[str], op: str) -> bool:
    if not isinstance(value, str):
        return False
    if op == "=":
        return pattern.match(value) is not None
    return _cmp(value, target, op)


def _cmp(left: Any, right: Any, op: str) -> bool:
    if left is None:
        return False
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "<": lambda a, b: a < b, ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    }
    return ops[op](left, right)


def _candidates(values: list[Any]) -> Iterator[Any]:
    """Scalars to compare: ontology terms offer their id and label; ages their duration."""
    for value in values:
        if isinstance(value, dict):
            yield from (value[k] for k in ("id", "label", "iso8601duration") if k in value)
        elif not isinstance(value, list):
            yield value


def _as_duration(value: Any) -> float | None:
    return duration_days(value) if isinstance(value, str) else None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _flatten(items: list[Any]) -> Iterator[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _dicts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _dicts(inner)


def _is_curie(value: str) -> bool:
    prefix, sep, local = value.partition(":")
    return bool(prefix and sep and local) and " " not in prefix
