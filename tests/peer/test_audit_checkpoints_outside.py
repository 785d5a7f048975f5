"""Signed audit checkpoints kept outside the node (issue 16): whoever can write a node's
home can rewrite its audit chain, its `.head` and its own checkpoints (the signing key is
in the home too), and `audit verify --key` then passes; a checkpoint a coordinator fetched
earlier (`fednode federate checkpoints`) still catches the rewrite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from node.cli import main
from node.peer.checkpoints import collect
from node.peer.peers import load_peers
from node.privacy.audit import load_or_create_key, load_public_key, verify
from tests.peer.helpers import write_peers
from tests.privacy.test_audit_checkpoints import _rewrite_consistently


def _resign_local_checkpoints(log: Path, key_path: Path) -> None:
    """The attacker also re-signs the node's own checkpoints with the node's own key."""
    key = load_or_create_key(key_path)
    last = json.loads(log.read_text().splitlines()[-1])
    claims = {"log": log.name, "seq": last["seq"], "hash": last["hash"], "iat": 0}
    (log.parent / f"{log.name}.checkpoints").write_text(
        jwt.encode(claims, key, algorithm="EdDSA") + "\n")


class _Log:  # what _rewrite_consistently needs of an AuditLog
    def __init__(self, path: Path) -> None:
        self.path, self.head_path = path, path.with_name(path.name + ".head")


async def test_a_rewritten_audit_log_is_caught_by_checkpoints_kept_outside(
    start_node: Any, coordinator_key: Any, tmp_path: Path
) -> None:
    node = await start_node("node-a", {})
    home = tmp_path / "home-0"
    peers = write_peers(tmp_path, coordinator_key, {"node-a": node.port})
    kept = tmp_path / "kept"
    # Two fetches: each is an audited access, then a signed head that includes it.
    for _ in range(2):
        found = await collect(load_peers(peers), kept)
        assert [(c.peer_id, c.ok) for c in found] == [("node-a", True)], found
    log, pub = home / "audit.jsonl", kept / "node-a.pub"
    assert pub.read_bytes() == load_or_create_key(home / "audit-key.pem").public_key(
    ).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    outside = kept / "node-a.checkpoints"
    assert len(outside.read_text().split()) == 2
    key = load_public_key(pub)
    assert verify(log, public_key=key, outside=[outside]).ok  # untouched: all agree

    _rewrite_consistently(_Log(log))
    _resign_local_checkpoints(log, home / "audit-key.pem")
    assert verify(log, public_key=key).ok  # the attack succeeds against the home alone
    caught = verify(log, public_key=key, outside=[outside])
    assert caught.kinds() == {"edited"}
    assert {p.file for p in caught.problems} == {outside}

    # The same through the commands an operator runs (a home with default audit settings).
    (home / "fednode.toml").write_text("")
    code = await asyncio.to_thread(main, ["audit", "verify", str(home), "--key", str(pub),
                                          "--checkpoints", str(outside)])
    assert code == 1
    assert await asyncio.to_thread(main, ["audit", "verify", str(home), "--key", str(pub)]) == 0


async def test_a_changed_node_key_is_refused_and_nothing_kept(
    start_node: Any, coordinator_key: Any, tmp_path: Path
) -> None:
    node = await start_node("node-a", {})
    peers = write_peers(tmp_path, coordinator_key, {"node-a": node.port})
    kept = tmp_path / "kept"
    assert await asyncio.to_thread(main, ["federate", "checkpoints", "--peers", str(peers),
                                          "--dir", str(kept)]) == 0
    (tmp_path / "home-0" / "audit-key.pem").unlink()  # the node now signs with a new key
    assert await asyncio.to_thread(main, ["federate", "checkpoints", "--peers", str(peers),
                                          "--dir", str(kept)]) == 1
    assert len((kept / "node-a.checkpoints").read_text().split()) == 1
