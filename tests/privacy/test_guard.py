"""Count guard: thresholds, rounding, the geometric mechanism and disclosure decisions."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import PrivacySettings
from node.domain import AlleleStats
from node.names import CountPrecision, Granularity
from node.peer.guard import bounded
from node.privacy.guard import CountGuard, disclosure, geometric_noise, truncated_geometric

# Upper 0.1% points of the chi-square distribution (scipy.stats.chi2.ppf(0.999, df)).
CHI2_999 = {5: 20.515, 17: 40.790}


@given(count=st.integers(0, 500), k=st.integers(2, 20))
def test_small_counts_never_exact(count: int, k: int) -> None:
    out = CountGuard(min_count=k).count(count)
    if 0 < count < k:
        assert (out.value, out.precision, out.adjusted_to) == (k, CountPrecision.IMPRECISE, k)
        assert out.value != count
    else:
        assert (out.value, out.precision, out.adjusted_to) == (count, CountPrecision.EXACT, None)


@given(count=st.integers(0, 500), unit=st.integers(2, 100))
def test_rounding_up_to_unit(count: int, unit: int) -> None:
    out = CountGuard(min_count=5, round_to=unit).count(count)
    if 0 < count < 5:
        assert out.precision is CountPrecision.IMPRECISE and out.value == 5
    elif count % unit == 0:
        assert (out.value, out.precision) == (count, CountPrecision.EXACT)
    else:
        assert out.value % unit == 0 and count < out.value < count + unit
        assert (out.precision, out.adjusted_to) == (CountPrecision.ROUNDED, unit)


@given(count=st.integers(0, 300), seed=st.integers(0, 2**32))
def test_noised_counts_are_never_exact_and_state_epsilon(count: int, seed: int) -> None:
    guard = CountGuard(min_count=5, epsilon=1.0, rng=random.Random(seed))
    out = guard.count(count, upper=300)
    assert out.precision is CountPrecision.IMPRECISE and out.epsilon == 1.0
    assert 0 <= out.value <= 300
    assert not 0 < out.value < 5  # the threshold applies after the noise


def test_from_settings() -> None:
    guard = CountGuard.from_settings(PrivacySettings(min_count=10, round_to=10))
    assert guard.count(3).value == 10 and guard.count(11).value == 20


@pytest.mark.parametrize("kwargs", [{"min_count": 0}, {"round_to": 1}, {"epsilon": 0.0}])
def test_bad_parameters_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CountGuard(**kwargs)  # type: ignore[arg-type]


def _chi_square(samples: list[int], pmf: Callable[[int], float], bins: list[int]) -> float:
    """Pearson's statistic over `bins` plus one bin for everything else."""
    counts = Counter(samples)
    n = len(samples)
    stat, inside = 0.0, 0.0
    for b in bins:
        expected = n * pmf(b)
        stat += (counts.get(b, 0) - expected) ** 2 / expected
        inside += pmf(b)
    rest_observed = n - sum(counts.get(b, 0) for b in bins)
    rest_expected = n * (1 - inside)
    return stat + (rest_observed - rest_expected) ** 2 / rest_expected


def _two_sided_pmf(epsilon: float) -> Callable[[int], float]:
    a = math.exp(-epsilon)
    return lambda z: (1 - a) / (1 + a) * a ** abs(z)


def test_geometric_noise_matches_its_pmf() -> None:
    rng = random.Random(20240611)
    samples = [geometric_noise(0.5, rng) for _ in range(20_000)]
    bins = list(range(-8, 9))  # 17 bins + the tails = 18 cells: df = 17
    assert _chi_square(samples, _two_sided_pmf(0.5), bins) < CHI2_999[17]
    # The test has power: the same draws are far from the pmf of a nearby epsilon.
    assert _chi_square(samples, _two_sided_pmf(0.6), bins) > 3 * CHI2_999[17]
    assert abs(sum(samples) / len(samples)) < 0.1  # symmetric around zero


def test_truncated_geometric_matches_its_pmf() -> None:
    eps, count, upper = 1.0, 2, 5
    a = math.exp(-eps)
    inner = _two_sided_pmf(eps)

    def pmf(out: int) -> float:
        # Clamping piles the tails onto the ends: P(out=0) = P(Z <= -2), P(out=5) = P(Z >= 3).
        if out == 0:
            return a**count / (1 + a)
        if out == upper:
            return a ** (upper - count) / (1 + a)
        return inner(out - count)

    assert math.isclose(sum(pmf(o) for o in range(upper + 1)), 1.0)
    rng = random.Random(7)
    samples = [truncated_geometric(count, eps, upper=upper, rng=rng) for _ in range(20_000)]
    assert set(samples) <= set(range(upper + 1))
    assert _chi_square(samples, pmf, list(range(upper))) < CHI2_999[5]


def _stats(ac: int, an: int = 2000, carriers: int | None = None) -> AlleleStats:
    n = carriers if carriers is not None else ac
    return AlleleStats(ac=ac, an=an, n_hom_alt=0, n_het=n, n_carriers=n, n_called=an // 2)


@pytest.mark.parametrize(
    ("stats", "granularity", "revealing"),
    [
        (_stats(0), Granularity.BOOLEAN, False),  # "no" is not charged
        (_stats(1), Granularity.BOOLEAN, True),  # singleton "yes"
        (_stats(4), Granularity.BOOLEAN, True),
        (_stats(19), Granularity.BOOLEAN, True),  # AF 0.0095 < 0.01
        (_stats(20), Granularity.BOOLEAN, False),  # AF 0.01: common enough
        (_stats(300), Granularity.BOOLEAN, False),
        (_stats(30, carriers=3), Granularity.COUNT, True),  # small carrier count
        (_stats(300, carriers=200), Granularity.COUNT, False),
        (_stats(1), Granularity.RECORD, False),  # grant holders: not budgeted here
    ],
)
def test_disclosure(stats: AlleleStats, granularity: Granularity, revealing: bool) -> None:
    got = disclosure(
        stats, granularity, min_count=5, rare_allele_count=4, rare_allele_frequency=0.01
    )
    assert got.revealing is revealing
    assert (got.reason is not None) is revealing


@pytest.mark.parametrize("round_to", [None, 2, 3, 5, 10])
@pytest.mark.parametrize("min_count", [1, 2, 5, 7])
def test_reported_bounds_always_hold_the_true_count(min_count: int, round_to: int | None
                                                     ) -> None:
    """The interval a guarded count reports (and the peer API sends on: one place)
    contains the true count under every threshold and rounding."""
    guard = CountGuard(min_count=min_count, round_to=round_to)
    for n in range(0, 80):
        got = guard.count(n)
        assert got.lower <= n and (got.upper is None or n <= got.upper), (n, got)
        wire = bounded(got)
        assert (wire.lower, wire.upper, wire.value) == (got.lower, got.upper, got.value)
