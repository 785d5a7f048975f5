"""TLS between coordinator and nodes, with certificates made here: server auth, mTLS."""

from __future__ import annotations

import yaml

from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from tests.peer.helpers import COORDINATOR, bcftools_truth, private_pem
from tests.peer.tls import ScratchCA


def _peers_yaml(tmp, key, port: int, tls: dict[str, str] | None) -> object:
    (tmp / "coordinator.pem").write_text(private_pem(key))
    peer = {"id": "node-a", "address": f"localhost:{port}"}
    if tls is not None:
        peer["tls"] = tls
    doc = {
        "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
        "deadline_s": 5,
        "peers": [peer],
    }
    (tmp / "peers.yaml").write_text(yaml.safe_dump(doc))
    return load_peers(tmp / "peers.yaml")


async def _ask(peers, keys):
    coordinator = Coordinator(peers)
    try:
        return await coordinator.allele_stats(keys)
    finally:
        await coordinator.close()


async def test_mutual_tls_with_jwt_and_with_client_certificate_alone(
    tmp_path, cohort, start_node, coordinator_key
):
    ca = ScratchCA(tmp_path)
    server_cert, server_key = ca.issue("node-a", server=True)
    client_cert, client_key = ca.issue("coordinator-client", server=False)
    node = await start_node(
        "node-a",
        {"cohort": [cohort / "S000.vcf.gz"]},
        tls_cert=str(server_cert),
        tls_key=str(server_key),
        tls_client_ca=str(ca.path),
    )
    truth = bcftools_truth(cohort / "S000.vcf.gz")
    keys = sorted(truth, key=lambda k: k.start)[:20]
    tls = {"ca": str(ca.path), "cert": str(client_cert), "key": str(client_key)}
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, node.port, tls), keys)
    assert [n.status for n in result.nodes] == ["OK"]
    assert [t.allele_count.value for t in result.alleles] == [truth[k].ac for k in keys]

    # A node that registered the coordinator by certificate subject only (no JWT key):
    # the verified client certificate is the credential.
    by_cert = await start_node(
        "node-a",
        {"cohort": [cohort / "S000.vcf.gz"]},
        tls_cert=str(server_cert),
        tls_key=str(server_key),
        tls_client_ca=str(ca.path),
        coordinators=[{"id": "net", "tls_subject": "coordinator-client"}],
    )
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, by_cert.port, tls), keys)
    assert [n.status for n in result.nodes] == ["OK"]
    other_cert, other_key = ca.issue("someone-else", server=False)
    other = {"ca": str(ca.path), "cert": str(other_cert), "key": str(other_key)}
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, by_cert.port, other), keys)
    assert [n.status for n in result.nodes] == ["UNAUTHENTICATED"]

    # No client certificate: the handshake itself fails, nothing reaches the servicer.
    no_client = {"ca": str(ca.path)}
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, node.port, no_client), keys)
    assert result.nodes[0].status == "UNAVAILABLE"

    # Plaintext to a TLS port fails too.
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, node.port, None), keys)
    assert result.nodes[0].status == "UNAVAILABLE"


async def test_client_certificate_of_an_unknown_ca_is_refused(
    tmp_path, cohort, start_node, coordinator_key
):
    ca, rogue = ScratchCA(tmp_path), ScratchCA(tmp_path, cn="rogue CA")
    server_cert, server_key = ca.issue("node-a", server=True)
    client_cert, client_key = rogue.issue("rogue-client", server=False)
    node = await start_node(
        "node-a",
        {"cohort": [cohort / "S000.vcf.gz"]},
        tls_cert=str(server_cert),
        tls_key=str(server_key),
        tls_client_ca=str(ca.path),
    )
    tls = {"ca": str(ca.path), "cert": str(client_cert), "key": str(client_key)}
    keys = sorted(bcftools_truth(cohort / "S000.vcf.gz"), key=lambda k: k.start)[:3]
    result = await _ask(_peers_yaml(tmp_path, coordinator_key, node.port, tls), keys)
    assert result.nodes[0].status == "UNAVAILABLE"
