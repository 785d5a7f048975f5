"""Offline validation against the official Beacon v2 schemas in `../shared/beacon-v2`.

Every schema file is registered under the URI the spec repository publishes it at, so the
absolute `$ref`s in the files (raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/...)
and their relative `$ref`s resolve without network access. The VRS 1.3 definitions that
genomicVariations refers to are registered as draft-07 under their w3id URI. `examples`
folders are skipped: several shipped examples fail their own schemas.

    validate(record, "models/json/beacon-v2-default-model/individuals/defaultSchema.json")
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from tests.conftest import SHARED

__all__ = ["BEACON_BASE", "VRS_URI", "registry", "schema_uri", "validate", "validator"]

BEACON_BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS_URI = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"


def _beacon_root() -> Path:
    root = SHARED / "beacon-v2"
    if not root.is_dir():
        pytest.skip(f"Beacon v2 schemas not present at {root}: ../shared is unavailable")
    return root


def schema_uri(schema_path: str) -> str:
    """The published URI of a schema given its path relative to the beacon-v2 root."""
    return BEACON_BASE + schema_path.lstrip("/")


@cache
def registry() -> Registry[Any]:
    """All Beacon v2 schemas (Draft 2020-12) and VRS 1.3 (draft-07), keyed by their URIs."""
    root = _beacon_root()
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if "examples" in rel.parts:
            continue
        contents = json.loads(path.read_text())
        resource = DRAFT202012.create_resource(contents)
        resources.append((schema_uri(rel.as_posix()), resource))
    vrs = SHARED / "vrs-1.3" / "vrs.json"
    if vrs.is_file():
        resources.append((VRS_URI, DRAFT7.create_resource(json.loads(vrs.read_text()))))
    return Registry().with_resources(resources).crawl()


@cache
def validator(schema_path: str) -> Draft202012Validator:
    """A reusable validator for the schema at `schema_path` (relative to the beacon-v2 root)."""
    reg = registry()
    uri = schema_uri(schema_path)
    if uri not in reg:
        raise AssertionError(f"no schema registered at {schema_path}")
    return Draft202012Validator({"$ref": uri}, registry=reg)


def validate(instance: Any, schema_path: str) -> None:
    """Raise AssertionError listing every error of `instance` against the schema at
    `schema_path` (relative to the beacon-v2 root)."""
    errors = sorted(
        validator(schema_path).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    if errors:
        lines = [f"{len(errors)} schema error(s) against {schema_path}:"]
        for err in errors:
            where = "/".join(str(p) for p in err.absolute_path) or "<root>"
            lines.append(f"  at {where}: {err.message}")
        raise AssertionError("\n".join(lines))
