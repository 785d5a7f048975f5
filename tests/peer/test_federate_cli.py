"""`fednode federate count` as a user runs it: a separate process, table and JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.peer import fakes
from tests.peer.helpers import bcftools_truth, write_peers


async def _fednode(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _name(key) -> str:
    return f"chr{key.contig}:{key.start + 1}:{key.ref}:{key.alt}"


async def test_federate_count_json_equals_bcftools(tmp_path, cohort, three_nodes, coordinator_key):
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = sorted(truth, key=lambda k: k.start)[:40:7]
    peers = write_peers(tmp_path, coordinator_key, three_nodes)
    code, out, err = await _fednode(
        "federate", "count", "--peers", str(peers), "--json", *(_name(k) for k in keys)
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["complete"] and [n["status"] for n in doc["nodes"]] == ["OK"] * 3
    for key, total in zip(keys, doc["totals"], strict=True):
        assert total["alleleCount"]["value"] == truth[key].ac
        assert total["alleleNumber"]["value"] == truth[key].an
        assert total["alleleCount"]["precision"] == "exact"


async def test_federate_count_table_with_a_dead_node_and_a_vcf_file(
    tmp_path, cohort, three_nodes, coordinator_key
):
    ports = {**three_nodes, "dead": fakes.dead_port()}
    peers = write_peers(tmp_path, coordinator_key, ports, deadline_s=3)
    code, out, err = await _fednode(
        "federate", "count", "--peers", str(peers), "--file", str(cohort / "S000.vcf.gz")
    )
    assert code == 1, err  # answered, but partial
    truth = bcftools_truth(cohort / "S000.vcf.gz")
    assert sum(1 for line in out.splitlines() if line.startswith("1:")) == len(truth)
    assert any(line.split()[:2] == ["dead", "UNAVAILABLE"] for line in out.splitlines())
    assert "3/4 nodes answered; totals are partial" in out


async def test_federate_count_bad_input_is_a_message_not_a_traceback(tmp_path, coordinator_key):
    peers = write_peers(tmp_path, coordinator_key, {"a": fakes.dead_port()})
    for args, fragment in [
        (("chr1:0:A:G",), "bad variant"),
        (("--region", "chr1:5-2"), "bad region"),
        ((), "give VARIANT"),
    ]:
        code, _, err = await _fednode("federate", "count", "--peers", str(peers), *args)
        assert code == 2 and fragment in err and "Traceback" not in err


def _carriers(vcf) -> dict:
    """Samples with at least one ALT copy, per allele (bcftools; biallelic input)."""
    import subprocess

    from node.domain import AlleleKey, normalize_contig

    fmt = "%CHROM\t%POS\t%REF\t%ALT[\t%SAMPLE=%GT]\n"
    out = subprocess.run(
        ["bcftools", "query", "-f", fmt, str(vcf)], check=True, capture_output=True, text=True
    ).stdout
    found = {}
    for line in out.splitlines():
        chrom, pos, ref, alt, *calls = line.split("\t")
        key = AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt)
        found[key] = {c.split("=")[0] for c in calls if "1" in c.split("=")[1]}
    return found


async def test_federate_count_individuals_equals_bcftools_carriers(
    tmp_path, cohort, three_nodes, coordinator_key
):
    from tests.peer.helpers import SPLIT

    carriers = _carriers(cohort / "merged10.vcf.gz")
    keys = sorted(carriers, key=lambda k: (k.start, k.ref, k.alt))
    common = sorted(keys, key=lambda k: -len(carriers[k]))[:40]
    pair = next(
        (a, b)
        for i, a in enumerate(common)
        for b in common[i + 1 :]
        if len(carriers[a] & carriers[b]) >= 2 and carriers[a] != carriers[b]
    )
    disjoint = next(
        (a, b) for a in keys for b in keys if carriers[a] and not carriers[a] & carriers[b]
    )
    peers = write_peers(tmp_path, coordinator_key, three_nodes)
    for asked in (pair[:1], pair, disjoint):
        code, out, err = await _fednode(
            "federate",
            "count",
            "--peers",
            str(peers),
            "--individuals",
            "--json",
            *(_name(k) for k in asked),
        )
        assert code == 0, err
        doc = json.loads(out)
        want = set.intersection(*(carriers[k] for k in asked))
        assert doc["individuals"] == {
            "value": len(want),
            "lower": len(want),
            "upper": len(want),
            "precision": "exact",
        }
        parts = {(d["node"], d["dataset"]): d["individuals"]["value"] for d in doc["datasets"]}
        assert parts == {
            (node, ds): len(want & set(samples))
            for node, datasets in SPLIT.items()
            for ds, samples in datasets.items()
        }
    code, _, err = await _fednode(
        "federate", "count", "--peers", str(peers), "--individuals", "--region", "1:1-100"
    )
    assert code == 2 and "--individuals" in err
