"""Beacon v2 wire models (pydantic v2) and the parsed request the node works with.

Request bodies follow framework/json/requests/beaconRequestBody.json; unknown members are
rejected (`extra="forbid"`) so a misspelt parameter is an error, not a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from node.beacon.variants import VariantQuery
from node.domain import Filter
from node.names import Granularity

__all__ = [
    "API_VERSION",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "BeaconRequest",
    "IncludeResultsets",
    "RequestBody",
]

API_VERSION = "v2.1.1"
DEFAULT_LIMIT = 10
# The largest page the node returns (also what `limit=0` means: "server maximum").
MAX_LIMIT = 100
MAX_FILTERS = 50

IncludeResultsets = Literal["HIT", "MISS", "ALL", "NONE"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SchemaRef(_Wire):
    entity_type: str = Field(alias="entityType", max_length=100)
    schema_: str = Field(alias="schema", max_length=500)


class RequestMeta(_Wire):
    api_version: str | None = Field(default=None, alias="apiVersion", max_length=20)
    requested_schemas: list[SchemaRef] = Field(
        default_factory=list, alias="requestedSchemas", max_length=10
    )


class Pagination(_Wire):
    skip: int = Field(default=0, ge=0, le=1_000_000_000)
    limit: int = Field(default=DEFAULT_LIMIT, ge=0, le=1_000_000_000)
    current_page: str | None = Field(default=None, alias="currentPage", max_length=200)
    next_page: str | None = Field(default=None, alias="nextPage", max_length=200)
    previous_page: str | None = Field(default=None, alias="previousPage", max_length=200)


class FilterBody(_Wire):
    id: str = Field(min_length=1, max_length=200)
    operator: Literal["=", "<", ">", "!", ">=", "<="] | None = None
    value: str | int | float | None = None
    include_descendant_terms: bool = Field(default=True, alias="includeDescendantTerms")
    similarity: Literal["exact", "high", "medium", "low"] = "exact"
    scope: str | None = Field(default=None, max_length=100)


class RequestQuery(_Wire):
    request_parameters: dict[str, Any] = Field(default_factory=dict, alias="requestParameters")
    filters: list[FilterBody | str] = Field(default_factory=list, max_length=MAX_FILTERS)
    include_resultset_responses: IncludeResultsets = Field(
        default="HIT", alias="includeResultsetResponses"
    )
    pagination: Pagination = Pagination()
    requested_granularity: Granularity = Field(
        default=Granularity.BOOLEAN, alias="requestedGranularity"
    )
    test_mode: bool = Field(default=False, alias="testMode")


class RequestBody(_Wire):
    meta: RequestMeta = RequestMeta()
    query: RequestQuery = RequestQuery()


@dataclass(frozen=True, slots=True)
class BeaconRequest:
    """One Beacon request, transport-independent; `echo` is what the node understood, for
    `meta.receivedRequestSummary`."""

    granularity: Granularity = Granularity.BOOLEAN
    include: IncludeResultsets = "HIT"
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    filters: tuple[Filter, ...] = ()
    dataset_ids: tuple[str, ...] | None = None
    test_mode: bool = False
    variant: VariantQuery | None = None
    requested_schemas: tuple[dict[str, str], ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
