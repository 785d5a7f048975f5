"""A federated answer priced for the end user, at the coordinator.

Nodes charge the coordinator (they see one requester, its own credentials), so a user
asking through the coordinator would otherwise spend nobody's budget — or, keyed per
node, could ask k nodes for k budgets. The coordinator therefore keeps each user's
ledger itself and charges every merged answer once, for all it releases, priced by
node/privacy's `DisclosureGate.price` (imported, not re-implemented): per (node,
dataset) result set, the alleles it says are present, with that dataset's statistics.

Peers report guarded counts, so the statistics are the most revealing ones the answer
allows: the allele count's lower bound (a rarer allele is a costlier "yes"), the
allele number as shown; the individuals of a dataset are those called at the allele
(AN / 2). An answer without counts (a boolean dataset, a third-party beacon) is priced
as a singleton in a dataset of `UNKNOWN_INDIVIDUALS`, the rarest thing a "yes" can be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from node.domain import AlleleStats
from node.names import CountPrecision, Granularity
from node.peer._pb import peer_pb2 as pb
from node.peer.coordinator import AlleleTotal
from node.privacy.budget import Charge
from node.privacy.gate import DisclosureGate
from node.privacy.guard import GuardedCount

__all__ = [
    "UNKNOWN_INDIVIDUALS",
    "answer_charge",
    "frequency_charge",
    "people_charge",
    "set_charge",
    "stats_of",
]

UNKNOWN_INDIVIDUALS = 1000


def stats_of(stats: pb.DatasetAlleleStats) -> AlleleStats:
    """The most revealing true statistics consistent with a peer's guarded answer."""
    if stats.granularity == pb.GRANULARITY_BOOLEAN or not stats.HasField("allele_count"):
        return _singleton(UNKNOWN_INDIVIDUALS)
    ac = max(1, stats.allele_count.lower)
    an = max(ac, stats.allele_number.value, 2)
    carriers = min(ac, max(1, stats.carriers.lower))
    hom = min(stats.homozygotes.lower, carriers)
    return AlleleStats(ac, an, hom, carriers - hom, carriers, an // 2)


def _singleton(individuals: int) -> AlleleStats:
    return AlleleStats(1, 2 * individuals, 0, 1, 1, individuals)


def set_charge(
    gate: DisclosureGate,
    granularity: Granularity,
    present: Sequence[pb.DatasetAlleleStats] | None,
    count: int = 0,
) -> Charge:
    """What one result set costs: `present` are the alleles it says a dataset holds; None
    for a peer that gave only a number of variants (`count`, a third-party beacon)."""
    if present is None:
        alleles = [_singleton(UNKNOWN_INDIVIDUALS)] * min(count, 1)
        individuals = UNKNOWN_INDIVIDUALS
    else:
        alleles = [stats_of(s) for s in present]
        individuals = max((a.n_called for a in alleles), default=UNKNOWN_INDIVIDUALS)
    shown = GuardedCount(len(alleles), CountPrecision.EXACT)
    return gate.price(alleles, granularity, max(1, individuals), shown)


def people_charge(
    gate: DisclosureGate, granularity: Granularity, lower: int, exists: bool
) -> Charge:
    """A count of individuals carrying an allele, priced as that allele carried by
    `lower` (at least one when it exists) of `UNKNOWN_INDIVIDUALS` people, plus the ε a
    node charges for a count of people (`people_epsilon`): the user pays here what it
    would pay asking the node itself."""
    alleles = []
    if exists:
        n = max(1, lower)
        alleles = [AlleleStats(n, 2 * UNKNOWN_INDIVIDUALS, 0, n, n, UNKNOWN_INDIVIDUALS)]
    shown = GuardedCount(len(alleles), CountPrecision.EXACT)
    charge = gate.price(alleles, granularity, UNKNOWN_INDIVIDUALS, shown)
    return Charge(llr=charge.llr, epsilon=charge.epsilon + (gate.privacy.people_epsilon or 0.0))


def frequency_charge(
    gate: DisclosureGate, granularity: Granularity, totals: Sequence[AlleleTotal]
) -> Charge:
    """Merged allele statistics, each priced as the gate prices an allele answer in the
    population it describes (the federation's samples called there, AN / 2, with the
    most revealing statistics the intervals allow); an allele nobody carries (AC 0) is
    a "no", priced as the gate prices absence."""
    parts = []
    for total in totals:
        an = max(2, total.allele_number.value)
        alleles = []
        if total.exists:
            ac = max(1, total.allele_count.lower)
            carriers = min(ac, max(1, total.carriers.lower))
            hom = min(total.homozygotes.lower, carriers)
            alleles = [AlleleStats(ac, max(an, ac), hom, carriers - hom, carriers, an // 2)]
        shown = GuardedCount(len(alleles), CountPrecision.EXACT)
        parts.append(gate.price(alleles, granularity, an // 2, shown))
    return answer_charge(parts)


def answer_charge(charges: Iterable[Charge]) -> Charge:
    """The whole answer's charge: evidence and ε of its parts add up."""
    parts = list(charges)
    return Charge(llr=sum(c.llr for c in parts), epsilon=sum(c.epsilon for c in parts))
