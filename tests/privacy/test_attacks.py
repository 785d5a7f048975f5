"""The attack suite (issue 13): inference attacks over HTTP against a node with the
default settings, each also run against a node whose defences are off, where it must
succeed (so each test can fail). The node and the attacks: tests/privacy/suite.py.

Bounds: the scoped-genotype attack guesses right at most 60% of the time; differencing
recovers the exact size of at most 20% of the small groups; utility: at least 95% of
people counts >= 50 within 10%, at least 95% of common-allele queries answered.
The likelihood-ratio attack is tests/privacy/test_reidentification.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.privacy import suite
from tests.privacy.suite import Cohort

Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return suite.build_cohort(tmp_path_factory.mktemp("attack-cohort"))


async def node(aiohttp_client: Client, home: Path, cohort: Cohort, *, defended: bool = True
               ) -> TestClient:
    suite.prepare_home(home, cohort)
    app = suite.app_for(suite.node_settings(home, defended=defended), cohort.store)
    return await aiohttp_client(app)


@pytest.mark.parametrize("defended", [True, False], ids=["defaults", "defences-off"])
async def test_a_scope_of_one_person_does_not_reveal_their_genotype(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort, defended: bool
) -> None:
    client = await node(aiohttp_client, tmp_path, cohort, defended=defended)
    accuracy = await suite.scoped_genotype(client, cohort, alleles=40)
    if defended:
        assert accuracy <= 0.6
    else:
        assert accuracy >= 0.95  # the answers are the genotype


async def test_every_scope_of_one_person_gets_the_same_refusal(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    """The entry-id scope too: /individuals/{id}/g_variants, carried or not, one 403."""
    client = await node(aiohttp_client, tmp_path, cohort)
    target, _ = suite.tallest_scope(cohort.people)
    answers = set()
    for pos, ref, alt, _carried in suite.target_alleles(cohort, target, 10):
        resp = await client.get(
            f"/api/individuals/{target.id}/g_variants",
            params={"referenceName": "1", "start": str(pos - 1), "referenceBases": ref,
                    "alternateBases": alt, "assemblyId": "GRCh38",
                    "requestedGranularity": "boolean"})
        doc = await resp.json()
        answers.add((resp.status, doc.get("error", {}).get("errorMessage")))
    assert len(answers) == 1
    status, message = answers.pop()
    assert status == 403 and "fewer than 5 people" in message


@pytest.mark.parametrize("defended", [True, False], ids=["defaults", "defences-off"])
async def test_differencing_people_counts_does_not_recover_small_groups(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort, defended: bool
) -> None:
    client = await node(aiohttp_client, tmp_path, cohort, defended=defended)
    recovered, groups = await suite.differencing(client, cohort)
    assert groups >= 20
    if defended:
        assert recovered <= 0.2
    else:
        assert recovered >= 0.9  # the small-count floor alone: every difference is exact


async def test_people_counts_of_fifty_or_more_stay_useful(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    client = await node(aiohttp_client, tmp_path, cohort)
    within, answered = await suite.people_utility(client, cohort, sets=20)
    assert answered == 20 and within >= 0.95


async def test_common_alleles_are_answered(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    client = await node(aiohttp_client, tmp_path, cohort)
    answered, asked = await suite.variant_utility(client, cohort)
    assert asked >= 100 and answered >= 0.95


async def test_the_same_set_gets_the_same_noised_count_for_free(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    """Repeating a query, or wording it differently, cannot average the noise away."""
    client = await node(aiohttp_client, tmp_path, cohort)
    heights = sorted(p.height for p in cohort.people)
    cut = (heights[299] + heights[300]) / 2
    answers = []
    for nudge in (0.0, 0.001, 0.002, 0.0):
        status, doc = await suite.count_people(
            client, [suite.height_filter("<", cut + nudge)], "198.51.100.77")
        assert status == 200, doc
        answers.append((doc["responseSummary"]["numTotalResults"],
                        doc["responseSummary"]["countPrecision"]))
    assert len(set(answers)) == 1 and answers[0][1] == "imprecise"
    # One ε spent (of the address's 1.2): a second, different set still fits.
    status, _ = await suite.count_people(client, [suite.height_filter("<", heights[600])],
                                         "198.51.100.77")
    assert status == 200
