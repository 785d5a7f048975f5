"""Shared fixtures. `../shared` (test data outside the repo) is optional: tests that need it
skip with a message saying so; nothing else in the suite depends on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# In CI every property test draws the same examples in every run, so a red build is the
# code's, never the draw's; locally they explore (and print how to reproduce a finding).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not present at {SHARED}: test data outside the repo is unavailable")
    return SHARED
