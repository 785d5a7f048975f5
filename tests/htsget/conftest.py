"""A node with the htsget test files of ../shared registered, served on a real port."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from node.config import DatasetSettings, Settings
from node.names import Granularity, SecurityLevel
from node.reads.catalog import ReadsCatalog
from node.store.base import VariantStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app

PUBLIC_RECORDS = DatasetSettings(
    security_level=SecurityLevel.PUBLIC,
    max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD},
)
FILES = {
    ("htsnexus_test_NA12878", "bam/htsnexus_test_NA12878.bam"),
    ("htsnexus_test_NA12878", "cram/htsnexus_test_NA12878.cram"),
    ("spec-v4.3", "vcf/spec-v4.3.vcf.gz"),
    ("spec-v4.3", "bcf/spec-v4.3.bcf"),
    ("sample1-bcbio-cancer", "vcf/sample1-bcbio-cancer.vcf.gz"),
    ("sample1-bcbio-cancer", "bcf/sample1-bcbio-cancer.bcf"),
}


def file_registry(stores: dict[str, VariantStore] | None = None) -> object:
    stores = stores or {}

    def factory(settings: Settings) -> DatasetRegistry:
        def lister() -> Iterable[str]:
            return stores.keys()

        return DatasetRegistry(settings, opener=stores.__getitem__, lister=lister)

    return factory


@pytest.fixture(scope="session")
def testdata(shared_dir: Path) -> Path:
    return shared_dir / "htsget-testdata"


@pytest.fixture
def home(tmp_path: Path, testdata: Path) -> Path:
    catalog = ReadsCatalog(tmp_path / "reads")
    for entry_id, rel in sorted(FILES):
        catalog.add(dataset="htsget-public", entry_id=entry_id, path=testdata / rel)
    return tmp_path


def node_settings(home: Path, **datasets: DatasetSettings) -> Settings:
    return Settings(home=home, datasets={"htsget-public": PUBLIC_RECORDS, **datasets})


@pytest.fixture
async def server(home: Path) -> object:
    app = create_app(node_settings(home), registry_factory=file_registry())  # type: ignore[arg-type]
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make test installs it)")
    return path


async def run(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} failed: {err.decode()}"
    return out
