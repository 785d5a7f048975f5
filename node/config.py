"""Node configuration: one frozen pydantic-settings object.

Layers, lowest first: defaults → the node home's `fednode.toml` → `FEDNODE_*` environment
variables (nested with `__`, e.g. `FEDNODE_SERVER__PORT=9000`). The node never rewrites
the file; datasets are discovered under `store_uri` and configured here by id.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from node.errors import InvalidInput
from node.names import Granularity, SecurityLevel

__all__ = [
    "CONFIG_FILE",
    "AuditSettings",
    "AuthSettings",
    "BudgetSettings",
    "DatasetGrantSettings",
    "DatasetSettings",
    "HtsgetSettings",
    "IngestSettings",
    "IssuerSettings",
    "OidcSettings",
    "PeerCoordinatorSettings",
    "PeerSettings",
    "PortalSettings",
    "PrivacySettings",
    "ServerSettings",
    "Settings",
    "config_schema",
    "load_settings",
]

CONFIG_FILE = "fednode.toml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="largest accepted request body")
    request_timeout_s: float = Field(
        default=30.0, gt=0,
        description="longest a Beacon query may work; past it the answer is a 504 error")
    log_level: str = "INFO"
    housekeeping_s: float = Field(default=30.0, gt=0, le=3600, description=(
        "how often the server frees what the storage library keeps per finished query"))
    # HTTP parser limits (aiohttp's defaults, 8190 bytes, refused a valid 16 KB Passport).
    # A header line may always hold a bearer token of `auth.max_token_bytes`.
    max_url_bytes: int = Field(default=64 * 1024, ge=1024, le=1 << 20,
                               description="longest request line (method, URL, version)")
    max_header_bytes: int = Field(default=8190, ge=1024, le=1 << 20,
                                  description="longest header line besides Authorization")
    # Origins browsers may call the APIs from: ["*"] sends `*`; else an Origin listed here
    # is mirrored. Never with credentials (bearer tokens need none); never "null".
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # Host names (optionally host:port) that URLs built from a request (htsget tickets,
    # /map) may name. Empty: loopback names and `host` only (any port); set it, or
    # `htsget.public_url`, when the node is reached under another name.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Proxies (IP addresses or CIDR networks) whose X-Forwarded-Host/-Proto are honoured.
    trusted_proxies: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_null_origin(self) -> ServerSettings:
        if "null" in self.cors_origins:
            raise ValueError("server.cors_origins: 'null' (sandboxed pages) is never allowed")
        return self


class DatasetSettings(_Section):
    """Per-dataset settings, keyed by the Beacon dataset id in `[datasets.<id>]`."""

    name: str | None = None
    description: str | None = None
    assembly: str = "GRCh38"
    variant_stats_version: Literal[2, 3] = Field(default=2, description=(
        "TileDB-VCF variant_stats version of a dataset fednode creates (as `tiledbvcf "
        "create --variant-stats-version`; 2 is its default)"))
    security_level: SecurityLevel = SecurityLevel.CONTROLLED
    # Most revealing granularity per security level of the requester (deny by default:
    # anonymous requesters of a CONTROLLED dataset get boolean answers only).
    max_granularity: dict[SecurityLevel, Granularity] = Field(
        default_factory=lambda: {
            SecurityLevel.PUBLIC: Granularity.BOOLEAN,
            SecurityLevel.REGISTERED: Granularity.COUNT,
            SecurityLevel.CONTROLLED: Granularity.RECORD,
        }
    )


class IngestSettings(_Section):
    """`fednode ingest` (and `fednode index`)."""

    memory_budget_mb: int = Field(default=500, gt=0, description=(
        "peak memory (RSS, MiB) of an ingest: its process, or with --workers the command "
        "and its worker processes together (each task on a remote Dask cluster gets all "
        "of it); at least 200 per process. `fednode ingest --memory-budget-mb` overrides "
        "it"))
    block_reader: bool = Field(default=True, description=(
        "read whole VCF/BCF files of at most 8 samples in blocks (htslib and numba: about a "
        "tenth of cyvcf2's parsing CPU, ~150 MiB more RSS) where the memory budget has room "
        "(at least 350 MiB per process); false: every record through cyvcf2"))


class NodeInfo(_Section):
    id: str = "org.example.fednode"
    name: str = "fednode"
    organization: str = "Example Organization"
    organization_url: str = "https://example.org"
    contact_url: str = "mailto:beacon@example.org"
    # Shown in /info when set (beaconInfoResults; networks list them).
    organization_description: str | None = None
    organization_logo_url: str | None = None
    welcome_url: str | None = Field(default=None, description="the Beacon's welcome page")
    alternative_url: str | None = Field(
        default=None, description="another URL of this API, e.g. its authenticated version")


REGISTERED_ACCESS_DOI = "https://doi.org/10.1038/s41431-018-0219-y"
VisaBy = Literal["self", "peer", "system", "so", "dac"]
SigningAlg = Literal["RS256", "ES256"]


def _all_algs() -> list[SigningAlg]:
    return ["RS256", "ES256"]


def _dac_only() -> list[VisaBy]:
    return ["dac"]


def _any_by() -> list[VisaBy]:
    return ["self", "peer", "system", "so", "dac"]


class IssuerSettings(_Section):
    """A trusted token or visa issuer. Keys come from `jwks_uri` or a static `jwks`.

    Algorithms are pinned here and never taken from a token header (AAI profile
    §Signing Algorithms: RS256 and ES256 only).
    """

    iss: str = Field(min_length=1, max_length=255)
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = Field(default=None, description="static JWKS ({'keys': [...]})")
    algorithms: list[SigningAlg] = Field(default_factory=_all_algs, min_length=1)
    # Accepted `aud` values; empty: tokens that carry an `aud` are rejected.
    audience: list[str] = Field(default_factory=list)
    # JWKS URLs a visa's `jku` header may name (Passport v1 §Visa Format); exact match.
    jku_allowlist: list[str] = Field(default_factory=list)


class DatasetGrantSettings(_Section):
    """Which ControlledAccessGrants visas grant a dataset: exact `value`, accepted
    `source` (the DAC) and `by` values (Passport v1 §ControlledAccessGrants)."""

    value: str = Field(min_length=1, max_length=255)
    sources: list[str] = Field(min_length=1)
    by: list[VisaBy] = Field(default_factory=_dac_only, min_length=1)


class AuthSettings(_Section):
    # Brokers whose passports (bearer tokens) are accepted, and issuers whose visas are.
    brokers: list[IssuerSettings] = Field(default_factory=list)
    visa_issuers: list[IssuerSettings] = Field(default_factory=list)
    # Dataset id -> the grant that gives CONTROLLED access to it.
    grants: dict[str, DatasetGrantSettings] = Field(default_factory=dict)
    registered_terms: list[str] = Field(default_factory=lambda: [REGISTERED_ACCESS_DOI])
    registered_terms_by: list[VisaBy] = Field(default_factory=_any_by, min_length=1)
    researcher_status: list[str] = Field(default_factory=lambda: [REGISTERED_ACCESS_DOI])
    leeway_s: int = Field(default=30, ge=30, le=60, description="clock skew tolerated")
    max_token_bytes: int = Field(default=16384, gt=0, le=1 << 20)
    max_visas: int = Field(default=200, gt=0)
    jwks_max_age_s: float = Field(default=3600.0, gt=0)
    jwks_min_refresh_interval_s: float = Field(default=60.0, ge=0)
    jwks_timeout_s: float = Field(default=5.0, gt=0)


class BudgetSettings(_Section):
    """Per-requester disclosure budget (see node/privacy/budget.py)."""

    enabled: bool = True
    # Where budgets live: "sqlite" (`path`, one host or a shared volume) or "redis"
    # (`redis_url`, replicas on several hosts share one server).
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str = Field(default="budget.sqlite3", description="SQLite file, relative to home")
    redis_url: SecretStr | None = Field(
        default=None, description="redis://[user:password@]host:port/db; never printed"
    )
    redis_prefix: str = Field(default="fednode:budget:", min_length=1)
    # Shringarpure-Bustamante log-likelihood ratio (nats) a requester may accumulate.
    # A "yes" on an allele with c copies besides the target's is worth about
    # D_N = (1-f)^(2N) = e^-c nats, so a budget of e^-20 (2e-9) admits, over a whole
    # window, only answers about alleles carried ~20 times or more besides the target:
    # at N = 1,000 that is the evidence of one "yes" at AF 1% (1.9e-9). Rarer alleles,
    # and every "no" under strict pricing (0.29-0.46 nats), are refused: this is what
    # holds the rarest-first attack at its false-positive rate (docs/decisions.md).
    max_llr: float = Field(default=2e-9, gt=0)
    # DP loss (ε) a requester may accumulate: an authenticated requester (identities are
    # not cheap: a token names someone accountable), and an anonymous client address (a
    # new address is free, so it gets little: docs/privacy.md, the differencing figures).
    max_epsilon: float = Field(default=10.0, gt=0)
    anonymous_max_epsilon: float = Field(default=1.2, gt=0)
    # Pooled class budgets, per dataset: every anonymous requester together, and every
    # registered requester together, can learn at most this much in a window, whatever
    # number of addresses or tokens they use. Record-level requesters are never charged.
    pool_max_llr: float | None = Field(default=None, gt=0, description="None: 50 x max_llr")
    pool_max_epsilon: float = Field(default=12.0, gt=0)
    window_s: int | None = Field(default=30 * 24 * 3600, gt=0, description="None: lifetime")
    sequencing_error: float = Field(default=1e-6, gt=0, lt=1)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> BudgetSettings:
        if self.enabled and self.backend == "redis" and not self.redis_url:
            raise ValueError("privacy.budget.backend = 'redis' needs privacy.budget.redis_url")
        return self


class PrivacySettings(_Section):
    min_count: int = Field(default=5, ge=1, description="counts 1..min_count-1 are never exact")
    round_to: int | None = Field(default=None, gt=1, description="round counts up to a multiple")
    # Fresh geometric noise on the allele statistics of the peer API (off by default:
    # federated allele counts and frequencies are exact, priced by the likelihood ratio).
    epsilon: float | None = Field(default=None, gt=0, description="geometric noise on counts")
    # Counts of people (individuals, biosamples, runs, analyses, carriers) below record
    # level: two-sided geometric noise of this ε, the same for the same set of people
    # (keyed by the node's secret), each distinct set charged once per requester and
    # once per pool. None: exact counts, only the small-count threshold (not safe against
    # differencing: docs/privacy.md).
    people_epsilon: float | None = Field(default=0.6, gt=0)
    # Answers about fewer people than this (a variant query scoped by filters or an entry
    # id) are refused below record level, whatever they would say. None: `min_count`.
    min_scope: int | None = Field(default=None, ge=1)
    # Refuse a count or scope whose set of people differs from one already released in
    # the class (or from the whole dataset) by 1..min_count-1 people: the differencing
    # pair (A, A minus one person) never gets both answers.
    overlap_control: bool = True
    noise_secret_file: str = Field(
        default="privacy.secret", description="key of the people-count noise, under home")
    # Geometric noise on variant counts (Beacon g_variants counts and the "exists" read
    # from them) at boolean/count granularity: epsilon per matched allele. Off by default
    # (common alleles would no longer be answered exactly).
    variant_epsilon: float | None = Field(
        default=None, gt=0, description="geometric noise on variant counts, per allele"
    )
    # A "yes" is membership-revealing when the allele is this rare in the dataset.
    rare_allele_count: int = Field(default=4, ge=0)
    rare_allele_frequency: float = Field(default=0.01, ge=0, le=1)
    budget: BudgetSettings = BudgetSettings()
    # Strict pricing against the SB attack (tests/privacy/test_reidentification.py): a
    # "no" on a variant query is charged like a "yes" on a singleton (the "no"s
    # non-members get are the attack's contrast), and rarity is judged without the
    # target's own copies. Off (not safe against the rarest-first attack): a "yes" is
    # priced at the dataset's allele frequency and "no" answers are free.
    strict_pricing: bool = True

    @property
    def scope_floor(self) -> int:
        """The fewest people a below-record answer may be about."""
        return self.min_scope if self.min_scope is not None else self.min_count
    # Anonymous requesters are budgeted per client address: the TCP peer, or this header
    # when a trusted reverse proxy sets it (and strips any the client sent).
    client_address_header: str | None = Field(
        default=None, description="e.g. X-Forwarded-For, only behind a trusted proxy"
    )


class AuditSettings(_Section):
    enabled: bool = True
    path: str = Field(default="audit.jsonl", description="JSON-lines log, relative to home")
    fsync: bool = True
    max_bytes: int = Field(default=64 * 2**20, ge=0, description=(
        "rotate the log once it reaches this size (bytes); 0: never"))
    max_age_s: float = Field(default=0, ge=0, description=(
        "rotate the log once its first entry is this old (seconds); 0: never"))
    retention: int = Field(default=0, ge=0, description=(
        "rotated files kept, the oldest deleted first; 0: keep all"))
    checkpoint_interval_s: float = Field(default=300, ge=0, description=(
        "sign the chain head with the node's key at most this often (seconds); 0: never"))
    checkpoint_key: str = Field(default="audit-key.pem", description=(
        "Ed25519 private key (PEM) signing checkpoints, relative to home; created 0600"))


class PeerCoordinatorSettings(_Section):
    """A network coordinator allowed to call this node's peer (gRPC) API.

    It authenticates with a JWT it signs itself (iss = `id`, aud = this node's id),
    verified against `public_key` with the pinned `algorithms`, or with a TLS client
    certificate whose subject common name is `tls_subject`. It is then treated as a
    requester at `level`, with CONTROLLED access to `controlled_datasets`.
    """

    id: str = Field(min_length=1, max_length=255)
    public_key: str | None = Field(default=None, description="PEM public key (inline)")
    public_key_file: str | None = Field(default=None, description="PEM file, relative to home")
    algorithms: list[Literal["RS256", "ES256"]] = Field(
        default_factory=lambda: list[Literal["RS256", "ES256"]](["ES256"]), min_length=1
    )
    tls_subject: str | None = None
    level: SecurityLevel = SecurityLevel.REGISTERED
    controlled_datasets: list[str] = Field(default_factory=list)


class HtsgetSettings(_Section):
    """htsget: block URLs, their signed tokens, request limits."""

    # Base URL clients reach this node at, for block URLs (e.g. https://node.example.org);
    # None: taken from each ticket request's own scheme and host.
    public_url: str | None = None
    token_ttl_s: int = Field(default=900, gt=0, le=86400, description="block URL lifetime")
    secret_file: str = Field(default="htsget.secret", description="HMAC key file, under home")
    max_post_bytes: int = Field(default=64 * 1024, gt=0)
    max_regions: int = Field(default=1000, gt=0)
    max_generated_bytes: int = Field(default=256 << 20, gt=0, description="generated VCF/BCF")


def _endpoint(url: str) -> str:
    """An OIDC endpoint the browser is sent to: https, or http on a loopback host (tests,
    a local issuer)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0].lower()
    if scheme == "https" or (scheme == "http" and host in ("127.0.0.1", "localhost", "[::1]")):
        return url
    raise ValueError(f"{url!r}: an https URL (http only on a loopback host)")


