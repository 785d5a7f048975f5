"""Shared fixtures. `../shared` (test data outside the repo) is optional: tests that need it
skip with a message saying so; nothing else in the suite depends on it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not present at {SHARED}: test data outside the repo is unavailable")
    return SHARED
