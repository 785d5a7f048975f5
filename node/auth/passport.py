"""GA4GH Passport v1 evaluation: a verified passport → a `Principal`.

A passport (a JWT from a trusted broker) carries `ga4gh_passport_v1`, a list of visa JWTs.
Each visa is verified on its own against the trusted *visa* issuers (signature, times,
pinned algorithm, `kid`, `jku` allowlist: node/auth/jwt.py); visas that fail are ignored,
never trusted in part (Passport v1 §General Requirements 8). Then:

- identity: a visa counts only if its `sub` is the passport's, or a trusted
  LinkedIdentities visa links its {sub, iss} to the holder (§General Requirements 8.4);
- conditions are evaluated (§conditions: DNF, const/pattern/split_pattern) against the
  holder's condition-free visas; a visa whose conditions are unmet is rejected;
- a ControlledAccessGrants visa grants dataset D only if its `value` equals D's configured
  value exactly (§URL Claims: full case-sensitive string match) and its `source` and `by`
  are accepted for D;
- registered access is AcceptedTermsAndPolicies (`by` required) + ResearcherStatus
  (§Registered Access);
- the principal expires at the minimum over the passport and the visas relied on
  (§Visa Expiry, "Expiry when using multiple Visas") of the instant each stops being
  accepted: `exp` plus the verifier's leeway (`Claims.accepted_until`). The leeway is added
  once, by the verifier; nothing here adds or drops it, so a visa accepted within the
  leeway still counts when the policy checks the principal (issue 13).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from node.auth.jwt import Claims, JWKSCache, TokenVerifier
from node.config import AuthSettings, DatasetGrantSettings
from node.domain import Principal
from node.errors import NodeError, Unauthenticated

__all__ = ["PassportEvaluator", "Visa", "evaluate", "pattern_match"]

log = logging.getLogger(__name__)

PASSPORT_CLAIM = "ga4gh_passport_v1"
VISA_CLAIM = "ga4gh_visa_v1"
_URL_MAX = 255  # §URL Claims: MUST NOT exceed 255 characters
_VALUE_MAX = 4096  # LinkedIdentities values are lists; bound them anyway
_CLAUSE_FIELDS = frozenset({"value", "source", "by"})
_URL_VALUED = frozenset({"ControlledAccessGrants", "AcceptedTermsAndPolicies", "ResearcherStatus"})
_NEVER = 2**62  # "no bound" for min() over expiries

Identity = tuple[str, str]  # (sub, iss)


@dataclass(frozen=True, slots=True)
class Visa:
    """A visa whose signature and times have been verified; `accepted_until` is its `exp`
    plus the verifier's leeway (`Claims.accepted_until`)."""

    issuer: str
    subject: str
    accepted_until: int
    type: str
    value: str
    source: str
    asserted: int
    by: str | None = None
    conditions: Any = None  # raw JSON; validated when evaluated

    def field(self, name: str) -> str | None:
        return {"value": self.value, "source": self.source, "by": self.by}.get(name)


