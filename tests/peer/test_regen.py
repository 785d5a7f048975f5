"""The committed stubs are what the pinned grpcio-tools generates from proto/."""

from __future__ import annotations

from node.peer import regen


def test_committed_stubs_match_a_fresh_generation():
    fresh = regen.generate()
    assert set(fresh) == {"__init__.py", "peer_pb2.py", "peer_pb2.pyi", "peer_pb2_grpc.py"}
    for name, text in fresh.items():
        assert (regen.OUT_DIR / name).read_text() == text, f"node/peer/_pb/{name} is stale"
    assert "from fednode" not in fresh["peer_pb2_grpc.py"]
