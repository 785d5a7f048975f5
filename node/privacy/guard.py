"""The privacy guard: every count leaving the node passes here, and says how exact it is.

- Small counts (1..k-1, default k = 5) are never reported exactly: they are raised to k
  and marked `imprecise` with `countAdjustedTo = k` (the EGA Beacon practice; DataSHIELD
  and statistics offices use 3-10). Zero stays zero: it reveals no one.
- Optional rounding up to a multiple of `round_to` (`rounded`, `countAdjustedTo` = unit).
- Optional differential privacy: the two-sided geometric mechanism (sensitivity 1,
  P(z) ∝ e^{-ε|z|}), truncated to [0, upper] (Ghosh, Roughgarden & Sundararajan 2009; Cho
  et al., Cell Systems 2020). Thresholding and rounding after noise are post-processing,
  so the ε guarantee holds; the count is then `imprecise` and carries its ε.

`disclosure()` decides whether an answer is membership-revealing (a "yes" on a rare
allele, a small non-zero count) and so must be charged to the requester's budget.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from node.config import PrivacySettings
from node.domain import AlleleStats
from node.names import CountPrecision, Granularity

__all__ = [
    "CountGuard",
    "Disclosure",
    "GuardedCount",
    "disclosure",
    "geometric_noise",
    "truncated_geometric",
]


@dataclass(frozen=True, slots=True)
class GuardedCount:
    """A count fit to leave the node: `value` with Beacon's `countPrecision` and
    `countAdjustedTo`; `epsilon` is the privacy loss spent when it was noised."""

    value: int
    precision: CountPrecision
    adjusted_to: int | None = None
    epsilon: float | None = None
    # The interval the true count is known to lie in, from the rules applied (one place:
    # the peer API reports it so a coordinator can merge honestly). `upper` None: no
    # upper bound (noise). Defaults: an exact count.
    lower: int = -1
    upper: int | None = -1

    def __post_init__(self) -> None:
        if self.lower == -1:
            object.__setattr__(self, "lower", self.value)
        if self.upper == -1:
            object.__setattr__(self, "upper", self.value)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """Whether an answer reveals membership (and must be charged), and why."""

    revealing: bool
    reason: str | None = None


class CountGuard:
    """Applies the configured threshold, rounding and noise to counts.

    `rng` defaults to the OS's CSPRNG: seeded generators are for tests only.
    """

    def __init__(
        self,
        *,
        min_count: int = 5,
        round_to: int | None = None,
        epsilon: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if min_count < 1 or (round_to is not None and round_to < 2):
            raise ValueError("min_count must be >= 1 and round_to >= 2")
        if epsilon is not None and not epsilon > 0:
            raise ValueError("epsilon must be positive")
        self.min_count = min_count
        self.round_to = round_to
        self.epsilon = epsilon
        self._rng = rng or random.SystemRandom()

    @classmethod
    def from_settings(
        cls, settings: PrivacySettings, *, rng: random.Random | None = None
    ) -> CountGuard:
        return cls(
            min_count=settings.min_count,
            round_to=settings.round_to,
            epsilon=settings.epsilon,
            rng=rng,
        )

    def count(self, true_count: int, *, upper: int | None = None) -> GuardedCount:
        """The reportable form of `true_count`; `upper` bounds noised values (e.g. N)."""
        if true_count < 0 or (upper is not None and upper < true_count):
            raise ValueError("count out of range")
        if self.epsilon is None:
            return self.coarsen(true_count)
        noised = truncated_geometric(true_count, self.epsilon, upper=upper, rng=self._rng)
        return self.coarsen(noised, epsilon=self.epsilon, bound=upper)

    def coarsen(
        self, value: int, *, epsilon: float | None = None, bound: int | None = None
    ) -> GuardedCount:
        """Threshold and rounding of `value` (the true count, or a noised one when
        `epsilon` is given: then it is imprecise and bounded only by [0, `bound`])."""
        k, unit = self.min_count, self.round_to
        noised = epsilon is not None
        lower, upper = (0, bound) if noised else (value, value)
        if 0 < value < k:
            if not noised:
                lower, upper = 1, k - 1
            return GuardedCount(k, CountPrecision.IMPRECISE, k, epsilon, lower, upper)
        if unit is not None and value % unit:
            rounded = -(-value // unit) * unit
            if not noised:  # values below k were raised above, so the true one is >= k
                lower, upper = max(k, rounded - unit + 1), rounded
            # Rounding a noised count keeps it imprecise: the noise is the larger error.
            precision = CountPrecision.IMPRECISE if noised else CountPrecision.ROUNDED
            return GuardedCount(rounded, precision, unit, epsilon, lower, upper)
        if noised:
            return GuardedCount(value, CountPrecision.IMPRECISE, None, epsilon, lower, upper)
        return GuardedCount(value, CountPrecision.EXACT)


def geometric_noise(epsilon: float, rng: random.Random) -> int:
    """A draw of the two-sided geometric distribution P(z) = (1-a)/(1+a) a^|z|, a = e^-ε:
    the difference of two i.i.d. geometric variables on {0, 1, ...} with success 1-a."""
    alpha = math.exp(-epsilon)
    return _geometric(alpha, rng) - _geometric(alpha, rng)


def _geometric(alpha: float, rng: random.Random) -> int:
    # Inverse CDF: P(G >= k) = a^k. 1 - random() lies in (0, 1], so log is finite.
    return math.floor(math.log(1.0 - rng.random()) / math.log(alpha))


def truncated_geometric(
    count: int, epsilon: float, *, upper: int | None = None, rng: random.Random
) -> int:
    """`count` plus geometric noise, clamped to [0, upper] (∞ when upper is None)."""
    noisy = max(0, count + geometric_noise(epsilon, rng))
    return noisy if upper is None else min(noisy, upper)


def disclosure(
    stats: AlleleStats,
    granularity: Granularity,
    *,
    min_count: int = 5,
    rare_allele_count: int = 4,
    rare_allele_frequency: float = 0.01,
) -> Disclosure:
    """Whether answering about an allele with `stats` at `granularity` reveals membership.

    A "no" is not charged: it is evidence *against* a target's presence (Shringarpure &
    Bustamante 2015). A "yes" on a rare allele is what the likelihood-ratio attack feeds
    on (rarest alleles first: Raisaro et al. 2017); a small count adds the carrier count.
    Record-level answers go only to grant holders and are not budgeted here.
    """
    if granularity is Granularity.RECORD:
        return Disclosure(False, None)
    if stats.ac <= 0:
        return Disclosure(False, None)
    if granularity is Granularity.COUNT and 0 < stats.n_carriers < min_count:
        return Disclosure(True, "small count")
    if stats.ac <= rare_allele_count or stats.af < rare_allele_frequency:
        return Disclosure(True, "rare allele present")
    return Disclosure(False, None)
