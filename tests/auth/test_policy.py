"""The access matrix: requester kind, dataset security level, configured granularities;
an expired principal is refused, never downgraded."""

from __future__ import annotations

import pytest

from node.auth.policy import effective_granularity, requester_level
from node.config import DatasetSettings
from node.domain import Principal
from node.errors import Unauthenticated
from node.names import Granularity, SecurityLevel

NOW = 1_700_000_000
ANON = Principal.anonymous()
AUTHENTICATED = Principal("alice", "https://broker.example", False, frozenset(), NOW + 60)
REGISTERED = Principal("alice", "https://broker.example", True, frozenset(), NOW + 60)
GRANTED = Principal("alice", "https://broker.example", False, frozenset({"ds1"}), NOW + 60)
OTHER_GRANT = Principal("alice", "https://broker.example", True, frozenset({"ds2"}), NOW + 60)
EXPIRED = Principal("alice", "https://broker.example", True, frozenset({"ds1"}), NOW - 1)

B, C, R = Granularity.BOOLEAN, Granularity.COUNT, Granularity.RECORD
P, G, X = SecurityLevel.PUBLIC, SecurityLevel.REGISTERED, SecurityLevel.CONTROLLED
FULL_MAP = {P: B, G: C, X: R}


def _dataset(level: SecurityLevel, mapping: dict[SecurityLevel, Granularity]) -> DatasetSettings:
    return DatasetSettings(security_level=level, max_granularity=mapping)


@pytest.mark.parametrize(
    ("principal", "level"),
    [
        (ANON, P),
        (AUTHENTICATED, P),
        (REGISTERED, G),
        (GRANTED, X),
        (OTHER_GRANT, G),  # a grant for another dataset is not a grant for this one
    ],
)
def test_requester_level(principal: Principal, level: SecurityLevel) -> None:
    assert requester_level(principal, "ds1", now=NOW) is level


@pytest.mark.parametrize(
    ("principal", "security", "mapping", "expected"),
    [
        # default map on every dataset level
        (ANON, X, FULL_MAP, B),
        (REGISTERED, X, FULL_MAP, C),
        (GRANTED, X, FULL_MAP, R),
        (OTHER_GRANT, X, FULL_MAP, C),
        (ANON, G, FULL_MAP, B),
        (REGISTERED, G, FULL_MAP, C),
        (ANON, P, FULL_MAP, B),
        # records never reach a requester below the dataset's level, whatever the map says
        (ANON, X, {P: R}, C),
        (REGISTERED, X, {P: B, G: R}, C),
        (ANON, G, {P: R}, C),
        (REGISTERED, G, {P: B, G: R}, R),
        (ANON, P, {P: R}, R),
        # nothing listed at or below the requester's level: deny
        (ANON, X, {G: C, X: R}, None),
        (AUTHENTICATED, X, {X: R}, None),
        (REGISTERED, X, {X: R}, None),
        (ANON, P, {}, None),
        (GRANTED, X, {}, None),
        # a level missing from the map inherits the best lower level (never less access)
        (GRANTED, X, {P: C}, C),
        (REGISTERED, X, {P: C}, C),
        (GRANTED, X, {P: C, G: B}, C),
    ],
)
def test_granularity_matrix(
    principal: Principal,
    security: SecurityLevel,
    mapping: dict[SecurityLevel, Granularity],
    expected: Granularity | None,
) -> None:
    got = effective_granularity(principal, "ds1", _dataset(security, mapping), now=NOW)
    assert got is expected


def test_default_dataset_settings_deny_records_to_everyone_without_grant() -> None:
    default = DatasetSettings()
    for principal in (ANON, AUTHENTICATED, REGISTERED, OTHER_GRANT):
        assert effective_granularity(principal, "ds1", default, now=NOW) is not R
    assert effective_granularity(GRANTED, "ds1", default, now=NOW) is R


@pytest.mark.parametrize("principal", [ANON, REGISTERED, GRANTED, OTHER_GRANT])
@pytest.mark.parametrize("security", [P, G, X])
def test_more_credentials_never_reduce_access(
    principal: Principal, security: SecurityLevel
) -> None:
    dataset = _dataset(security, FULL_MAP)
    got = effective_granularity(principal, "ds1", dataset, now=NOW)
    anon = effective_granularity(ANON, "ds1", dataset, now=NOW)
    assert anon is not None and got is not None and got.rank >= anon.rank


@pytest.mark.parametrize("security", [P, G, X])
def test_expired_principal_is_refused_not_downgraded(security: SecurityLevel) -> None:
    # Issue 13: answering an expired requester as PUBLIC hid the expiry behind boolean
    # answers; it must be told (401) to present a fresh passport.
    with pytest.raises(Unauthenticated, match="token expired"):
        effective_granularity(EXPIRED, "ds1", _dataset(security, FULL_MAP), now=NOW)


def test_principal_keeps_its_level_until_the_instant_it_expires() -> None:
    # `expires_at` already includes the verifier's leeway: the policy adds none.
    until = GRANTED.expires_at
    assert until is not None
    assert requester_level(GRANTED, "ds1", now=until - 1) is X
    with pytest.raises(Unauthenticated, match="token expired"):
        requester_level(GRANTED, "ds1", now=until)
