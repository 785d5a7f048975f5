"""service-info for /reads and /variants (htsget 1.3 §Service Info, GA4GH service-info 1.0)."""

from __future__ import annotations

from typing import Any

from node import __version__
from node.htsget.models import FORMATS, Kind

__all__ = ["service_info"]


def service_info(
    kind: Kind, *, node_id: str, node_name: str, org: str, org_url: str
) -> dict[str, Any]:
    return {
        "id": f"{node_id}.htsget.{kind}",
        "name": f"{node_name} htsget {kind}",
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
        "organization": {"name": org, "url": org_url},
        "version": __version__,
        "htsget": {
            "datatype": kind,
            "formats": list(FORMATS[kind]),
            # Blocks are byte ranges of the stored files: fields/tags/notags are validated
            # but not applied, and said so here as htsget §Service Info allows.
            "fieldsParameterEffective": False,
            "tagsParametersEffective": False,
        },
    }
