"""The samples' VCF headers written in batches and read a range of samples at a time
(issue 18 item 3): batches bounded in bytes, one fragment each, which fednode and the real
TileDB-VCF (`../shared/tiledbvcf-bin`) read as one column; equal headers read once and
their id tables shared. The memory this bounds is measured in test_memory_budget.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiledb

from node.store.dataset import dataset_state, layout
from node.store.dataset.dataset_state import header_tables, header_texts
from node.store.ingest import ingest_writer
from node.store.ingest.header_batches import header_batches, write_headers
from node.store.read.vcf_header import stored_headers
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf_compat import CASES, _ingest, assert_exports_equal_inputs, tdb
from tests.store.tiledbvcf_tool import TileDBVCF

A = '##fileformat=VCFv4.2\n##FILTER=<ID=q10,Description="low">\n#CHROM\tPOS\n'
B = '##fileformat=VCFv4.3\n##INFO=<ID=DP,Number=1,Type=Integer,Description="D">\n' + "#" * 300


def _headers(samples: int) -> dict[str, str]:
    """Samples of two inputs (one str each, as `IngestWriter.headers` holds them)."""
    return {f"S{i:04d}": A if i % 3 else B for i in range(samples)}


def test_batches_are_bounded_in_bytes_and_in_name_order() -> None:
    headers = _headers(500)
    batches = list(header_batches(headers, batch_bytes=5_000))
    assert [n for names, _ in batches for n in names] == sorted(headers)
    for names, texts in batches:
        assert [t.decode() for t in texts] == [headers[n] for n in names]
        assert sum(map(len, texts)) <= 5_000
        assert len({id(t) for t in texts}) <= 2  # each text encoded once per batch
    alone = list(header_batches({"a": B, "b": B}, batch_bytes=10))  # larger than a batch
    assert [names for names, _ in alone] == [["a"], ["b"]]


def _array(tmp_path: Path, headers: dict[str, str], batch_bytes: int) -> str:
    uri = str(tmp_path / "h")
    tiledb.Array.create(uri, layout.headers_schema())
    written = write_headers(lambda: tiledb.open(uri, "w"), headers, batch_bytes=batch_bytes)
    assert len(tiledb.array_fragments(uri)) == written
    return uri


def test_batched_headers_read_back_as_one_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = _headers(2_000)
    uri = _array(tmp_path, headers, batch_bytes=20_000)
    monkeypatch.setattr(dataset_state, "_HEADER_READ_BYTES", 20_000)  # many ranges
    with tiledb.open(uri) as arr:
        assert stored_headers(arr) == headers
        texts = list(header_texts(arr))
        tables = header_tables(arr)
    assert tables == {s: layout.header_id_table(h) for s, h in headers.items()}
    assert len(tiledb.array_fragments(uri)) > 10
    assert [s for s, _, _ in texts] == sorted(headers)
    assert sorted(t for _, _, t in texts if t is not None) == sorted({A, B})  # each once
    assert len({id(t) for t in tables.values()}) == 2


def test_no_headers_write_nothing(tmp_path: Path) -> None:
    uri = _array(tmp_path, {}, batch_bytes=1 << 20)
    with tiledb.open(uri) as arr:
        assert header_tables(arr) == {}


@pytest.fixture(scope="module")
def tiledbvcf(shared_dir: Path) -> Path:
    return TileDBVCF.find(shared_dir).bin


@pytest.mark.parametrize(
    "name", ["spec-v4.3, one multi-sample ingest", "single-sample calls, two ingests"]
)
def test_tiledbvcf_reads_headers_written_one_sample_per_fragment(
    tiledbvcf: Path,
    shared_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    def one_per_fragment(open_array: object, headers: dict[str, str], *, batch_bytes: int) -> int:
        return write_headers(open_array, headers, batch_bytes=1)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_writer, "write_headers", one_per_fragment)
    case = CASES[name]
    uri = tmp_path / "ds"
    inputs = _ingest(uri, [[shared_dir / p for p in paths] for paths in case.ingests])
    assert len(tiledb.array_fragments(str(uri / layout.HEADERS))) == len(inputs) > 1
    assert tdb(tiledbvcf, "list", "-u", uri).split() == sorted(inputs)
    assert f"Number of samples: {len(inputs)}" in tdb(tiledbvcf, "stat", "-u", uri)
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "all") > 0
    store = TileDBVCFStore.open(str(uri))
    try:
        assert sorted(store.vcf_headers()) == sorted(inputs)
    finally:
        store.close()
