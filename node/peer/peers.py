"""PEERS.yaml: the coordinator's identity and the nodes it federates.

    coordinator:
      id: org.example.coordinator        # JWT iss/sub; registered on every node
      private_key: coordinator-key.pem    # ES256 or RS256 signing key (PEM)
      algorithm: ES256
    deadline_s: 10                        # whole federated call, all peers included
    peers:
      - id: node-a
        address: node-a.example.org:50051 # gRPC (fednode.v1)
        audience: org.example.node-a      # that node's `node.id` (default: id)
        tls: {ca: ca.pem, cert: client.pem, key: client-key.pem}  # omit: plaintext
        timeout_s: 5                      # optional: at most this, within deadline_s
      - id: some-beacon
        beacon_url: https://beacon.example.org/api   # a third-party Beacon v2

Relative file names are resolved against the folder of PEERS.yaml. The coordinator's
private key never leaves it; a user's token is never listed or forwarded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from node.errors import InvalidInput

__all__ = ["CoordinatorIdentity", "PeerEntry", "PeerTLS", "PeersFile", "load_peers"]

MAX_PEERS_BYTES = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeerTLS(_Model):
    ca: Path | None = Field(default=None, description="CA of the peer's server certificate")
    cert: Path | None = Field(default=None, description="client certificate (mTLS)")
    key: Path | None = Field(default=None, description="client private key (mTLS)")
    server_name: str | None = Field(default=None, description="expected certificate name")


class PeerEntry(_Model):
    id: str = Field(min_length=1, max_length=128)
    address: str | None = Field(default=None, pattern=r"^[\w.\-\[\]:]+:[0-9]{1,5}$")
    beacon_url: str | None = Field(default=None, pattern=r"^https?://")
    audience: str | None = None
    tls: PeerTLS | None = None
    timeout_s: float | None = Field(
        default=None, gt=0, le=600, description="this peer's own limit within the deadline"
    )

    @model_validator(mode="after")
    def _one_transport(self) -> PeerEntry:
        if (self.address is None) == (self.beacon_url is None):
            raise ValueError(f"peer {self.id}: give exactly one of address, beacon_url")
        return self

    @property
    def token_audience(self) -> str:
        return self.audience or self.id


class CoordinatorIdentity(_Model):
    id: str = Field(min_length=1, max_length=255)
    private_key: Path
    algorithm: Literal["ES256", "RS256"] = "ES256"
    token_lifetime_s: int = Field(default=60, gt=0, le=600)


class PeersFile(_Model):
    coordinator: CoordinatorIdentity
    peers: list[PeerEntry] = Field(min_length=1, max_length=256)
    deadline_s: float = Field(default=10.0, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=5, description="tries per call (UNAVAILABLE)")
    max_message_bytes: int = Field(default=32 << 20, gt=0, le=256 << 20)
    batch_alleles: int = Field(
        default=10_000, gt=0, le=100_000, description="alleles per call (nodes' limit)"
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> PeersFile:
        ids = [p.id for p in self.peers]
        if len(set(ids)) != len(ids):
            raise ValueError("peer ids must be unique")
        return self

    def resolved(self, base: Path) -> PeersFile:
        """The same file with every relative path made absolute against `base`."""

        def fix(path: Path | None) -> Path | None:
            return path if path is None or path.is_absolute() else base / path

        peers = [
            p.model_copy(
                update={
                    "tls": p.tls.model_copy(
                        update={k: fix(getattr(p.tls, k)) for k in ("ca", "cert", "key")}
                    )
                }
            )
            if p.tls is not None
            else p
            for p in self.peers
        ]
        identity = self.coordinator.model_copy(
            update={"private_key": fix(self.coordinator.private_key)}
        )
        return self.model_copy(update={"peers": peers, "coordinator": identity})


def load_peers(path: Path) -> PeersFile:
    """Parse and validate PEERS.yaml; any problem is an `InvalidInput` naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from exc
    if len(raw) > MAX_PEERS_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_PEERS_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
        return PeersFile.model_validate(data).resolved(path.parent)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not YAML ({exc.__class__.__name__})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InvalidInput(f"{path}: {where}: {first['msg']}") from exc
