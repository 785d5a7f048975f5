"""The generated documents in schemas/ match the code (regenerate: python -m node.schemas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.schemas import generated, render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(generated()))
def test_generated_document_has_not_drifted(name: str) -> None:
    on_disk = (SCHEMAS / name).read_text()
    assert on_disk == render(generated()[name]), f"schemas/{name} drifted: python -m node.schemas"
