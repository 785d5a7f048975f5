"""What an answer about alleles reveals of membership, in the currency of the budget.

A "yes" on a rare allele is charged the Shringarpure-Bustamante log-likelihood ratio it
can give an attacker testing whether a target is in the population the answer is about
(`membership_llr`, with that population's allele statistics and size); under strict
pricing a "no" is charged like a "yes" on a singleton and rarity is judged without the
target's own copies. An ε-DP answer moves the likelihood ratio by at most e^ε.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from node.config import PrivacySettings
from node.domain import AlleleStats
from node.names import Granularity
from node.privacy.budget import Charge, membership_llr
from node.privacy.guard import GuardedCount, disclosure

__all__ = ["Pricing"]


class Pricing:
    def __init__(self, privacy: PrivacySettings) -> None:
        self._privacy = privacy

    def price(
        self,
        alleles: Sequence[AlleleStats],
        granularity: Granularity,
        individuals: int,
        guarded: GuardedCount,
        *,
        people: bool = False,
    ) -> Charge:
        if not alleles and self._absence_charged(granularity, people):
            # Nothing matched: as telling as a "yes" on a singleton to an attacker who
            # knows the target carries the allele.
            llr = membership_llr(1 / (2 * max(1, individuals)), max(1, individuals),
                                 delta=self._privacy.budget.sequencing_error)
            if guarded.epsilon:
                llr = min(llr, guarded.epsilon)
            return Charge(llr=llr, epsilon=guarded.epsilon or 0.0)
        # Alleles with equal statistics reveal equally: each distinct one is priced once
        # (a broad query's alleles are mostly a few thousand distinct rare-allele counts,
        # and pricing one takes ~10 us).
        llr_of: dict[AlleleStats, float] = {}
        each: list[float] = []
        for stats in alleles:
            known = llr_of.get(stats)
            if known is None:
                known = llr_of[stats] = self._allele_llr(stats, granularity, individuals)
            each.append(known)
        # One "yes" for many alleles says only that one of them is present: no more
        # evidence than the least revealing of them (1 - ΠD >= 1 - D_i for every i). A
        # count tells which alleles are present: their evidence adds up.
        boolean = granularity is Granularity.BOOLEAN
        llr = min(each, default=0.0) if boolean else sum(each)
        if guarded.epsilon and not people:
            # An ε-DP answer moves the membership likelihood ratio by at most e^ε.
            llr = min(llr, guarded.epsilon)
        return Charge(llr=llr, epsilon=guarded.epsilon or 0.0)

    def _absence_charged(self, granularity: Granularity, people: bool) -> bool:
        return self._privacy.strict_pricing and not people and granularity is not Granularity.RECORD

    def _allele_llr(self, stats: AlleleStats, granularity: Granularity, individuals: int) -> float:
        p = self._privacy
        if not p.strict_pricing:
            verdict = disclosure(stats, granularity, min_count=p.min_count,
                                 rare_allele_count=p.rare_allele_count,
                                 rare_allele_frequency=p.rare_allele_frequency)
            if not verdict.revealing:
                return 0.0
            return membership_llr(stats.af, max(1, individuals),
                                  delta=p.budget.sequencing_error)
        # Strict: judged without the target's own copies (up to two), else a member's
        # alleles cross the "common" line more often than a non-member's, and which
        # answers are free would itself tell members apart.
        without = replace(stats, ac=max(0, stats.ac - 2), an=max(2, stats.an - 2),
                          n_carriers=max(0, stats.n_carriers - 1))
        if stats.ac > 0 and without.ac > 0:
            verdict = disclosure(
                without,
                granularity,
                min_count=p.min_count,
                rare_allele_count=p.rare_allele_count,
                rare_allele_frequency=p.rare_allele_frequency,
            )
            if not verdict.revealing:
                return 0.0
        elif stats.ac <= 0 or granularity is Granularity.RECORD:
            return 0.0
        return membership_llr(without.af, max(1, individuals), delta=p.budget.sequencing_error)

