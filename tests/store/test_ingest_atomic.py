"""Nothing lost: a failed or killed ingest leaves the dataset exactly as it was (`data`,
the statistics arrays and `fednode_genotypes`, which region records are read from)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiledb

from node.domain import AlleleKey, Region
from node.errors import IngestError
from node.store.dataset import layout
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_genotypes_array import committed_cells
from tests.store.test_tiledbvcf import (
    BCFTOOLS,
    assert_stats_match,
    cohort_rows,
    fill_tags_truth,
    sh,
    write_vcf,
)

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]


def snapshot(store: TileDBVCFStore, keys: list[AlleleKey]) -> tuple[object, ...]:
    regions = (Region("1", 0, 300_000_000), Region("X", 0, 300_000_000))
    records = [r for region in regions for b in store.records(region) for r in b]
    from_data = [
        r for region in regions for b in store._data_batches(region, None) for r in b.records()
    ]
    assert records == from_data
    variants = list(store.variants(Region("1", 0, 300_000_000)))
    cells = committed_cells(store)
    return store.samples, store.contigs(), store.allele_stats(keys), records, variants, cells


def big_vcf(path: Path, *, samples: int, records: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows, pos = [], 1_000_000  # after the base cohort: merged records stay distinct
    for _ in range(records):
        pos += rng.randint(1, 50)
        ref = rng.choice("ACGT")
        alt = rng.choice([b for b in "ACGT" if b != ref])
        calls = "\t".join(
            rng.choice(["0/0", "0/1", "1/1", "./."]) + ":10:5,5:PASS" for _ in range(samples)
        )
        rows.append(f"chr1\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT:DP:AD:FT\t{calls}")
    return write_vcf(path, [f"B{i:03d}" for i in range(samples)], rows)


@pytest.fixture
def base(tmp_path: Path) -> tuple[TileDBVCFStore, Path, list[AlleleKey]]:
    vcf = write_vcf(tmp_path / "base.vcf.gz", ["A1", "A2", "A3"], cohort_rows(3, seed=5))
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    store.ingest([vcf])
    return store, vcf, list(fill_tags_truth(vcf))


def test_malformed_line_names_file_and_line_and_changes_nothing(
    tmp_path: Path, base: tuple[TileDBVCFStore, Path, list[AlleleKey]]
) -> None:
    store, _, keys = base
    before = snapshot(store, keys)
    rows = cohort_rows(4, seed=9, records=60)
    bad_index = 41
    fields = rows[bad_index].split("\t")
    fields[1] = "12x4"  # an unparseable POS
    rows[bad_index] = "\t".join(fields)
    vcf = write_vcf(tmp_path / "bad.vcf.gz", ["N1", "N2", "N3", "N4"], rows)
    header_lines = sh(f"bcftools view -h {vcf} | wc -l")  # bcftools adds no line here
    raw = sh(f"zcat {vcf}").splitlines()
    line = next(i for i, text in enumerate(raw, start=1) if "\t12x4\t" in text)
    assert line > int(header_lines)
    with pytest.raises(IngestError) as caught:
        store.ingest([vcf])
    assert caught.value.path == str(vcf) and caught.value.line == line
    assert f"bad.vcf.gz:{line}:" in str(caught.value)
    assert snapshot(store, keys) == before
    assert snapshot(TileDBVCFStore.open(store.uri), keys) == before


def test_genotype_allele_out_of_range_is_an_ingest_error(
    tmp_path: Path, base: tuple[TileDBVCFStore, Path, list[AlleleKey]]
) -> None:
    store, _, keys = base
    before = snapshot(store, keys)
    rows = [
        "chr1\t500\t.\tA\tG\t.\tPASS\t.\tGT:DP:AD:FT\t0/1:3:1,2:PASS",
        "chr1\t600\t.\tA\tG\t.\tPASS\t.\tGT:DP:AD:FT\t0/3:3:1,2:PASS",
    ]
    vcf = write_vcf(tmp_path / "gt.vcf.gz", ["Z1"], rows)
    with pytest.raises(IngestError, match=r"gt\.vcf\.gz:\d+: genotype allele index 3"):
        store.ingest([vcf])
    assert snapshot(store, keys) == before


_KILLED_INGEST = """
import sys
from pathlib import Path
from node.store import tiledbvcf
tiledbvcf.IngestWriter.FLUSH_BYTES = 1 << 18   # many small fragments: killed mid-way
store = tiledbvcf.TileDBVCFStore.open(sys.argv[1])
print("start", flush=True)
store.ingest([Path(sys.argv[2])])
print("done", flush=True)
"""


def _new_fragments(uri: str, committed: int, array: str = layout.DATA) -> int:
    """Fragments newer than `committed`, in the array or staged beside it (`data` gets one
    per input, written while the ingest runs)."""
    staged = Path(uri) / "__fednode_staging"
    folders = [Path(uri) / array, *(staged.glob(f"*/{array}") if staged.is_dir() else [])]
    return sum(
        1
        for folder in folders
        if (folder / "__fragments").is_dir()
        for p in (folder / "__fragments").iterdir()
        if int(p.name.split("_")[2]) > committed
    )


def test_sigkill_mid_ingest_leaves_dataset_unchanged_and_rerun_succeeds(
    tmp_path: Path, base: tuple[TileDBVCFStore, Path, list[AlleleKey]]
) -> None:
    store, base_vcf, keys = base
    before = snapshot(store, keys)
    committed = store._state.committed
    assert committed is not None
    big = big_vcf(tmp_path / "big.vcf.gz", samples=80, records=3000, seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_INGEST, store.uri, str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        deadline = time.monotonic() + 120
        while (
            _new_fragments(store.uri, committed) < 1
            or _new_fragments(store.uri, committed, layout.FEDNODE_GENOTYPES) < 2
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "ingest wrote no fragment in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _new_fragments(store.uri, committed) >= 1  # partial work is on disk...
    assert _new_fragments(store.uri, committed, layout.FEDNODE_GENOTYPES) >= 2
    reopened = TileDBVCFStore.open(store.uri)
    assert snapshot(reopened, keys) == before  # ...and invisible
    summary = reopened.ingest([big])  # the re-run cleans up and succeeds
    assert summary.records == 3000 and len(summary.samples_added) == 80
    snapshot(TileDBVCFStore.open(store.uri), keys)  # both record paths agree again
    sh(f"tabix -f -p vcf {base_vcf} && tabix -f -p vcf {big}")
    merged = tmp_path / "merged.vcf.gz"
    sh(f"bcftools merge -m none {base_vcf} {big} -Oz -o {merged}")
    assert assert_stats_match(TileDBVCFStore.open(store.uri), fill_tags_truth(merged)) > 1000


@pytest.mark.parametrize("failing_array", [layout.DATA, layout.FEDNODE_GENOTYPES])
def test_disk_error_is_an_ingest_error_and_changes_nothing(
    tmp_path: Path,
    base: tuple[TileDBVCFStore, Path, list[AlleleKey]],
    monkeypatch: pytest.MonkeyPatch,
    failing_array: str,
) -> None:
    """A failing fragment write (any third write, or `fednode_genotypes`' after `data`'s)
    names the input and rolls back."""
    store, _, keys = base
    before = snapshot(store, keys)
    vcf = write_vcf(tmp_path / "more.vcf.gz", ["M1", "M2"], cohort_rows(2, seed=13))
    real = layout.write_columns
    calls = {"n": 0}

    def failing(array: tiledb.Array, columns: object, **options: bool) -> str | None:
        calls["n"] += 1
        # the third write of any array (as before), or the first of fednode_genotypes
        hit = calls["n"] == 3 if failing_array == layout.DATA else array.uri.endswith(failing_array)
        if hit:
            raise OSError(28, "No space left on device")
        return real(array, columns, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(layout, "write_columns", failing)
    with pytest.raises(IngestError, match=r"more\.vcf\.gz.*No space left"):
        store.ingest([vcf])
    monkeypatch.setattr(layout, "write_columns", real)
    assert snapshot(TileDBVCFStore.open(store.uri), keys) == before
    assert store.ingest([vcf]).samples_added == ("M1", "M2")
