"""Access policy: principal and dataset → the most revealing granularity allowed.

The requester's level for a dataset is CONTROLLED with an unexpired grant for *that*
dataset, REGISTERED with registered (bona fide) access, PUBLIC otherwise — anonymous
included. The dataset's `max_granularity` maps levels to granularities; a level missing
from the map gets what the highest lower level gets (more credentials never reduce
access), and nothing when no level at or below it is listed (deny by default). A requester
below the dataset's `security_level` never sees records (Beacon v2 security levels: records
of a CONTROLLED dataset only with a grant), whatever the map says.

An expired principal is refused (Unauthenticated, 401), never downgraded to PUBLIC:
`expires_at` already includes the verifier's leeway (node/auth/jwt.py), so from then on
the verifier would refuse the token too. This check is what refuses a principal that
expires while it is held (during a request, or in any cache of principals).
"""

from __future__ import annotations

from node.config import DatasetSettings
from node.domain import Principal
from node.errors import Unauthenticated
from node.names import Granularity, SecurityLevel

__all__ = ["effective_granularity", "requester_level"]

_LEVEL_RANK = {SecurityLevel.PUBLIC: 0, SecurityLevel.REGISTERED: 1, SecurityLevel.CONTROLLED: 2}


def requester_level(principal: Principal, dataset_id: str, *, now: int) -> SecurityLevel:
    """The security level `principal` holds for `dataset_id` at time `now`; Unauthenticated
    once the principal has expired."""
    if principal.expires_at is not None and principal.expires_at <= now:
        # Visa Expiry: past it no access is granted on the strength of the visas, and the
        # verifier would refuse the token now, so refuse (401) like it rather than downgrade.
        raise Unauthenticated("token expired")
    if dataset_id in principal.controlled_grants:
        return SecurityLevel.CONTROLLED
    if principal.registered:
        return SecurityLevel.REGISTERED
    return SecurityLevel.PUBLIC


def effective_granularity(
    principal: Principal, dataset_id: str, dataset: DatasetSettings, *, now: int
) -> Granularity | None:
    """The granularity `principal` may receive from `dataset_id`; None: no access at all.
    Unauthenticated once the principal has expired (see `requester_level`)."""
    level = requester_level(principal, dataset_id, now=now)
    allowed = [
        granularity
        for listed, granularity in dataset.max_granularity.items()
        if _LEVEL_RANK[listed] <= _LEVEL_RANK[level]
    ]
    if not allowed:
        return None
    best = max(allowed, key=lambda g: g.rank)
    if _LEVEL_RANK[level] < _LEVEL_RANK[dataset.security_level] and best is Granularity.RECORD:
        return Granularity.COUNT
    return best
