"""The privacy guard as the peer API reports it: a guarded count and the interval that
holds the true count, so a coordinator can merge counts from many nodes honestly.

The rules are node/privacy/guard.py's (threshold, rounding, noise); this module only
derives the bounds each rule implies: thresholded counts are in [1, k-1], rounded ones
in [max(k, v - unit + 1), v], noised ones have no bound (`upper` None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from node.config import PrivacySettings
from node.names import CountPrecision
from node.privacy.guard import CountGuard as PrivacyGuard

__all__ = ["BoundedCount", "BoundedGuard", "CountGuard", "Precision"]

Precision = Literal["exact", "rounded", "imprecise"]


@dataclass(frozen=True, slots=True)
class BoundedCount:
    """A count to show (`value`) and the interval [lower, upper] the true count is in;
    `upper` None: no upper bound is known."""

    value: int
    precision: Precision
    lower: int
    upper: int | None

    @classmethod
    def exact(cls, n: int) -> BoundedCount:
        return cls(n, "exact", n, n)


class CountGuard(Protocol):
    def count(self, n: int) -> BoundedCount: ...


class BoundedGuard:
    """node/privacy's guard, with the bounds of each answer."""

    def __init__(self, settings: PrivacySettings) -> None:
        self._guard = PrivacyGuard.from_settings(settings)
        self._min = settings.min_count

    def count(self, n: int) -> BoundedCount:
        guarded = self._guard.count(n)
        value, unit = guarded.value, guarded.adjusted_to
        if guarded.epsilon is not None:
            return BoundedCount(value, "imprecise", 0, None)
        if guarded.precision is CountPrecision.EXACT:
            return BoundedCount.exact(value)
        if guarded.precision is CountPrecision.ROUNDED and unit is not None:
            return BoundedCount(value, "rounded", max(self._min, value - unit + 1), value)
        return BoundedCount(value, "imprecise", 1, self._min - 1)
