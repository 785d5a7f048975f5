"""The generated documents in schemas/ match the code (regenerate: python -m node.schemas)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from node.peer.peers import PeersFile
from node.schemas import generated, render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(generated()))
def test_generated_document_has_not_drifted(name: str) -> None:
    on_disk = (SCHEMAS / name).read_text()
    assert on_disk == render(generated()[name]), f"schemas/{name} drifted: python -m node.schemas"


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def test_deployed_peers_file_is_valid_and_bad_ones_are_not() -> None:
    peers = _validator("peers.schema.json")
    doc = yaml.safe_load((SCHEMAS.parent / "deploy" / "peers.compose.yaml").read_text())
    peers.validate(doc)
    PeersFile.model_validate(doc)  # the schema and the loader agree on it
    assert not peers.is_valid({**doc, "unknown": 1})


def test_htsget_schemas_refuse_what_the_specification_does_not_allow() -> None:
    ticket, error = _validator("htsget-ticket.schema.json"), _validator("htsget-error.schema.json")
    good = {"htsget": {"format": "BAM", "urls": [{"url": "data:;base64,AA==", "class": "header"}]}}
    assert ticket.is_valid(good)
    assert not ticket.is_valid({"htsget": {"format": "BAM", "urls": []}})
    assert not ticket.is_valid({"htsget": {"format": "SAM", "urls": good["htsget"]["urls"]}})
    assert not ticket.is_valid({"htsget": {**good["htsget"], "md5": "ABC"}})
    assert error.is_valid({"htsget": {"error": "NotFound", "message": "no such id"}})
    assert not error.is_valid({"htsget": {"error": "Oops", "message": "x"}})
    assert not error.is_valid({"htsget": {"error": "NotFound", "message": ""}})
