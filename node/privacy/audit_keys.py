"""The node's audit signing key (Ed25519) and the signed checkpoints of the chain head
(JWS, EdDSA) written beside the log; `fednode audit key` prints the public half."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import NodeError
from node.privacy.audit_format import checkpoints_path, write_all

__all__ = ["Checkpointer", "load_or_create_key", "load_public_key", "public_key_pem"]


class Checkpointer:
    """Signs the chain head with the node's Ed25519 key (JWS, EdDSA) into
    `<log>.checkpoints`: after appends at most once per `interval_s` (the first append
    always does; inf: never), and on request (`sign`, the peer API's GetAuditCheckpoint)."""

    def __init__(self, key_path: Path, *, interval_s: float) -> None:
        self._key_path = key_path
        self._interval_s = interval_s
        self._key: Ed25519PrivateKey | None = None
        self._last = -float("inf")

    def maybe_sign(self, log_path: Path, seq: int, digest: str) -> None:
        """Sign when `interval_s` has passed since the last signature (inf: never)."""
        now = time.monotonic()
        if now - self._last < self._interval_s:
            return
        self.sign(log_path, seq, digest)

    def sign(self, log_path: Path, seq: int, digest: str) -> str:
        """Sign (seq, hash) now, append the token to `<log>.checkpoints`, return it."""
        if self._key is None:
            self._key = load_or_create_key(self._key_path)
        claims = {"log": log_path.name, "seq": seq, "hash": digest, "iat": int(time.time())}
        token = jwt.encode(claims, self._key, algorithm="EdDSA")
        fd = os.open(checkpoints_path(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            write_all(fd, token.encode() + b"\n")
        finally:
            os.close(fd)
        self._last = time.monotonic()
        return token

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._key_path)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The node's audit signing key; created (mode 0600, exclusively) on first use."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        # Linked into place whole: of several workers starting at once the first link
        # wins, and none reads a partial key.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
        finally:
            tmp.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NodeError(f"{path} is not an Ed25519 private key")
    return key


def public_key_pem(key_path: Path) -> bytes:
    """The public half of the audit signing key (created if missing), as PEM."""
    return load_or_create_key(key_path).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key exported by `public_key_pem` (e.g. `fednode audit key`)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise NodeError(f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise NodeError(f"{path}: not an Ed25519 public key")
    return key
