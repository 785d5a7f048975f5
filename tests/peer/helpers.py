"""Test helpers of the peer API: keys, tokens, in-memory nodes, bcftools truth."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node.config import Settings
from node.domain import AlleleKey, normalize_contig
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry

COHORT = Path("tiledbvcf-fixture/inputs/snp_cohort10")
COORDINATOR = "org.example.coordinator"


@dataclass(frozen=True)
class Truth:
    """bcftools' statistics of one allele over the called samples of a VCF."""

    ac: int
    an: int
    hom: int  # samples homozygous for ALT
    carriers: int


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def token(key: Any, *, aud: str, iss: str = COORDINATOR, alg: str = "ES256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": iss, "sub": iss, "aud": aud, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(payload, key, algorithm=alg)


def node_settings(
    node_id: str,
    coordinator_pem: str,
    *,
    home: Path,
    min_count: int = 1,
    max_llr: float = 1e9,
    people_epsilon: float | None = None,
    **peer: Any,
) -> Settings:
    # Federation mechanics against bcftools: no threshold, exact people counts (the
    # defaults' defences are tested in tests/privacy).
    return Settings(
        home=home,
        node={"id": node_id, "name": node_id},
        privacy={"min_count": min_count, "people_epsilon": people_epsilon,
                 "budget": {"max_llr": max_llr}},
        peer={
            "port": 0,
            "coordinators": [{"id": COORDINATOR, "public_key": coordinator_pem}],
            **peer,
        },
    )


def memory_registry(settings: Settings, datasets: dict[str, list[Path]]) -> DatasetRegistry:
    stores = {}
    for dataset_id, files in datasets.items():
        store = MemoryStore()
        store.ingest(files)
        stores[dataset_id] = store
    return DatasetRegistry(settings, opener=stores.__getitem__, lister=lambda: stores)


def bcftools_truth(vcf: Path, region: str | None = None) -> dict[AlleleKey, Truth]:
    """Per-allele AC/AN/homozygotes/carriers from `bcftools +fill-tags` (biallelic input)."""
    tagged = subprocess.run(
        ["bcftools", "+fill-tags", str(vcf), "-Ou", "--", "-t", "AC,AN,AC_Hom,AC_Het"],
        check=True,
        capture_output=True,
    ).stdout
    args = ["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%AC\t%AN\t%AC_Hom\t%AC_Het\n"]
    if region:
        args += ["-t", region]  # targets: streamed, needs no index
    out = subprocess.run([*args, "-"], input=tagged, check=True, capture_output=True).stdout
    truth = {}
    for line in out.decode().splitlines():
        chrom, pos, ref, alt, ac, an, ac_hom, ac_het = line.split("\t")
        key = AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt)
        hom = int(ac_hom) // 2  # diploid cohort: AC_Hom counts alleles
        truth[key] = Truth(int(ac), int(an), hom, hom + int(ac_het))
    return truth


SPLIT = {  # node -> dataset -> samples: a cohort split by samples and by datasets
    "node-a": {"cohort-a": ["S000", "S001", "S002", "S003"]},
    "node-b": {"cohort-b": ["S004", "S005", "S006"]},
    "node-c": {"cohort-c1": ["S007"], "cohort-c2": ["S008", "S009"]},
}


def samples_truth(merged: Path, samples: list[str], out: Path) -> dict[AlleleKey, Truth]:
    """bcftools truth over only `samples` of `merged` (what one node of a split holds)."""
    subprocess.run(
        ["bcftools", "view", "-s", ",".join(samples), "-Oz", "-o", str(out), str(merged)],
        check=True,
    )
    return bcftools_truth(out)


def write_peers(tmp: Path, key, ports: dict[str, int], *, deadline_s: float = 5.0) -> Path:
    (tmp / "coordinator.pem").write_text(private_pem(key))
    doc = {
        "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
        "deadline_s": deadline_s,
        "peers": [{"id": n, "address": f"127.0.0.1:{p}"} for n, p in ports.items()],
    }
    path = tmp / "peers.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
