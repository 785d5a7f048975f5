"""Fixtures of the Beacon API tests: in-memory stores over the shared 1000 Genomes and
synthetic VCFs (ingested once per session), and apps built with `create_app` over them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.config import DatasetSettings, Settings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app

CNAG = "beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/"
TG_REL = CNAG + "test_1000G.vcf.gz"
REFERENCE_REL = CNAG + "genomicVariationsVcf.json.gz"
SYNTH_REL = (
    "beacon-testdata/ega-beacon2-ri-tools-v2/vcf/synthetic_usecases_4beacon_testingV4.vcf.gz"
)

OPEN = DatasetSettings(
    assembly="GRCh37",
    security_level=SecurityLevel.PUBLIC,
    max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD},
)


@pytest.fixture(scope="session")
def tg_vcf(shared_dir: Path) -> Path:
    return shared_dir / TG_REL


@pytest.fixture(scope="session")
def synth_vcf(shared_dir: Path) -> Path:
    return shared_dir / SYNTH_REL


@pytest.fixture(scope="session")
def tg_store(tg_vcf: Path) -> VariantStore:
    store = MemoryStore(assembly="GRCh37")
    store.ingest([tg_vcf])
    return store


@pytest.fixture(scope="session")
def synth_store(synth_vcf: Path) -> VariantStore:
    store = MemoryStore(assembly="GRCh38")
    store.ingest([synth_vcf])
    return store


def registry_over(stores: Mapping[str, VariantStore]) -> Callable[[Settings], DatasetRegistry]:
    def factory(settings: Settings) -> DatasetRegistry:
        return DatasetRegistry(settings, opener=stores.__getitem__, lister=lambda: list(stores))

    return factory


def make_app(
    home: Path, stores: Mapping[str, VariantStore], datasets: Mapping[str, DatasetSettings],
    **settings: Any,
) -> web.Application:
    config = Settings(home=home, datasets=dict(datasets), **settings)
    return create_app(config, registry_factory=registry_over(stores))


@pytest.fixture
async def tg_client(aiohttp_client: Any, tmp_path: Path, tg_store: VariantStore) -> Any:
    """Dataset `tg` (1000 Genomes chr1 subset, GRCh37) open at record granularity."""
    app = make_app(tmp_path, {"tg": tg_store}, {"tg": OPEN})
    return await aiohttp_client(app)
