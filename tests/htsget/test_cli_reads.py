"""`fednode reads add`: registers files where they are, builds a missing index in the node
home, persists the catalog, refuses duplicates and non-genomic files cleanly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from node.cli import main
from node.reads.catalog import ReadsCatalog


def test_reads_add_builds_missing_indices(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "node"
    assert main(["init", str(home)]) == 0
    files = tmp_path / "files"
    files.mkdir()
    for rel in ("bam/htsnexus_test_NA12878.bam", "vcf/spec-v4.3.vcf.gz", "bcf/spec-v4.3.bcf"):
        shutil.copyfile(testdata / rel, files / Path(rel).name)  # copies without indices
    for name, entry_id in (("htsnexus_test_NA12878.bam", "r1"), ("spec-v4.3.vcf.gz", "v1"),
                           ("spec-v4.3.bcf", "v1")):  # fmt: skip
        assert main(["reads", "add", str(home), "--dataset", "d", "--id", entry_id,
                     str(files / name)]) == 0  # fmt: skip
    catalog = ReadsCatalog(home / "reads")
    formats = sorted((e.id, e.format) for e in catalog.entries())
    assert formats == [("r1", "BAM"), ("v1", "BCF"), ("v1", "VCF")]
    for entry in catalog.entries():
        assert Path(entry.index).parent == home / "reads" / "indices"
        assert Path(entry.path).parent == files  # the file stayed where it was
        assert catalog.layout(entry).references  # the built index parses
    json.loads((home / "reads" / "catalog.json").read_text())
    capsys.readouterr()
    assert main(["reads", "add", str(home), "--dataset", "d", "--id", "r1",
                 str(files / "htsnexus_test_NA12878.bam")]) == 2  # fmt: skip
    assert "already registered" in capsys.readouterr().err
    junk = files / "notes.txt"
    junk.write_text("not genomic\n")
    assert main(["reads", "add", str(home), "--dataset", "d", "--id", "x", str(junk)]) == 2
    assert "not BGZF" in capsys.readouterr().err