class OidcSettings(_Section):
    """Sign-in of the portal with OpenID Connect, authorization code with PKCE (RFC 7636),
    run in the browser as a public client (no client secret). The token the issuer returns
    in `token_field` is used as the bearer token of the APIs, so the issuer must be one of
    `auth.brokers` (a Passport broker)."""

    issuer: str = Field(min_length=1, max_length=255)
    client_id: str = Field(min_length=1, max_length=255)
    authorization_endpoint: str = Field(max_length=2048)
    token_endpoint: str = Field(max_length=2048)
    scope: str = Field(default="openid ga4gh_passport_v1", max_length=1024)
    token_field: Literal["access_token", "id_token"] = "access_token"

    @model_validator(mode="after")
    def _endpoints(self) -> OidcSettings:
        _endpoint(self.authorization_endpoint)
        _endpoint(self.token_endpoint)
        return self


class PortalSettings(_Section):
    """The web portal served at `/` (node/web/portal)."""

    enabled: bool = True
    # igv.js's dist folder (npm `igv`); None: node_modules/igv/dist beside the package.
    igv_dir: str | None = None
    # The operator view's credential, as the hex SHA-256 of the secret the operator
    # presents (`printf %s SECRET | sha256sum`). None: the operator view is refused to all.
    operator_token_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    oidc: OidcSettings | None = None
    # Assembly id -> FASTA file (faidx-indexed, `<file>.fai` beside it), relative to home:
    # the reference the genome browser draws reads against (without one igv.js shows reads
    # with no reference bases). Contigs named as the datasets name them.
    references: dict[str, str] = Field(default_factory=dict)


