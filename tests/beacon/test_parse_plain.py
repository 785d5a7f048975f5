"""The plain allele GET parse gives exactly what the general parse gives.

`parse_get` reads the usual allele query (referenceName, start, bases, granularity,
datasets) inline and hands everything else to the general path. The general path is the
truth here: on generated query strings, common and odd, both must give an equal
`BeaconRequest`, or the same error.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from node.beacon import parse
from node.beacon.models import BeaconRequest
from node.errors import NodeError

_VALUES = {
    "referenceName": ["1", "chr1", " 22 ", "X", "MT", "chrM", "NC_000001.10", "NC_000001.11",
                      "NC_999999.1", "", " ", "x" * 201, "1;2"],
    "start": ["0", "16050074", " 12 ", "+5", "1_000", "-1", "2147483648", "2147483647",
              "12,14", "abc", "", "١٢", "²"],
    "referenceBases": ["A", "acgt", "N", "", "AZ", "-", ".", "ACGT" * 3000],
    "alternateBases": ["G", "t", "NN", "", "<DEL>", "A" * 10_001, "."],
    "assemblyId": ["GRCh37", "hg19", "GRCh38", " grch38 ", "", "mouse"],
    "requestedGranularity": ["boolean", "count", "record", "COUNT", ""],
    "includeResultsetResponses": ["HIT", "MISS", "ALL", "NONE", "hit"],
    "datasetIds": ["kg", "kg,other", "", " , ", ",".join(["d"] * 101)],
}


def _outcome(fn: object, query: MultiDict[str]) -> BeaconRequest | tuple[str, str]:
    try:
        return fn(query, variants=True)  # type: ignore[operator, no-any-return]
    except NodeError as exc:
        return type(exc).__name__, exc.message


@st.composite
def _queries(draw: st.DrawFn) -> MultiDict[str]:
    names = draw(st.lists(st.sampled_from(sorted(_VALUES)), unique=True))
    pairs = [(n, draw(st.sampled_from(_VALUES[n]))) for n in names]
    if pairs and draw(st.booleans()) and draw(st.booleans()):
        pairs.append(pairs[0])  # a repeated parameter
    return MultiDict(pairs)


@settings(max_examples=3000, deadline=None)
@given(_queries())
def test_plain_parse_equals_general_parse(query: MultiDict[str]) -> None:
    assert _outcome(parse.parse_get, query) == _outcome(parse._parse_get, query)


@pytest.mark.parametrize(
    "query",
    [
        {"referenceName": "1", "start": "16050074", "referenceBases": "A",
         "alternateBases": "G", "requestedGranularity": "count", "datasetIds": "kg"},
        {"referenceName": "NC_000001.10", "start": "0", "alternateBases": "t",
         "assemblyId": "hg19"},
    ],
)
def test_the_usual_queries_take_the_plain_path(
    query: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not only equal: answered without the general path (else the plain path is dead code).
    expected = parse._parse_get(MultiDict(query), variants=True)

    def general(*_: object, **__: object) -> BeaconRequest:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(parse, "_parse_get", general)
    assert parse.parse_get(MultiDict(query), variants=True) == expected
