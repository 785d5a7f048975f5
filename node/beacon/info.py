"""Beacon v2 framework documents: info, service-info, configuration, map, entry_types,
filtering_terms. The entry-type table here is the single source of what is served: the
router, /map, /configuration and the OpenAPI document are all built from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.beacon.models import API_VERSION
from node.config import Settings
from node.errors import NotFound
from node.names import Granularity

if TYPE_CHECKING:
    from node.service import MetadataCatalog

__all__ = [
    "ENTRY_TYPES",
    "EntryType",
    "by_path",
    "configuration",
    "entry_types",
    "filtering_terms_of",
    "info",
    "informational_meta",
    "map_document",
    "service_info",
]

SPEC_BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
MODEL = "models/json/beacon-v2-default-model/"


@dataclass(frozen=True, slots=True)
class EntryType:
    path: str  # URL segment, e.g. "g_variants"
    id: str  # Beacon entry type id, e.g. "genomicVariant"
    name: str
    model_dir: str  # folder of the default model, e.g. "genomicVariations"
    ontology: tuple[str, str]
    nested: tuple[str, ...]  # paths of entry types served under /{path}/{id}/...
    collection: bool = False

    @property
    def schema_path(self) -> str:
        return f"{MODEL}{self.model_dir}/defaultSchema.json"

    @property
    def schema_id(self) -> str:
        return f"ga4gh-beacon-{self.id}-v2.0.0"

    def returned_schema(self) -> dict[str, str]:
        return {"entityType": self.id, "schema": self.schema_id}


# Entry types and nested endpoints of the Beacon v2 default model (models/.../beaconMap.json).
ENTRY_TYPES: tuple[EntryType, ...] = (
    EntryType("g_variants", "genomicVariant", "Genomic Variants", "genomicVariations",
              ("ENSGLOSSARY:0000092", "Variant"),
              ("analyses", "biosamples", "individuals", "runs")),
    EntryType("individuals", "individual", "Individual", "individuals",
              ("NCIT:C25190", "Person"), ("analyses", "biosamples", "g_variants", "runs")),
    EntryType("biosamples", "biosample", "Biological Sample", "biosamples",
              ("NCIT:C70699", "Biospecimen"), ("analyses", "g_variants", "runs")),
    EntryType("runs", "run", "Sequencing run", "runs",
              ("NCIT:C148088", "Sequencing run"), ("analyses", "g_variants")),
    EntryType("analyses", "analysis", "Bioinformatics analysis", "analyses",
              ("edam:operation_2945", "Analysis"), ("g_variants",)),
    EntryType("cohorts", "cohort", "Cohort", "cohorts", ("NCIT:C61512", "Cohort"),
              ("analyses", "biosamples", "g_variants", "individuals", "runs"), collection=True),
    EntryType("datasets", "dataset", "Dataset", "datasets", ("NCIT:C47824", "Data set"),
              ("analyses", "biosamples", "g_variants", "individuals", "runs"), collection=True),
)
_BY_PATH = {e.path: e for e in ENTRY_TYPES}


def by_path(path: str) -> EntryType:
    return _BY_PATH[path]


def informational_meta(settings: Settings, schema: str | None = None) -> dict[str, Any]:
    """`meta` of the informational endpoints (beaconInformationalResponseMeta)."""
    schemas = [{"entityType": "info", "schema": schema}] if schema else []
    return {"beaconId": settings.node.id, "apiVersion": API_VERSION, "returnedSchemas": schemas}


def _set(**fields: str | None) -> dict[str, str]:
    """The optional fields that are configured (an unset one is left out, never null)."""
    return {k: v for k, v in fields.items() if v is not None}


def _organization(settings: Settings) -> dict[str, Any]:
    node = settings.node
    return {"id": node.id.rsplit(".", 1)[0] or node.id, "name": node.organization,
            "welcomeUrl": node.organization_url, "contactUrl": node.contact_url,
            **_set(description=node.organization_description,
                   logoUrl=node.organization_logo_url)}


def info(settings: Settings, *, version: str) -> dict[str, Any]:
    """beaconInfoResponse; network registries (the EGA facade) read `alternativeUrl`,
    `welcomeUrl` and `organization.logoUrl` (framework beaconInfoResults.json)."""
    node = settings.node
    return {
        "meta": informational_meta(settings, "beacon-info-v2.0.0"),
        "response": {
            "id": node.id, "name": node.name, "apiVersion": API_VERSION,
            "environment": "prod", "organization": _organization(settings),
            "description": "fednode: a federated genomics query node (Beacon v2, htsget)",
            "version": version,
            **_set(welcomeUrl=node.welcome_url, alternativeUrl=node.alternative_url),
        },
    }


def service_info(settings: Settings, *, version: str) -> dict[str, Any]:
    """GA4GH service-info 1.0 with the Beacon service type (org.ga4gh:beacon)."""
    node = settings.node
    org = {"name": node.organization, "url": node.organization_url}
    return {
        "id": node.id, "name": node.name,
        "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
        "organization": org, "contactUrl": node.contact_url,
        "environment": "prod", "version": version,
        "description": "fednode: a federated genomics query node (Beacon v2, htsget)",
    }


def _entry_type_definition(e: EntryType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id, "name": e.name,
        "ontologyTermForThisType": {"id": e.ontology[0], "label": e.ontology[1]},
        "partOfSpecification": f"Beacon {API_VERSION}",
        "defaultSchema": {"id": e.schema_id, "name": f"Default schema for {e.name.lower()}",
                          "referenceToSchemaDefinition": SPEC_BASE + e.schema_path,
                          "schemaVersion": "v2.0.0"},
        "nonFilteredQueriesAllowed": True,
    }
    if e.collection:
        out["aCollectionOf"] = [{"id": by_path(n).id, "name": by_path(n).name} for n in e.nested]
    return out


def entry_types(settings: Settings) -> dict[str, Any]:
    return {
        "meta": informational_meta(settings, "beacon-entry-types-v2.0.0"),
        "response": {"entryTypes": {e.id: _entry_type_definition(e) for e in ENTRY_TYPES}},
    }


def configuration(settings: Settings) -> dict[str, Any]:
    levels = sorted({d.security_level.value for d in settings.datasets.values()} or {"CONTROLLED"})
    return {
        "meta": informational_meta(settings, "beacon-configuration-v2.0.0"),
        "response": {
            "$schema": SPEC_BASE + "framework/json/configuration/beaconConfigurationSchema.json",
            "maturityAttributes": {"productionStatus": "DEV"},
            "securityAttributes": {"defaultGranularity": Granularity.BOOLEAN.value,
                                   "securityLevels": levels},
            "entryTypes": {e.id: _entry_type_definition(e) for e in ENTRY_TYPES},
        },
    }


def map_document(settings: Settings, *, base: str) -> dict[str, Any]:
    """/map: exactly the routes this node serves (`base` is the API's absolute URL)."""
    sets = {}
    for e in ENTRY_TYPES:
        sets[e.id] = {
            "entryType": e.id, "rootUrl": f"{base}/{e.path}",
            "singleEntryUrl": f"{base}/{e.path}/{{id}}",
            "openAPIEndpointsDefinition": f"{base}/openapi.json",
            "endpoints": {
                by_path(n).id: {"url": f"{base}/{e.path}/{{id}}/{n}",
                                "returnedEntryType": by_path(n).id}
                for n in e.nested
            },
        }
    return {
        "meta": informational_meta(settings, "beacon-map-v2.0.0"),
        "response": {
            "$schema": SPEC_BASE + "framework/json/configuration/beaconMapSchema.json",
            "endpointSets": sets,
        },
    }


def filtering_terms_of(
    catalog: MetadataCatalog | None,
    *,
    scope: str | None,
    entry_id: str | None,
    dataset_ids: Sequence[str],
) -> list[dict[str, Any]]:
    """The terms of /filtering_terms (every dataset), /datasets/{id}/filtering_terms (that
    dataset's) and /cohorts/{id}/filtering_terms (its dataset's: BFF cohorts carry no
    member list, so a cohort spans the records of the dataset holding it). `dataset_ids`:
    the node's datasets; an unknown dataset or cohort is NotFound."""
    if scope is None:
        return catalog.filtering_terms(None) if catalog is not None else []
    key = entry_id or ""
    if scope == "datasets":
        if key not in dataset_ids:
            raise NotFound(f"no dataset {key[:100]!r}")
        return catalog.filtering_terms([key]) if catalog is not None else []
    holders = catalog.datasets_of(scope, key) if catalog is not None else ()
    if catalog is None or not holders:
        raise NotFound(f"no {scope.rstrip('s')} {key[:100]!r}")
    return catalog.filtering_terms(list(holders))