class PeerSettings(_Section):
    """The peer (federation) gRPC API; served beside HTTP when `port` is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)
    max_message_bytes: int = Field(default=8 << 20, gt=0, le=64 << 20)
    max_batch_alleles: int = Field(default=10_000, gt=0)
    max_concurrent_calls: int = Field(default=64, gt=0)
    # Calls without a deadline get this one; longer client deadlines are cut to it.
    max_call_s: float = Field(default=60.0, gt=0)
    max_token_bytes: int = Field(default=8192, gt=0)
    max_token_lifetime_s: int = Field(default=600, gt=0, description="exp - iat at most")
    coordinators: list[PeerCoordinatorSettings] = Field(default_factory=list)
    tls_cert: str | None = Field(default=None, description="server certificate (PEM file)")
    tls_key: str | None = Field(default=None, description="server private key (PEM file)")
    tls_client_ca: str | None = Field(default=None, description="CA of accepted client certs")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="FEDNODE_", env_nested_delimiter="__"
    )

    home: Path = Path(".")
    # Where the TileDB-VCF datasets live: a local folder (relative to home) or any URI
    # TileDB's VFS accepts (s3://bucket/prefix, ...). Dataset <id> is at <store_uri>/<id>.
    store_uri: str = "datasets"
    tiledb_config: dict[str, str] = Field(default_factory=dict)
    node: NodeInfo = NodeInfo()
    server: ServerSettings = ServerSettings()
    datasets: dict[str, DatasetSettings] = Field(default_factory=dict)
    ingest: IngestSettings = IngestSettings()
    # Assembly id -> BED of gene coordinates (chrom, start, end, name), relative to home:
    # Beacon geneId queries use it besides the VCF's own CSQ/ANN annotations.
    gene_beds: dict[str, str] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    privacy: PrivacySettings = PrivacySettings()
    audit: AuditSettings = AuditSettings()
    peer: PeerSettings = PeerSettings()
    htsget: HtsgetSettings = HtsgetSettings()
    portal: PortalSettings = PortalSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_file_for(init_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def dataset_uri(self, dataset_id: str) -> str:
        root = self.store_uri
        if "://" in root:
            return f"{root.rstrip('/')}/{dataset_id}"
        base = Path(root) if Path(root).is_absolute() else self.home / root
        return str(base / dataset_id)

    def dataset(self, dataset_id: str) -> DatasetSettings:
        return self.datasets.get(dataset_id, DatasetSettings())


def _toml_file_for(init_settings: PydanticBaseSettingsSource) -> Path | None:
    init = init_settings()
    home = init.get("home")
    if home is None:
        return None
    path = Path(home) / CONFIG_FILE
    return path if path.is_file() else None


def load_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of the node home `home` (its `fednode.toml`, then the environment).

    A malformed file or value is an `InvalidInput` naming the file and the offending keys.
    """
    try:
        return Settings(home=home, **overrides)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{home / CONFIG_FILE}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"{home / CONFIG_FILE} (or FEDNODE_* environment): {problems}") from exc


def config_schema() -> dict[str, Any]:
    return Settings.model_json_schema()


def dump_settings(settings: Settings) -> str:
    return json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True)
