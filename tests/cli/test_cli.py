"""The `fednode` command as users run it: clean messages and exit codes, never tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node.privacy.audit import AuditLog


def fednode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *map(str, args)], capture_output=True, text=True,
        timeout=300,
    )


def test_init_then_config_print_shows_the_file_and_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert fednode("init", home).returncode == 0
    again = fednode("init", home)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    printed = json.loads(fednode("config", "print", home).stdout)
    assert printed["store_uri"] == "datasets" and printed["server"]["port"] == 8080
    schema = json.loads(fednode("config", "print", "--schema").stdout)
    assert "server" in schema["properties"]


def test_ingest_into_a_directory_that_is_not_a_home_is_a_clean_error(tmp_path: Path) -> None:
    result = fednode("ingest", tmp_path, "--dataset", "d", tmp_path / "x.vcf")
    assert result.returncode == 2
    assert "not a node home" in result.stderr and "Traceback" not in result.stderr


def test_ingest_of_a_malformed_vcf_names_file_and_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fednode("init", home)
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
        "1\tnotanumber\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
    )
    result = fednode("ingest", home, "--dataset", "d", vcf)
    assert result.returncode == 2, result.stderr
    assert "bad.vcf" in result.stderr and "Traceback" not in result.stderr


def test_audit_verify_detects_an_edited_entry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fednode("init", home)
    log = AuditLog(home / "audit.jsonl")
    for i in range(3):
        log.append(request_id=f"r{i}", requester="anonymous", datasets=["d"],
                   query={"q": i}, granularity="count", counts={"d": i}, budget=0.0)
    ok = fednode("audit", "verify", home)
    assert ok.returncode == 0 and "3 entries, intact" in ok.stdout
    lines = (home / "audit.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"count"', '"record"')
    (home / "audit.jsonl").write_text("\n".join(lines) + "\n")
    bad = fednode("audit", "verify", home)
    assert bad.returncode == 1 and ":2: edited" in bad.stdout


def test_a_malformed_config_file_is_a_clean_error_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fednode("init", home)
    config = home / "fednode.toml"
    for text, expected in (
        ("[server]\nport = 1\n[server]\nport = 2\n", "twice"),
        ('[server]\nport = "eighty"\n', "server.port"),
        ("unknown_key = 1\n", "unknown_key"),
    ):
        config.write_text(text)
        result = fednode("serve", home)
        assert result.returncode == 2, text
        assert str(config) in result.stderr and expected in result.stderr
        assert "Traceback" not in result.stderr


def _one_sample_vcf(path: Path, sample: str) -> Path:
    path.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n"
        "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
    )
    return path


def test_ingest_reads_input_paths_from_a_list(tmp_path: Path) -> None:
    from node.store.tiledbvcf import TileDBVCFStore

    home = tmp_path / "home"
    fednode("init", home)
    files = [_one_sample_vcf(tmp_path / f"s{i}.vcf", f"S{i}") for i in range(4)]
    listing = tmp_path / "files.txt"
    listing.write_text(f"# per-sample files\n{files[1]}\n\n  {files[2]}  \n{files[3]}\n")
    result = fednode("ingest", home, "--dataset", "d", "--files-from", listing, files[0])
    assert result.returncode == 0, result.stderr
    assert "from 4 file(s)" in result.stdout
    store = TileDBVCFStore.open(str(home / "datasets" / "d"))
    try:
        assert store.samples == ("S0", "S1", "S2", "S3")
    finally:
        store.close()


def test_ingest_with_an_empty_or_unreadable_list_is_a_clean_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fednode("init", home)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    result = fednode("ingest", home, "--dataset", "d", "--files-from", empty)
    assert result.returncode == 2 and "no input files" in result.stderr
    missing = fednode("ingest", home, "--dataset", "d", "--files-from", tmp_path / "none.txt")
    assert missing.returncode == 2 and "none.txt" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr
    assert not (home / "datasets" / "d").exists()  # refused before anything was created
