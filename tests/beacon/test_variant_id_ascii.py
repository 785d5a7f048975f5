"""Variant ids (`chr<contig>_<POS>_<REF>_<ALT>`) take ASCII digits only (issue 16): `\\d`
also matches other scripts' digits, which `int()` then reads as a position, so an id no
node emits reached the store. A trailing newline (which `$` lets through) is refused too."""

from __future__ import annotations

from typing import Any

import pytest

from node.beacon.variants import parse_internal_id
from node.errors import InvalidInput

NON_ASCII = {
    "full-width": "\uff11\uff15\uff12\uff17\uff14",
    "arabic-indic": "\u0661\u0665\u0662\u0667\u0664",
    "devanagari": "\u0967\u096b\u0968\u096d\u096a",
}


def test_ascii_id_parses() -> None:
    assert parse_internal_id("chr1_15274_A_T") == ("1", 15273, "A", "T")


@pytest.mark.parametrize("digits", NON_ASCII.values(), ids=NON_ASCII.keys())
def test_non_ascii_position_is_refused(digits: str) -> None:
    assert int(digits) == 15274  # Python reads them: only the pattern can refuse them
    with pytest.raises(InvalidInput):
        parse_internal_id(f"chr1_{digits}_A_T")


def test_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_internal_id("chr1_15274_A_T\n")


@pytest.mark.parametrize("digits", NON_ASCII.values(), ids=NON_ASCII.keys())
async def test_non_ascii_id_over_http(tg_client: Any, digits: str) -> None:
    ascii_doc = await (await tg_client.get("/api/g_variants/chr1_15274_A_T")).json()
    assert ascii_doc["responseSummary"]["exists"] is True  # the variant is there
    resp = await tg_client.get(f"/api/g_variants/chr1_{digits}_A_T")
    assert resp.status == 400
    assert (await resp.json())["error"]["errorCode"] == 400
