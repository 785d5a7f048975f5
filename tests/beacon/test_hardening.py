"""issue 16 for Beacon: strict integers, /info fields for networks."""

from __future__ import annotations

import pytest

from node.beacon.info import info
from node.beacon.parse import parse_body, parse_get
from node.config import NodeInfo, Settings
from node.errors import InvalidInput

FULL_WIDTH = "\uff11\uff10\uff11\uff17\uff16"  # 10176 in full-width digits


@pytest.mark.parametrize("value", [FULL_WIDTH, "1_0176", "+10176", "-1", "10176.0"])
def test_integers_are_ascii_digits_only(value: str) -> None:
    query = {"referenceName": "1", "start": value, "alternateBases": "A"}
    with pytest.raises(InvalidInput):
        parse_get(query, variants=True)
    with pytest.raises(InvalidInput):
        parse_get({"limit": value}, variants=False)
    body = {"query": {"requestParameters": {"referenceName": "1", "start": [value],
                                            "alternateBases": "A"}}}
    with pytest.raises(InvalidInput):
        parse_body(body, variants=True)


def test_allele_short_form_takes_ascii_digits_only() -> None:
    with pytest.raises(InvalidInput):
        parse_get({"genomicAlleleShortForm": "NC_000017.11:g.\uff14\uff13057063G>A"}, variants=True)


def test_info_shows_network_fields_when_set() -> None:
    plain = info(Settings(), version="0")["response"]
    assert "alternativeUrl" not in plain and "logoUrl" not in plain["organization"]
    node = NodeInfo(welcome_url="https://node.example.org/", alternative_url="https://a.example/",
                    organization_logo_url="https://example.org/logo.png",
                    organization_description="A test organization")
    doc = info(Settings(node=node), version="0")["response"]
    assert doc["welcomeUrl"] == "https://node.example.org/"
    assert doc["alternativeUrl"] == "https://a.example/"
    assert doc["organization"]["logoUrl"] == "https://example.org/logo.png"
    assert doc["organization"]["description"] == "A test organization"
    assert doc["organization"]["contactUrl"] == node.contact_url


def test_durations_and_obo_ids_take_ascii_digits_only() -> None:
    from node.catalog.filters import duration_days

    assert duration_days("P70Y") == 70 * 365.25
    assert duration_days("P\uff17\uff10Y") is None  # full-width 70: not a duration
    plain = parse_get({"filters": "PATO_0000011:>P70Y"}, variants=False)
    assert plain.filters[0].id == "PATO:0000011"
    wide_id = "PATO_\uff10\uff10\uff10\uff10\uff10\uff11\uff11"
    wide = parse_get({"filters": f"{wide_id}:>P70Y"}, variants=False)
    assert wide.filters[0].id == wide_id  # left as given, not turned into a CURIE
