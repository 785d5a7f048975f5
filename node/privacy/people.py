"""Sets of people, the unit every people count and every scoped answer is about.

A count of individuals (or biosamples, runs, analyses, carriers) below record level is
released with two-sided geometric noise (ε-differential privacy, sensitivity 1: one
person joins or leaves the set). Two things make that hold up against a real requester:

- **The same set, the same answer.** The noise is drawn from a keyed hash of the set
  (`keyed_noise`: HMAC-SHA256 of the node's secret and the set's digest), not from a
  fresh random draw: asking again, or asking a differently worded query that matches the
  same people, returns the same value, so repetition cannot average the noise away and
  costs nothing (the budget charges each distinct set once, node/privacy/budget.py).
- **No differencing pairs.** `overlap` measures how many people two sets differ by; the
  gate refuses a set that differs by 1..k-1 people from one already released to the
  requester's class, or from the whole dataset (whose size is public): the classic
  "all" versus "all but the tall one" pair never gets both answers. What is left to an
  attacker are trackers of three or more large sets, each adding its own noise.

Members are kept as sorted 64-bit hashes of their ids (the overlap of two sets is a
merge of two sorted arrays; a released set of 2,504 people is 20 KB).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.errors import InvalidInput

__all__ = ["PeopleSet", "keyed_noise", "load_secret", "overlap", "people_set"]

_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True, eq=False)
class PeopleSet:
    """The people one answer is about: `kind` of entries ("individuals", "biosamples",
    "runs", "analyses", "samples" for a variant query's scope, "carriers") of `dataset`;
    `members`: sorted uint64 hashes of their ids; `digest`: the set's identity."""

    dataset: str
    kind: str
    digest: str
    members: np.ndarray

    @property
    def size(self) -> int:
        return int(self.members.size)

    def blob(self) -> bytes:
        return self.members.astype("<u8").tobytes()


def _hash_ids(ids: Iterable[str]) -> np.ndarray:
    out = [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
           for i in ids]
    return np.unique(np.array(out, dtype=np.uint64))


def people_set(dataset: str, kind: str, ids: Iterable[str]) -> PeopleSet:
    """The set of `ids` (entries of `kind` in `dataset`)."""
    members = _hash_ids(ids)
    digest = hashlib.sha256(members.astype("<u8").tobytes()).hexdigest()[:32]
    return PeopleSet(dataset, kind, digest, members)


def members_of(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """How many people two sets differ by (the size of their symmetric difference)."""
    common = np.intersect1d(a, b, assume_unique=True).size
    return int(a.size + b.size - 2 * common)


def keyed_noise(secret: bytes, people: PeopleSet, epsilon: float) -> int:
    """A two-sided geometric draw (P(z) ∝ e^{-ε|z|}) determined by the set and the key:
    the difference of two geometric variables, each from its own uniform of the HMAC."""
    mac = hmac.new(secret, f"{people.dataset}\0{people.kind}\0{people.digest}".encode(),
                   hashlib.sha256).digest()
    alpha = math.exp(-epsilon)
    first, second = (_uniform(mac[i:i + 8]) for i in (0, 8))
    return _geometric(first, alpha) - _geometric(second, alpha)


def _uniform(raw: bytes) -> float:
    # 53 random bits into (0, 1]: log of it is finite.
    return (int.from_bytes(raw, "little") >> 11) / (1 << 53) or 2.0**-53


def _geometric(u: float, alpha: float) -> int:
    # Inverse CDF of P(G >= k) = alpha^k.
    return math.floor(math.log(u) / math.log(alpha))


def load_secret(path: Path) -> bytes:
    """The node's noise key, created (0600) on first use. Replicas share the node home,
    so they share the key and answer a set alike."""
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and linked into place: a reader never sees a
    # partial key, and of two processes starting at once the first link wins.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(_SECRET_BYTES))
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        tmp.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 16:
        raise InvalidInput(f"{path}: the noise key is shorter than 16 bytes; delete the "
                           "file to have a new key made (noised answers are then re-drawn)")
    return key
