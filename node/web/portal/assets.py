"""The portal's assets: its own scripts and stylesheet (package data, read once) and
igv.js (npm `igv`, `make demo` installs it). Only the files named here are served: no
directory is exposed, so no path from a request ever reaches the file system."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from node.config import Settings

__all__ = ["IGV_MODULE", "Assets", "load_assets"]

STATIC = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css"}
IGV_MODULE = "igv.esm.min.js"
# node_modules/ of a checkout, beside the `node` package.
_CHECKOUT_IGV = Path(__file__).resolve().parents[3] / "node_modules" / "igv" / "dist"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Assets:
    files: dict[str, Asset]
    igv: Path | None  # igv.js's ES module, None when it is not installed
    version: str  # changes with any asset: pages link `?v=<version>`

    def get(self, name: str) -> Asset | None:
        return self.files.get(name)


def load_assets(settings: Settings) -> Assets:
    files = {
        p.name: Asset(p.read_bytes(), _TYPES[p.suffix])
        for p in sorted(STATIC.iterdir())
        if p.suffix in _TYPES
    }
    igv_dir = Path(settings.portal.igv_dir) if settings.portal.igv_dir else _CHECKOUT_IGV
    igv = igv_dir / IGV_MODULE
    digest = hashlib.sha256()
    for name, asset in files.items():
        digest.update(name.encode() + b"\0" + asset.body)
    if igv.is_file():
        stat = igv.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return Assets(files, igv if igv.is_file() else None, digest.hexdigest()[:12])
