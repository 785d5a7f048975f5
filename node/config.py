"""Node configuration: one frozen pydantic-settings object.

Layers, lowest first: defaults → the node home's `fednode.toml` → `FEDNODE_*` environment
variables (nested with `__`, e.g. `FEDNODE_SERVER__PORT=9000`). The node never rewrites
the file; datasets are discovered under `store_uri` and configured here by id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from node.names import Granularity, SecurityLevel

__all__ = [
    "CONFIG_FILE",
    "DatasetSettings",
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
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1 << 20, gt=0, description="largest accepted request body")
    request_timeout_s: float = Field(30.0, gt=0)
    log_level: str = "INFO"


class DatasetSettings(_Section):
    """Per-dataset settings, keyed by the Beacon dataset id in `[datasets.<id>]`."""

    name: str | None = None
    description: str | None = None
    assembly: str = "GRCh38"
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


class NodeInfo(_Section):
    id: str = "org.example.fednode"
    name: str = "fednode"
    organization: str = "Example Organization"
    organization_url: str = "https://example.org"
    contact_url: str = "mailto:beacon@example.org"


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
    """Settings of the node home `home` (its `fednode.toml`, then the environment)."""
    return Settings(home=home, **overrides)


def config_schema() -> dict[str, Any]:
    return Settings.model_json_schema()


def dump_settings(settings: Settings) -> str:
    return json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True)