class PassportEvaluator:
    """Turns a bearer passport into a Principal; built once per app from settings."""

    def __init__(
        self,
        settings: AuthSettings,
        cache: JWKSCache | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        leeway, size = settings.leeway_s, settings.max_token_bytes
        self._brokers = TokenVerifier(
            settings.brokers, cache, leeway_s=leeway, max_token_bytes=size
        )
        self._visas = TokenVerifier(
            settings.visa_issuers,
            cache,
            leeway_s=leeway,
            max_token_bytes=size,
            check_audience=False,
        )
        self._settings = settings
        self._clock = clock

    async def principal(self, token: str) -> Principal:
        """The Principal of a passport JWT; Unauthenticated if the passport itself fails."""
        claims = await self._brokers.verify(token)
        raw = claims.payload.get(PASSPORT_CLAIM, [])
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise Unauthenticated("passport claim malformed")
        if len(raw) > self._settings.max_visas:
            raise Unauthenticated("passport carries too many visas")
        checked = await asyncio.gather(*(self._visa(v) for v in raw))
        visas = [v for v in checked if v is not None]
        return evaluate(claims, visas, self._settings, now=int(self._clock()))

    async def _visa(self, token: str) -> Visa | None:
        try:
            return parse_visa(await self._visas.verify(token))
        except NodeError as exc:
            # Never log the token: it is a bearer credential.
            log.info("visa ignored: %s", exc.message)
            return None


def parse_visa(claims: Claims) -> Visa:
    obj = claims.payload.get(VISA_CLAIM)
    if not isinstance(obj, dict):
        raise Unauthenticated("visa object missing")
    kind, value, source = obj.get("type"), obj.get("value"), obj.get("source")
    asserted, by = obj.get("asserted"), obj.get("by")
    if not (isinstance(kind, str) and isinstance(value, str) and isinstance(source, str)):
        raise Unauthenticated("visa type, value or source missing")
    if not isinstance(asserted, int) or isinstance(asserted, bool):
        raise Unauthenticated("visa asserted time missing")
    if by is not None and not isinstance(by, str):
        raise Unauthenticated("visa by malformed")
    limit = _URL_MAX if kind in _URL_VALUED else _VALUE_MAX
    if len(value) > limit or len(source) > _URL_MAX:
        raise Unauthenticated("visa value or source too long")
    return Visa(
        issuer=claims.issuer,
        subject=claims.subject,
        accepted_until=claims.accepted_until,
        type=kind,
        value=value,
        source=source,
        asserted=asserted,
        by=by,
        conditions=obj.get("conditions"),
    )


def evaluate(
    claims: Claims, visas: Sequence[Visa], settings: AuthSettings, *, now: int
) -> Principal:
    """The Principal the passport `claims` and its verified `visas` establish."""
    fresh = [v for v in visas if v.asserted <= now + settings.leeway_s]
    accepted = _apply_conditions(_holder_visas(claims.subject, fresh))
    grants = {
        ds: exp
        for ds, grant in settings.grants.items()
        if (exp := _grant_expiry(accepted, grant)) is not None
    }
    registered = _registered_expiry(accepted, settings)
    used = [claims.accepted_until, *grants.values()]
    if registered is not None:
        used.append(registered)
    return Principal(
        subject=claims.subject,
        issuer=claims.issuer,
        registered=registered is not None,
        controlled_grants=frozenset(grants),
        expires_at=min(used),
    )


def _holder_visas(holder: str, visas: Sequence[Visa]) -> list[tuple[Visa, int]]:
    """The holder's visas, each with the expiry of the visa and of any links it needed."""
    links = _linked(holder, visas)
    mine: list[tuple[Visa, int]] = []
    for visa in visas:
        if visa.subject == holder:
            mine.append((visa, visa.accepted_until))
        elif (bound := links.get((visa.subject, visa.issuer))) is not None:
            mine.append((visa, min(visa.accepted_until, bound)))
    return mine


def _linked(holder: str, visas: Iterable[Visa]) -> dict[Identity, int]:
    """Identities linked to the holder (by trusted LinkedIdentities visas), each with the
    earliest expiry of the links it relied on. Chains are followed to a fixpoint."""
    known: dict[Identity, int] = {}
    linkers = [v for v in visas if v.type == "LinkedIdentities" and v.conditions is None]
    changed = True
    while changed:
        changed = False
        for visa in linkers:
            members = {(visa.subject, visa.issuer), *_parse_linked(visa.value)}
            bounds = [_NEVER if sub == holder else known.get((sub, iss)) for sub, iss in members]
            reached = [b for b in bounds if b is not None]
            if not reached:
                continue
            bound = min(visa.accepted_until, max(reached))
            for member in members:
                if member[0] != holder and known.get(member, -1) < bound:
                    known[member] = bound
                    changed = True
    return known


def _parse_linked(value: str) -> list[Identity]:
    # §LinkedIdentities: ";"-separated "<uri-encoded sub>,<uri-encoded iss>" entries.
    pairs: list[Identity] = []
    for entry in value.split(";"):
        parts = entry.split(",")
        if len(parts) == 2 and all(parts):
            pairs.append((unquote(parts[0]), unquote(parts[1])))
    return pairs


def _apply_conditions(visas: Sequence[tuple[Visa, int]]) -> list[tuple[Visa, int]]:
    # §conditions: clauses match only visas without conditions (no nesting).
    pool = [(v, exp) for v, exp in visas if v.conditions is None]
    accepted = list(pool)
    for visa, exp in visas:
        if visa.conditions is None:
            continue
        met = conditions_expiry(visa.conditions, pool)
        if met is None:
            log.info("visa ignored: conditions unmet")
            continue
        accepted.append((visa, min(exp, met)))
    return accepted


def conditions_expiry(conditions: Any, pool: Sequence[tuple[Visa, int]]) -> int | None:
    """When `conditions` (DNF) are met by visas of `pool`, the latest expiry at which
    they still are; None when unmet or malformed (a clearinghouse must reject then)."""
    if not isinstance(conditions, list):
        return None
    best: int | None = None
    for conjunction in conditions:
        if not isinstance(conjunction, list) or not conjunction:
            continue
        exps = [_clause_expiry(clause, pool) for clause in conjunction]
        if all(e is not None for e in exps):
            met = min(e for e in exps if e is not None)
            best = met if best is None else max(best, met)
    return best


def _clause_expiry(clause: object, pool: Sequence[tuple[Visa, int]]) -> int | None:
    if not _valid_clause(clause):
        return None
    assert isinstance(clause, dict)
    exps = [exp for visa, exp in pool if _clause_matches(clause, visa)]
    return max(exps, default=None)


def _valid_clause(clause: object) -> bool:
    # §conditions: `type` plus at least one other string-valued visa object claim; never
    # `conditions` or a timestamp such as `asserted`.
    if not isinstance(clause, dict) or not isinstance(clause.get("type"), str):
        return False
    others = set(clause) - {"type"}
    return (
        bool(others)
        and others <= _CLAUSE_FIELDS
        and all(isinstance(clause[k], str) for k in others)
    )


def _clause_matches(clause: Mapping[str, str], visa: Visa) -> bool:
    if visa.type != clause["type"]:
        return False
    for name, spec in clause.items():
        if name == "type":
            continue
        actual = visa.field(name)
        if actual is None or not _field_matches(spec, actual):
            return False
    return True


def _field_matches(spec: str, actual: str) -> bool:
    kind, sep, operand = spec.partition(":")
    if not sep:
        return False
    if kind == "const":
        return actual == operand
    if kind == "pattern":
        return pattern_match(operand, actual)
    if kind == "split_pattern":
        return any(pattern_match(operand, part) for part in actual.split(";"))
    return False  # unknown prefix: the clause must fail to match


def pattern_match(pattern: str, text: str) -> bool:
    """Passport §Pattern Matching: full-string, case-sensitive; `?` one character, `*` any
    run; no escapes. Dynamic programming, so hostile patterns cannot backtrack for long.

    >>> pattern_match("faculty@*", "faculty@uni.example"), pattern_match("a?c", "abbc")
    (True, False)
    """
    if len(pattern) > _VALUE_MAX or len(text) > _VALUE_MAX:
        return False
    # row[j]: pattern[:i] matches text[:j]
    row = [True] + [False] * len(text)
    for ch in pattern:
        if ch == "*":
            nxt = [row[0]]
            for j in range(1, len(text) + 1):
                nxt.append(row[j] or nxt[j - 1])
        else:
            nxt = [False] + [
                row[j - 1] and (ch == "?" or ch == text[j - 1]) for j in range(1, len(text) + 1)
            ]
        row = nxt
    return row[-1]


def _grant_expiry(accepted: Sequence[tuple[Visa, int]], grant: DatasetGrantSettings) -> int | None:
    exps = [
        exp
        for visa, exp in accepted
        if visa.type == "ControlledAccessGrants"
        and visa.value == grant.value
        and visa.source in grant.sources
        and visa.by is not None  # §ControlledAccessGrants: MUST include `by`
        and visa.by in grant.by
    ]
    return max(exps, default=None)


def _registered_expiry(accepted: Sequence[tuple[Visa, int]], settings: AuthSettings) -> int | None:
    terms = [
        exp
        for visa, exp in accepted
        if visa.type == "AcceptedTermsAndPolicies"
        and visa.value in settings.registered_terms
        and visa.by is not None  # §AcceptedTermsAndPolicies: MUST include `by`
        and visa.by in settings.registered_terms_by
    ]
    status = [
        exp
        for visa, exp in accepted
        if visa.type == "ResearcherStatus" and visa.value in settings.researcher_status
    ]
    if not terms or not status:
        return None
    return min(max(terms), max(status))
