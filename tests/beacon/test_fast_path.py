"""The event-loop fast path (node.beacon.query.in_memory) answers exactly as the threaded
path does: same documents for exact-allele queries (hits, misses, padded and trimmed
forms, wildcards), each valid against the official schemas and checked against bcftools;
and only requests that need no I/O take it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import node.web.beacon
from node.beacon.info import by_path
from node.beacon.models import BeaconRequest
from node.beacon.query import Context, in_memory
from node.beacon.variants import VariantQuery
from node.config import AuditSettings, Settings
from node.domain import AlleleKey, AlleleStats, Filter, Principal, Record, Region, Variant
from node.names import Granularity, SecurityLevel, VariantType
from node.privacy.budget import Balance
from node.privacy.gate import DisclosureGate, anonymous_key
from node.service import Planner, plan
from node.store.base import VariantStore
from node.store.registry import DatasetRegistry
from node.web.privacy import GATE
from tests.beacon.conftest import OPEN, make_app
from tests.beacon.test_g_variants import check_schema
from tests.beacon.truth import carriers, indexed_copy


class Threaded:
    """A store that never says it is resident: every request takes the threaded path."""

    def __init__(self, inner: VariantStore) -> None:
        self._inner = inner

    @property
    def samples(self) -> tuple[str, ...]:
        return self._inner.samples

    @property
    def assembly(self) -> str:
        return self._inner.assembly

    def contigs(self) -> tuple[str, ...]:
        return self._inner.contigs()

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        return self._inner.allele_stats(keys)

    def variants(
        self, region: Region, *, variant_types: frozenset[VariantType] | None = None,
        min_length: int | None = None, max_length: int | None = None,
    ) -> Iterator[Variant]:
        return self._inner.variants(region, variant_types=variant_types,
                                    min_length=min_length, max_length=max_length)

    def records(self, region: Region, *, samples: Sequence[str] | None = None,
                batch_size: int = 1024) -> Iterator[list[Record]]:
        return self._inner.records(region, samples=samples, batch_size=batch_size)

    def close(self) -> None:
        """The inner store belongs to the session."""


# (start, REF, ALT) in VCF form: an insertion, SNVs, a deletion, both ALTs of the
# multi-allelic site 66381, and alleles absent from the file.
VCF_FORM = [
    (10176, "A", "AC"), (10234, "T", "TA"), (13272, "G", "C"), (10615, "CCGCCGTTGCAAAGGCGCGCCG",
    "C"), (66380, "TATATA", "AATATA"), (66380, "TATATA", "T"), (10176, "A", "G"),
    (10351, "A", "AC"), (999_999, "C", "T"),
]
# Forms bcftools does not write: the trimmed allele of 66381 and an N wildcard.
OTHER_FORMS = [(66380, "T", "A"), (10176, "A", "AN"), (13272, "N", "C")]


@pytest.fixture(scope="module")
def tg_indexed(tg_vcf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return indexed_copy(tg_vcf, tmp_path_factory.mktemp("truth") / "tg.vcf.gz")


async def _doc(client: Any, start: int, ref: str, alt: str, granularity: str) -> dict[str, Any]:
    params = {"referenceName": "1", "start": str(start), "referenceBases": ref,
              "alternateBases": alt, "requestedGranularity": granularity}
    resp = await client.get("/api/g_variants", params=params)
    assert resp.status == 200, await resp.text()
    doc: dict[str, Any] = await resp.json()
    check_schema(doc)
    return doc


@pytest.mark.parametrize("granularity", ["boolean", "count"])
async def test_fast_and_threaded_answers_agree_and_match_bcftools(
    aiohttp_client: Any, tmp_path: Path, tg_store: VariantStore, tg_indexed: Path,
    granularity: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[bool] = []

    def recording(*args: Any, **kwargs: Any) -> bool:
        taken.append(in_memory(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(node.web.beacon, "in_memory", recording)
    no_budget: Any = {"budget": {"enabled": False}}
    fast = await aiohttp_client(make_app(tmp_path / "a", {"tg": tg_store}, {"tg": OPEN},
                                         privacy=no_budget))
    slow = await aiohttp_client(make_app(tmp_path / "b", {"tg": Threaded(tg_store)},
                                         {"tg": OPEN}, privacy=no_budget))
    for client in (fast, slow):  # opens the store and reads the catalog (in a thread)
        await _doc(client, *VCF_FORM[0], granularity)
    for start, ref, alt in VCF_FORM + OTHER_FORMS:
        a = await _doc(fast, start, ref, alt, granularity)
        b = await _doc(slow, start, ref, alt, granularity)
        assert a == b, (start, ref, alt)
        assert taken[-2:] == [True, False]  # the fast app on the loop, the other in a thread
        if (start, ref, alt) in VCF_FORM:
            carried = carriers(tg_indexed, start + 1, ref, alt)
            assert a["responseSummary"]["exists"] is bool(carried), (start, ref, alt)
            if granularity == "count":
                assert a["responseSummary"]["numTotalResults"] == int(bool(carried))
        else:
            assert a["responseSummary"]["exists"], (start, ref, alt)


def _audited(home: Path) -> list[dict[str, Any]]:
    """The audit entries of a node home, without what differs between two nodes."""
    lines = (home / AuditSettings().path).read_text().splitlines()
    skip = {"ts", "request_id", "seq", "prev", "hash"}
    return [{k: v for k, v in json.loads(line).items() if k not in skip} for line in lines]


@pytest.mark.parametrize("max_llr", [None, 1e9])  # the default budget; one never spent
async def test_budgeted_answers_on_the_loop_charge_as_threaded_ones(
    aiohttp_client: Any, tmp_path: Path, tg_store: VariantStore, max_llr: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_loop: list[bool] = []
    real_answer = node.web.beacon.answer

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(node.web.beacon, "answer", recording)
    privacy: Any = {"budget": {} if max_llr is None else {"max_llr": max_llr}}
    counts = {"tg": OPEN.model_copy(update={
        "max_granularity": {SecurityLevel.PUBLIC: Granularity.COUNT}})}  # charged, not entitled
    apps = [make_app(tmp_path / "a", {"tg": tg_store}, counts, privacy=privacy),
            make_app(tmp_path / "b", {"tg": Threaded(tg_store)}, counts, privacy=privacy)]
    fast, slow = [await aiohttp_client(app) for app in apps]
    requester = anonymous_key("127.0.0.1")
    spent, statuses = 0.0, []
    for client in (fast, slow):  # opens the store and reads the catalog (in a thread)
        await _doc(client, *VCF_FORM[0], "count")  # a common allele: free
    for start, ref, alt in VCF_FORM + OTHER_FORMS:
        params = {"referenceName": "1", "start": str(start), "referenceBases": ref,
                  "alternateBases": alt, "requestedGranularity": "count"}
        on_loop.clear()
        a = await fast.get("/api/g_variants", params=params)
        b = await slow.get("/api/g_variants", params=params)
        assert a.status == b.status, (start, ref, alt)
        statuses.append(a.status)
        assert await a.json() == await b.json(), (start, ref, alt)
        # Free answers and refusals (charges above a whole budget) are decided on the
        # loop; charged answers are answered again in a thread (where the budget store is
        # called); the other app answers in a thread.
        now = _balance(apps[1], requester).llr_spent
        charged, spent = now > spent, now
        assert on_loop == ([True, False] if charged else [True]) + [False], (start, ref, alt)
    assert _balance(apps[0], requester) == _balance(apps[1], requester)
    assert spent > 0 and (403 in statuses) is (max_llr is None)  # "no" refused by default
    assert _audited(tmp_path / "a") == _audited(tmp_path / "b")


def _balance(app: Any, requester: str) -> Balance:
    budget = app[GATE]._budget
    assert budget is not None
    found: Balance = budget.balance(requester)
    return found


def _ctx(tmp_path: Path, store: VariantStore, *, ttl: float = 60.0,
         budget: bool = False) -> Context:
    settings = Settings(home=tmp_path, datasets={"tg": OPEN},
                        privacy={"budget": {"enabled": budget}})
    registry = DatasetRegistry(settings, opener=lambda _: store, lister=lambda: ["tg"],
                               ids_ttl_s=ttl)
    registry.store("tg")  # opened (and listed) once, as after a first request
    # The gate's budget store itself is not opened: `in_memory` reads the settings.
    gate = DisclosureGate(settings.privacy, budget=None, audit=None)
    anonymous = Principal.anonymous()
    return Context(settings=settings, registry=registry, catalog=None, principal=anonymous,
                   ledger=gate.ledger(anonymous, "127.0.0.1"))


def test_only_requests_without_io_take_the_fast_path(
    tmp_path: Path, tg_store: VariantStore
) -> None:
    ctx = _ctx(tmp_path, tg_store)
    exact = VariantQuery(contig="1", start=(10176,), reference_bases="A", alternate_bases="AC")
    g_variants, individuals = by_path("g_variants"), by_path("individuals")
    count = BeaconRequest(granularity=Granularity.COUNT, variant=exact)
    assert in_memory(ctx, g_variants, count, nested=None)
    assert in_memory(ctx, g_variants, BeaconRequest(variant=exact), nested=None)  # boolean
    slow = [
        (g_variants, BeaconRequest(granularity=Granularity.RECORD, variant=exact), None),
        (g_variants, BeaconRequest(variant=exact, filters=(Filter("NCIT:C16576"),)), None),
        (g_variants, BeaconRequest(variant=VariantQuery(contig="1", start=(0,), end=(99,))),
         None),
        (g_variants, BeaconRequest(variant=VariantQuery(contig="1", start=(10176,),
                                                        alternate_bases="AC", gene_id="X")),
         None),
        (g_variants, BeaconRequest(), None),  # no parameters: every variant
        (individuals, count, "g_variants"),
        (g_variants, BeaconRequest(variant=exact, dataset_ids=("elsewhere",)), None),
    ]
    for entry, req, nested in slow:
        assert not in_memory(ctx, entry, req, nested=nested), (entry.path, req)
    assert not in_memory(ctx, g_variants, count, nested="biosamples")
    # With a disclosure budget too: the ledger defers to a thread the answers it charges.
    assert in_memory(_ctx(tmp_path, tg_store, budget=True), g_variants, count, nested=None)
    # A stale dataset listing means a listing call (I/O): the thread does it.
    assert not in_memory(_ctx(tmp_path, tg_store, ttl=0.0), g_variants, count, nested=None)
    assert not in_memory(_ctx(tmp_path, Threaded(tg_store)), g_variants, count, nested=None)


def test_planner_keeps_anonymous_plans_only() -> None:
    settings = Settings(home=Path("."), datasets={"tg": OPEN})
    reads: list[str] = []

    def settings_of(dataset_id: str) -> Any:
        reads.append(dataset_id)
        return settings.dataset(dataset_id)

    planner = Planner(settings_of)
    anonymous = Principal.anonymous()
    first = planner.plan(("other", "tg"), anonymous, requested=None,
                         granularity=Granularity.RECORD)
    assert first == plan(("other", "tg"), settings.dataset, anonymous, requested=None,
                         granularity=Granularity.RECORD)
    assert planner.plan(("other", "tg"), anonymous, requested=None,
                        granularity=Granularity.RECORD) is first
    assert sorted(reads) == ["other", "tg"]  # each dataset's settings read once
    granted = Principal("u", "iss", False, frozenset({"other"}), None)
    mine = planner.plan(("other", "tg"), granted, requested=None,
                        granularity=Granularity.RECORD)
    assert mine != first and planner.plan(("other", "tg"), granted, requested=None,
                                          granularity=Granularity.RECORD) is not mine
