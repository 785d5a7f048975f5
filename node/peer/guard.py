"""The privacy guard as the peer API reports it: a guarded count and the interval that
holds the true count, so a coordinator can merge counts from many nodes honestly.

The rules and the bounds they imply are node/privacy/guard.py's (`GuardedCount.lower`,
`upper`: thresholded counts are in [1, k-1], rounded ones in [max(k, v - unit + 1), v],
noised ones have no upper bound); this module only carries them to the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from node.config import PrivacySettings
from node.names import CountPrecision
from node.privacy.guard import CountGuard as PrivacyGuard
from node.privacy.guard import GuardedCount

__all__ = ["UNKNOWN", "BoundedCount", "BoundedGuard", "CountGuard", "bounded"]


@dataclass(frozen=True, slots=True)
class BoundedCount:
    """A count to show (`value`) and the interval [lower, upper] the true count is in;
    `upper` None: no upper bound is known. `unknown`: the node does not know the count
    at all (an allele number where none of its samples is called): 0, [0, ∞)."""

    value: int
    precision: CountPrecision
    lower: int
    upper: int | None
    unknown: bool = False

    @classmethod
    def exact(cls, n: int) -> BoundedCount:
        return cls(n, CountPrecision.EXACT, n, n)


UNKNOWN = BoundedCount(0, CountPrecision.IMPRECISE, 0, None, unknown=True)


class CountGuard(Protocol):
    def count(self, n: int) -> BoundedCount: ...


class BoundedGuard:
    """node/privacy's guard, with the bounds it computed for each answer."""

    def __init__(self, settings: PrivacySettings) -> None:
        self._guard = PrivacyGuard.from_settings(settings)

    def count(self, n: int) -> BoundedCount:
        return bounded(self._guard.count(n))


def bounded(guarded: GuardedCount) -> BoundedCount:
    """The peer API's form of a guarded count: its value, precision and the interval
    node/privacy/guard.py derived (never re-derived here)."""
    return BoundedCount(guarded.value, guarded.precision, guarded.lower, guarded.upper)
