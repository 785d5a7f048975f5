"""Passport evaluation end to end: passports and visas minted by the loopback issuer."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.auth.jwt import JWKSCache
from node.auth.passport import PassportEvaluator, pattern_match
from node.config import DatasetGrantSettings
from node.errors import Unauthenticated
from tests.auth.conftest import DAC, DATASET_VALUE, LEEWAY_S, IdP, auth_settings
from tests.auth.issuer import REGISTERED, make_key, public_jwk

AFFILIATION = [[{"type": "AffiliationAndRole", "value": "const:faculty@uni.example"}]]


def _grant(idp: IdP, value: str = DATASET_VALUE, **kw: Any) -> str:
    return idp.visas.visa("ControlledAccessGrants", value, **kw)


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def _until(token: str) -> int:
    """When the evaluator stops accepting `token`: its `exp` plus the leeway."""
    return _exp(token) + LEEWAY_S


async def _grants(evaluator: PassportEvaluator, idp: IdP, visas: list[str]) -> frozenset[str]:
    return (await evaluator.principal(idp.broker.passport(visas))).controlled_grants


async def test_grant_gives_dataset_and_expiry_is_minimum(
    evaluator: PassportEvaluator, idp: IdP
) -> None:
    visa = _grant(idp, lifetime=300)
    passport = idp.broker.passport([visa], lifetime=900)
    principal = await evaluator.principal(passport)
    assert principal.controlled_grants == {"ds1"}
    assert (principal.subject, principal.issuer) == ("alice", idp.broker.iss)
    assert not principal.registered
    assert principal.expires_at == min(_until(visa), _until(passport)) == _until(visa)


async def test_es256_visa_accepted(evaluator: PassportEvaluator, idp: IdP) -> None:
    assert await _grants(evaluator, idp, [_grant(idp, alg="ES256")]) == {"ds1"}


async def test_passport_without_visas_is_authenticated_without_access(
    evaluator: PassportEvaluator, idp: IdP
) -> None:
    passport = idp.broker.passport([])
    principal = await evaluator.principal(passport)
    assert principal.subject == "alice" and not principal.registered
    assert principal.controlled_grants == frozenset()
    assert principal.expires_at == _until(passport)


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/EGAD0001",  # shares only the suffix
        "https://ega.example/EGAD0001/",
        "https://EGA.example/EGAD0001",  # URL claims compare case-sensitively
        "https://ega.example/egad0001",
        "EGAD0001",
    ],
)
async def test_grant_value_must_match_exactly(
    evaluator: PassportEvaluator, idp: IdP, value: str
) -> None:
    assert await _grants(evaluator, idp, [_grant(idp, value)]) == frozenset()


@pytest.mark.parametrize(
    ("source", "by"),
    [("https://other-dac.example", "dac"), (DAC, None), (DAC, "self"), (DAC, "system")],
)
async def test_grant_source_and_by_must_be_accepted(
    evaluator: PassportEvaluator, idp: IdP, source: str, by: str | None
) -> None:
    assert await _grants(evaluator, idp, [_grant(idp, source=source, by=by)]) == frozenset()


async def test_visa_from_untrusted_issuer_ignored(evaluator: PassportEvaluator, idp: IdP) -> None:
    rogue_visa = idp.rogue.visa("ControlledAccessGrants", DATASET_VALUE)
    # ...also when it claims the trusted issuer's name and key id.
    forged = idp.rogue.visa("ControlledAccessGrants", DATASET_VALUE, iss=idp.visas.iss)
    impersonating = jwt.encode(
        jwt.decode(forged, options={"verify_signature": False}),
        idp.rogue.keys["rogue-rs"][1],
        algorithm="RS256",
        headers={"kid": "visa-rs"},
    )
    for visa in (rogue_visa, forged, impersonating):
        assert await _grants(evaluator, idp, [visa]) == frozenset()
    # The broker is trusted for passports, not as a visa issuer.
    assert (
        await _grants(evaluator, idp, [idp.broker.visa("ControlledAccessGrants", DATASET_VALUE)])
        == frozenset()
    )


async def test_tampered_visa_ignored(evaluator: PassportEvaluator, idp: IdP) -> None:
    header, _, signature = _grant(idp, "https://ega.example/EGAD0002").split(".")
    good_payload = _grant(idp).split(".")[1]
    assert await _grants(evaluator, idp, [f"{header}.{good_payload}.{signature}"]) == frozenset()


@pytest.mark.parametrize(
    "mint",
    [
        {"now": int(time.time()) - 7200, "lifetime": 600},  # expired
        {"claims": {"nbf": int(time.time()) + 3600}},  # not yet valid
        {"claims": {"aud": "some-other-clearinghouse"}},  # meant for someone else
    ],
)
async def test_invalid_visa_times_or_audience_ignored(
    evaluator: PassportEvaluator, idp: IdP, mint: dict[str, Any]
) -> None:
    assert await _grants(evaluator, idp, [_grant(idp, **mint)]) == frozenset()


async def test_visa_jku_only_from_allowlist(evaluator: PassportEvaluator, idp: IdP) -> None:
    key = make_key("RS256")
    idp.visas.add_key("alt-key", "RS256", key, publish=False)
    jwks = {"keys": [public_jwk(key, "alt-key", "RS256")]}
    idp.server.extra_jwks["alt"] = jwks
    idp.server.extra_jwks["elsewhere"] = jwks
    allowed = _grant(idp, kid="alt-key", headers={"jku": f"{idp.base}/alt/jwks"})
    other = _grant(idp, kid="alt-key", headers={"jku": f"{idp.base}/elsewhere/jwks"})
    assert await _grants(evaluator, idp, [allowed]) == {"ds1"}
    assert await _grants(evaluator, idp, [other]) == frozenset()
    assert idp.server.fetches["elsewhere"] == 0


async def test_visa_of_another_subject_needs_trusted_link(
    evaluator: PassportEvaluator, idp: IdP
) -> None:
    theirs = _grant(idp, sub="mallory")
    assert await _grants(evaluator, idp, [theirs]) == frozenset()
    link_value = f"mallory,{quote(idp.visas.iss, safe='')}"
    rogue_link = idp.rogue.visa("LinkedIdentities", link_value, by="system")
    assert await _grants(evaluator, idp, [theirs, rogue_link]) == frozenset()
    link = idp.visas.visa("LinkedIdentities", link_value, by="system", lifetime=200)
    principal = await evaluator.principal(idp.broker.passport([theirs, link]))
    assert principal.controlled_grants == {"ds1"}
    assert principal.expires_at == _until(link)  # the decision relied on the link too


async def test_linked_identities_chain(evaluator: PassportEvaluator, idp: IdP) -> None:
    iss = quote(idp.visas.iss, safe="")
    theirs = _grant(idp, sub="carol")
    first = idp.visas.visa("LinkedIdentities", f"bob,{iss}")  # alice ~ bob
    second = idp.visas.visa("LinkedIdentities", f"carol,{iss}", sub="bob")  # bob ~ carol
    assert await _grants(evaluator, idp, [theirs, second]) == frozenset()
    assert await _grants(evaluator, idp, [theirs, first, second]) == {"ds1"}
    # A link naming the right sub at another issuer does not link this visa identity.
    elsewhere = idp.visas.visa("LinkedIdentities", "carol,https%3A%2F%2Felsewhere.example")
    assert await _grants(evaluator, idp, [theirs, elsewhere]) == frozenset()


async def test_conditions_unmet_rejects_visa(evaluator: PassportEvaluator, idp: IdP) -> None:
    conditional = _grant(idp, conditions=AFFILIATION)
    assert await _grants(evaluator, idp, [conditional]) == frozenset()
    wrong = idp.visas.visa("AffiliationAndRole", "student@uni.example", by="so")
    assert await _grants(evaluator, idp, [conditional, wrong]) == frozenset()
    right = idp.visas.visa("AffiliationAndRole", "faculty@uni.example", by="so", lifetime=100)
    principal = await evaluator.principal(idp.broker.passport([conditional, right]))
    assert principal.controlled_grants == {"ds1"}
    assert principal.expires_at == _until(right)


async def test_condition_met_only_by_trusted_visas(evaluator: PassportEvaluator, idp: IdP) -> None:
    conditional = _grant(idp, conditions=AFFILIATION)
    rogue = idp.rogue.visa("AffiliationAndRole", "faculty@uni.example", by="so")
    someone_else = idp.visas.visa("AffiliationAndRole", "faculty@uni.example", sub="eve")
    nested = idp.visas.visa("AffiliationAndRole", "faculty@uni.example", conditions=AFFILIATION)
    for helper in (rogue, someone_else, nested):
        assert await _grants(evaluator, idp, [conditional, helper]) == frozenset()


@pytest.mark.parametrize(
    ("conditions", "granted"),
    [
        ([[{"type": "AffiliationAndRole", "value": "pattern:faculty@*.example"}]], True),
        ([[{"type": "AffiliationAndRole", "value": "pattern:faculty@?.example"}]], False),
        ([[{"type": "AffiliationAndRole", "value": "pattern:fac?lty@uni.example"}]], True),
        ([[{"type": "AffiliationAndRole", "source": f"const:{DAC}", "by": "const:so"}]], True),
        ([[{"type": "AffiliationAndRole", "by": "const:dac"}]], False),
        # AND: both clauses must hold
        (
            [
                [
                    {"type": "AffiliationAndRole", "value": "pattern:*"},
                    {"type": "ResearcherStatus", "value": f"const:{REGISTERED}"},
                ]
            ],
            False,
        ),
        # OR: the second disjunct holds
        (
            [
                [{"type": "ResearcherStatus", "value": f"const:{REGISTERED}"}],
                [{"type": "AffiliationAndRole", "value": "const:faculty@uni.example"}],
            ],
            True,
        ),
        # unknown prefix, missing prefix, timestamp claim, no claim besides type: all fail
        ([[{"type": "AffiliationAndRole", "value": "regex:faculty.*"}]], False),
        ([[{"type": "AffiliationAndRole", "value": "faculty@uni.example"}]], False),
        ([[{"type": "AffiliationAndRole", "asserted": "const:1"}]], False),
        ([[{"type": "AffiliationAndRole"}]], False),
        ([[{"value": "const:faculty@uni.example"}]], False),
        ([], False),
        ([[]], False),
        ({"type": "AffiliationAndRole"}, False),
    ],
)
async def test_conditions_dnf(
    evaluator: PassportEvaluator, idp: IdP, conditions: Any, granted: bool
) -> None:
    affiliation = idp.visas.visa("AffiliationAndRole", "faculty@uni.example", by="so")
    visas = [_grant(idp, conditions=conditions), affiliation]
    assert await _grants(evaluator, idp, visas) == ({"ds1"} if granted else frozenset())


async def test_split_pattern_condition(evaluator: PassportEvaluator, idp: IdP) -> None:
    iss = quote(idp.visas.iss, safe="")
    link = idp.visas.visa("LinkedIdentities", f"001,https%3A%2F%2Fa.example;alice2,{iss}")
    cond = [[{"type": "LinkedIdentities", "value": f"split_pattern:alice?,{iss}"}]]
    miss = [[{"type": "LinkedIdentities", "value": "split_pattern:alice?"}]]
    assert await _grants(evaluator, idp, [_grant(idp, conditions=cond), link]) == {"ds1"}
    assert await _grants(evaluator, idp, [_grant(idp, conditions=miss), link]) == frozenset()


@pytest.mark.parametrize(
    ("terms_by", "terms_value", "status_value", "registered"),
    [
        ("self", REGISTERED, REGISTERED, True),
        (None, REGISTERED, REGISTERED, False),  # AcceptedTermsAndPolicies MUST carry `by`
        ("self", "https://doi.org/10.1038/other", REGISTERED, False),
        ("self", REGISTERED, "https://doi.org/10.1038/other", False),
    ],
)
async def test_registered_access(
    evaluator: PassportEvaluator,
    idp: IdP,
    terms_by: str | None,
    terms_value: str,
    status_value: str,
    registered: bool,
) -> None:
    terms = idp.visas.visa("AcceptedTermsAndPolicies", terms_value, by=terms_by)
    status = idp.visas.visa("ResearcherStatus", status_value, by="so", lifetime=120)
    principal = await evaluator.principal(idp.broker.passport([terms, status]))
    assert principal.registered is registered
    if registered:
        assert principal.expires_at == _until(status)
    for alone in (terms, status):
        assert not (await evaluator.principal(idp.broker.passport([alone]))).registered


async def test_visa_asserted_in_future_ignored(evaluator: PassportEvaluator, idp: IdP) -> None:
    token = idp.visas.mint(
        {
            "ga4gh_visa_v1": {
                "type": "ControlledAccessGrants",
                "value": DATASET_VALUE,
                "source": DAC,
                "by": "dac",
                "asserted": int(time.time()) + 86400,
            }
        }
    )
    assert await _grants(evaluator, idp, [token]) == frozenset()


@pytest.mark.parametrize(
    "visa_obj",
    [
        None,
        {"type": "ControlledAccessGrants", "value": DATASET_VALUE, "source": DAC, "by": "dac"},
        {
            "type": "ControlledAccessGrants",
            "value": DATASET_VALUE + "x" * 300,
            "source": DAC,
            "by": "dac",
            "asserted": 1,
        },
        {"type": "ControlledAccessGrants", "value": 7, "source": DAC, "asserted": 1},
    ],
)
async def test_malformed_visa_objects_ignored(
    evaluator: PassportEvaluator, idp: IdP, visa_obj: Any
) -> None:
    token = idp.visas.mint({} if visa_obj is None else {"ga4gh_visa_v1": visa_obj})
    assert await _grants(evaluator, idp, [token]) == frozenset()


async def test_several_datasets(idp: IdP, cache: JWKSCache) -> None:
    grants = {
        "ds1": DatasetGrantSettings(value=DATASET_VALUE, sources=[DAC]),
        "ds2": DatasetGrantSettings(
            value="https://ega.example/EGAD0002", sources=[DAC], by=["dac", "so"]
        ),
        "ds3": DatasetGrantSettings(value="https://ega.example/EGAD0003", sources=[DAC]),
    }
    evaluator = PassportEvaluator(auth_settings(idp, grants=grants), cache)
    visas = [_grant(idp), _grant(idp, "https://ega.example/EGAD0002", by="so")]
    assert await _grants(evaluator, idp, visas) == {"ds1", "ds2"}


async def test_passport_itself_must_verify(evaluator: PassportEvaluator, idp: IdP) -> None:
    with pytest.raises(Unauthenticated, match="untrusted issuer"):
        await evaluator.principal(idp.rogue.passport([_grant(idp)]))
    with pytest.raises(Unauthenticated, match="audience"):
        await evaluator.principal(idp.broker.passport([_grant(idp)], aud="elsewhere"))
    with pytest.raises(Unauthenticated, match="malformed"):
        await evaluator.principal(idp.broker.mint({"aud": "fednode", "ga4gh_passport_v1": "x"}))


async def test_too_many_visas_rejected(idp: IdP, cache: JWKSCache) -> None:
    evaluator = PassportEvaluator(auth_settings(idp, max_visas=3), cache)
    visas = [_grant(idp)] * 4
    with pytest.raises(Unauthenticated, match="too many visas"):
        await evaluator.principal(idp.broker.passport(visas))
    assert await _grants(evaluator, idp, visas[:3]) == {"ds1"}


def _regex_oracle(pattern: str, text: str) -> bool:
    translated = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(translated, text, flags=re.DOTALL) is not None


@given(st.text(alphabet="ab?*.", max_size=8), st.text(alphabet="ab.*?", max_size=10))
def test_pattern_match_agrees_with_regex_oracle(pattern: str, text: str) -> None:
    assert pattern_match(pattern, text) == _regex_oracle(pattern, text)


def test_pattern_match_is_linear_on_hostile_patterns() -> None:
    """A backtracking matcher takes exponential time on `*a*a...b` (it would not finish);
    the table costs the same for any pattern of that size. Compared with a benign pattern
    of equal length and as many stars, timed alike under the same load (no fixed seconds)."""
    text = "a" * 255
    hostile, benign = "*a" * 100 + "b", "*" * 100 + "a" * 100 + "b"
    assert not pattern_match(hostile, text) and not pattern_match(benign, text)
    assert _best_time(hostile, text) < 10 * _best_time(benign, text)


def _best_time(pattern: str, text: str) -> float:
    """The fastest of several runs (the one least disturbed by other processes)."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        pattern_match(pattern, text)
        times.append(time.perf_counter() - start)
    return min(times)
