"""Signed, short-lived block URLs: the requester's bearer token never appears in them.

A token is `base64url(payload JSON) "." base64url(HMAC-SHA256(secret, payload part))`;
the payload carries its expiry. Verification compares MACs in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from node.errors import InvalidInput, PermissionDenied

__all__ = ["BlockSigner"]

_MAX_TOKEN = 8192


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BlockSigner:
    def __init__(
        self, secret: bytes, *, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the block signing secret must be at least 32 bytes")
        self._secret = secret
        self._ttl = ttl_s
        self._clock = clock

    def sign(self, payload: dict[str, Any]) -> str:
        body = dict(payload, x=int(self._clock() + self._ttl))
        part = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{part}.{self._mac(part)}"

    def verify(self, token: str) -> dict[str, Any]:
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            raise InvalidInput("malformed block token")
        part, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(part).encode()):
            raise PermissionDenied("invalid block token")
        try:
            payload = json.loads(_unb64(part))
        except ValueError as exc:
            raise InvalidInput("malformed block token") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("x"), int):
            raise InvalidInput("malformed block token")
        if payload["x"] < self._clock():
            raise PermissionDenied("the block URL has expired; request a new ticket")
        return payload

    def _mac(self, part: str) -> str:
        return _b64(hmac.new(self._secret, part.encode(), hashlib.sha256).digest())
