"""Sets of people: identity, overlap, keyed noise, the node's noise key."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from node.errors import InvalidInput
from node.privacy.people import keyed_noise, load_secret, overlap, people_set


def test_a_set_is_its_members_whatever_their_order_or_repeats() -> None:
    a = people_set("d", "individuals", ["x", "y", "z"])
    b = people_set("d", "individuals", ["z", "x", "y", "x"])
    assert a.digest == b.digest and a.size == 3
    assert people_set("d", "individuals", ["x", "y"]).digest != a.digest


def test_overlap_is_the_symmetric_difference() -> None:
    everyone = people_set("d", "k", [f"p{i}" for i in range(100)])
    but_one = people_set("d", "k", [f"p{i}" for i in range(1, 100)])
    shifted = people_set("d", "k", [f"p{i}" for i in range(3, 103)])
    assert overlap(everyone.members, but_one.members) == 1
    assert overlap(everyone.members, shifted.members) == 6
    assert overlap(everyone.members, everyone.members) == 0


def test_noise_depends_on_the_set_and_the_key_only() -> None:
    sets = [people_set("d", "k", [f"p{i}" for i in range(n)]) for n in range(50, 250)]
    first = [keyed_noise(b"k" * 32, s, 0.6) for s in sets]
    assert first == [keyed_noise(b"k" * 32, s, 0.6) for s in sets]
    assert first != [keyed_noise(b"K" * 32, s, 0.6) for s in sets]
    assert len(set(first)) > 5  # not a constant


def test_the_key_is_made_once_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "home" / "privacy.secret"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_secret(path), range(16)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["privacy.secret"]
    path.write_bytes(b"short")
    with pytest.raises(InvalidInput, match="noise key"):
        load_secret(path)
