"""JSON schemas of what the htsget endpoints answer (htsget 1.3 §Response JSON, §Errors):
a ticket and an error body, built from the formats and errors the node has, written to
`schemas/` by `python -m node.schemas` and checked against real answers by the tests."""

from __future__ import annotations

from typing import Any

from node.errors import NodeError
from node.htsget.models import FORMATS

__all__ = ["error_names", "error_schema", "ticket_schema"]

def error_names() -> list[str]:
    """Every `error` name an htsget error body of this node can carry."""
    names: set[str] = set()
    pending: list[type[NodeError]] = [NodeError]
    while pending:
        cls = pending.pop()
        names.add(cls.htsget_error)
        pending.extend(cls.__subclasses__())
    return sorted(names)


def ticket_schema() -> dict[str, Any]:
    formats = sorted({f for kinds in FORMATS.values() for f in kinds})
    url = {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "pattern": "^(https?:|data:)"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "class": {"enum": ["header", "body"]},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "htsget 1.3 ticket",
        "type": "object",
        "required": ["htsget"],
        "additionalProperties": False,
        "properties": {
            "htsget": {
                "type": "object",
                "required": ["format", "urls"],
                "additionalProperties": False,
                "properties": {
                    "format": {"enum": formats},
                    "urls": {"type": "array", "minItems": 1, "items": url},
                    "md5": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                },
            }
        },
    }


def error_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "htsget 1.3 error",
        "type": "object",
        "required": ["htsget"],
        "additionalProperties": False,
        "properties": {
            "htsget": {
                "type": "object",
                "required": ["error", "message"],
                "additionalProperties": False,
                "properties": {
                    "error": {"enum": error_names()},
                    "message": {"type": "string", "minLength": 1},
                },
            }
        },
    }
