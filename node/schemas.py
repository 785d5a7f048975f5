"""`python -m node.schemas`: write the generated documents of `schemas/` (the settings'
JSON schema, the peers file's, the htsget ticket and error bodies', the Beacon OpenAPI
document); tests/web/test_schemas.py checks they match."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from node import __version__
from node.beacon.openapi import openapi_document
from node.config import config_schema
from node.htsget.schema import error_schema, ticket_schema
from node.peer.peers import PeersFile

__all__ = ["generated"]

OPENAPI_BASE = "/api"  # the served document names its server's own base URL


def generated() -> dict[str, dict[str, Any]]:
    """File name -> document."""
    return {
        "config.schema.json": config_schema(),
        "peers.schema.json": PeersFile.model_json_schema(),
        "htsget-ticket.schema.json": ticket_schema(),
        "htsget-error.schema.json": error_schema(),
        "openapi.json": openapi_document(base=OPENAPI_BASE, version=__version__),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    folder = Path(argv[0] if argv else "schemas")
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in generated().items():
        (folder / name).write_text(render(document))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
