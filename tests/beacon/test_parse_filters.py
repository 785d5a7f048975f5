"""GET `filters=` forms (Beacon v2 docs, Filters): CURIEs, custom `field:value` terms and
alphanumeric `id:OPvalue` filters, including the docs' `PREFIX_LOCAL` CURIE spelling."""

from __future__ import annotations

import pytest

from node.beacon.parse import parse_filters_param
from node.domain import Filter
from node.errors import InvalidInput


@pytest.mark.parametrize(("written", "expected"), [
    ("NCIT:C16576", Filter("NCIT:C16576")),
    ("libraryStrategy:WGS", Filter("libraryStrategy:WGS")),  # custom, not alphanumeric
    ("age:>P70Y", Filter("age", ">", "P70Y")),
    ("age>P40Y", Filter("age", ">", "P40Y")),
    ("PATO_0000011:>P70Y", Filter("PATO:0000011", ">", "P70Y")),
    ("PATO:0000011:>=P70Y", Filter("PATO:0000011", ">=", "P70Y")),
    ("EFO_0004847:<=P5Y", Filter("EFO:0004847", "<=", "P5Y")),
    ("HP_0032443:!unknown medical history",
     Filter("HP:0032443", "!", "unknown medical history")),
    ("HP:0032443:=%cancer%", Filter("HP:0032443", "=", "%cancer%")),
    ("measures.measurementValue.value<180.5",
     Filter("measures.measurementValue.value", "<", "180.5")),
])
def test_get_filter_forms(written: str, expected: Filter) -> None:
    assert parse_filters_param(written) == (expected,)


def test_several_filters_are_comma_separated() -> None:
    assert parse_filters_param("NCIT:C16576, age:>P70Y,") == (
        Filter("NCIT:C16576"), Filter("age", ">", "P70Y"))


@pytest.mark.parametrize("bad", ["age>", ":>P70Y", ">5", "=x", "a:" + "b" * 300])
def test_malformed_filters_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_filters_param(bad)
