"""The privacy guard as the peer API sees it: one true count in, one guarded count out.

`CountGuard` is the seam to node/privacy (thresholds, rounding, noise, budgets); until
that lands, `ThresholdGuard` applies the two deterministic rules of `PrivacySettings`:
counts 1..min_count-1 become the interval [1, min_count-1] (CanDIG's "<5"), and with
`round_to` counts are rounded up to a multiple. Zero stays an exact zero: absence is
what `exists` says anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from node.config import PrivacySettings

__all__ = ["CountGuard", "GuardedCount", "Precision", "ThresholdGuard"]

Precision = Literal["exact", "rounded", "imprecise"]


@dataclass(frozen=True, slots=True)
class GuardedCount:
    """A count to show (`value`) and the interval the true count lies in."""

    value: int
    precision: Precision
    lower: int
    upper: int

    @classmethod
    def exact(cls, n: int) -> GuardedCount:
        return cls(n, "exact", n, n)


class CountGuard(Protocol):
    def count(self, n: int) -> GuardedCount: ...


class ThresholdGuard:
    def __init__(self, settings: PrivacySettings) -> None:
        self._min = settings.min_count
        self._round = settings.round_to

    def count(self, n: int) -> GuardedCount:
        if n < 0:
            raise ValueError("counts are never negative")
        if n == 0:
            return GuardedCount.exact(0)
        if n < self._min:
            # The upper end is shown: a suppressed count never reads as absence.
            return GuardedCount(self._min - 1, "imprecise", 1, self._min - 1)
        if self._round is not None:
            # Multiples are reported as rounded too: "exact" would single them out.
            shown = -(-n // self._round) * self._round
            return GuardedCount(shown, "rounded", max(self._min, shown - self._round + 1), shown)
        return GuardedCount.exact(n)
