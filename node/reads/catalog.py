"""The reads catalog: registered BAM/CRAM/VCF/BCF files, by id, under `<home>/reads/`.

Files stay where they are: a local path, an `s3://` object or an HTTP(S) URL
(`node/reads/storage.py`). The catalog records their location, format, index and dataset
in `catalog.json`, rewritten atomically (temporary file + rename). A missing index of a
local file is built into `<home>/reads/indices/`, never next to the file (its folder may be
read-only); a remote file's index must be beside it or named (`index=`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from node.errors import Conflict, InvalidInput, NotFound, UnsupportedFormat
from node.reads.cache import LayoutCache
from node.reads.layout import FileFormat, Layout
from node.reads.storage import ByteSource, Storage

__all__ = ["ReadsCatalog", "ReadsEntry", "detect_format"]

CATALOG_FILE = "catalog.json"
_ID = re.compile(r"^[A-Za-z0-9._~/-]{1,200}$")
_INDEX_SUFFIXES: dict[str, tuple[str, ...]] = {
    "BAM": (".bai", ".csi"),
    "CRAM": (".crai",),
    "VCF": (".tbi", ".csi"),
    "BCF": (".csi",),
}


@dataclass(frozen=True, slots=True)
class ReadsEntry:
    id: str
    dataset: str
    path: str
    index: str
    format: FileFormat

    @property
    def kind(self) -> str:
        """The htsget endpoint serving it: "reads" or "variants"."""
        return "reads" if self.format in ("BAM", "CRAM") else "variants"


class ReadsCatalog:
    def __init__(
        self, root: Path, *, cache: LayoutCache | None = None, storage: Storage | None = None
    ) -> None:
        self.root = root
        self.cache = cache or LayoutCache()
        self.storage = storage or Storage()
        self._lock = threading.Lock()
        self._entries = self._load()

    def _load(self) -> dict[tuple[str, str], ReadsEntry]:
        path = self.root / CATALOG_FILE
        if not path.is_file():
            return {}
        raw = json.loads(path.read_text())
        entries = (ReadsEntry(**e) for e in raw.get("files", []))
        return {(e.id, e.format): e for e in entries}

    def get(self, entry_id: str, *, kind: str, fmt: str) -> ReadsEntry:
        """The file registered as `entry_id` in format `fmt` (one id, several formats)."""
        entry = self._entries.get((entry_id, fmt))
        if entry is not None and entry.kind == kind:
            return entry
        if any(e.id == entry_id and e.kind == kind for e in self._entries.values()):
            raise UnsupportedFormat(f"{entry_id} is not available as {fmt}")
        raise NotFound(f"no {kind} with id {entry_id!r}")

    def has(self, entry_id: str, *, kind: str) -> bool:
        return any(e.id == entry_id and e.kind == kind for e in self._entries.values())

    def find(self, entry_id: str, fmt: str) -> ReadsEntry:
        entry = self._entries.get((entry_id, fmt))
        if entry is None:
            raise NotFound(f"no file with id {entry_id!r}")
        return entry

    def entries(self) -> tuple[ReadsEntry, ...]:
        return tuple(self._entries.values())

    def source(self, entry: ReadsEntry) -> ByteSource:
        return self.storage.source(entry.path)

    def layout(self, entry: ReadsEntry) -> Layout:
        return self.cache.get(self.source(entry), self.storage.source(entry.index), entry.format)

    def cached_layout(self, entry: ReadsEntry) -> Layout | None:
        """The layout when already parsed and current (no parsing: event-loop safe)."""
        return self.cache.peek(self.source(entry), self.storage.source(entry.index))

    def add(
        self,
        *,
        dataset: str,
        entry_id: str,
        path: Path | str,
        index: Path | str | None = None,
        replace: bool = False,
    ) -> ReadsEntry:
        if not _ID.match(entry_id) or entry_id == "service-info":
            raise InvalidInput(f"invalid id {entry_id!r}")
        location, index_location = _located(path), None if index is None else _located(index)
        source = self.storage.source(location)
        with source.open() as opened:
            fmt = detect_format(opened.fetch(0, 65536), name=location.rsplit("/", 1)[-1])
        if index_location is None:
            index_location = self._find_index(location, fmt)
        if index_location is None and source.remote:
            raise InvalidInput(f"no index beside {location}; name it with --index")
        if index_location is None:
            index_location = str(self._build_index(Path(location), fmt, entry_id))
        self.storage.source(index_location).version()  # exists (NotFound otherwise)
        entry = ReadsEntry(entry_id, dataset, location, index_location, fmt)
        with self._lock:
            if (entry_id, fmt) in self._entries and not replace:
                raise Conflict(f"id {entry_id!r} is already registered as {fmt}")
            self.layout(entry)  # fail now, not at the first request, on a bad file
            self._entries[(entry_id, fmt)] = entry
            self._save()
        return entry

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"files": [asdict(e) for e in self._entries.values()]}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".catalog-")
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / CATALOG_FILE)

    def _build_index(self, path: Path, fmt: FileFormat, entry_id: str) -> Path:
        import pysam
        import pysam.bcftools

        out_dir = self.root / "indices"
        out_dir.mkdir(parents=True, exist_ok=True)
        safe = entry_id.replace("/", "_")
        out = out_dir / f"{safe}.{fmt.lower()}{_INDEX_SUFFIXES[fmt][0]}"
        if fmt in ("BAM", "CRAM"):
            pysam.samtools.index(str(path), str(out))
        else:
            flag = "-t" if fmt == "VCF" else "-c"
            pysam.bcftools.index(flag, "-f", "-o", str(out), str(path))
        return out


    def _find_index(self, location: str, fmt: FileFormat) -> str | None:
        """An index next to the file: `x.bam.bai` as well as `x.bai`, and so on."""
        stem, dot, ext = location.rpartition(".")
        swap = bool(dot) and "/" not in ext  # `x.bam` → `x.bai` (not `dir.d/x` → `dir.bai`)
        for suffix in _INDEX_SUFFIXES[fmt]:
            for candidate in (location + suffix, stem + suffix if swap else None):
                if candidate is None:
                    continue
                try:
                    self.storage.source(candidate).version()
                except NotFound:
                    continue
                return candidate
        return None


def _located(path: Path | str) -> str:
    """A location as the catalog keeps it: URIs as given, paths absolute."""
    text = str(path)
    if "://" in text:
        return text
    resolved = Path(text).resolve()
    if not resolved.is_file():
        raise NotFound(f"no file {resolved}")
    return str(resolved)


def detect_format(head: bytes, *, name: str) -> FileFormat:
    """From the file's first bytes (up to 64 KiB), not its name."""
    if head[:4] == b"CRAM":
        return "CRAM"
    if head[:2] != b"\x1f\x8b":
        raise InvalidInput(f"{name}: not BGZF-compressed BAM/VCF/BCF nor CRAM")
    try:
        data = zlib.decompressobj(31).decompress(head, 16)
    except zlib.error as exc:
        raise InvalidInput(f"{name}: corrupt compressed data") from exc
    if data.startswith(b"BAM\x01"):
        return "BAM"
    if data.startswith(b"BCF\x02"):
        return "BCF"
    if data.startswith(b"##fileformat=VCF"):
        return "VCF"
    raise InvalidInput(f"{name}: not a BAM, CRAM, VCF or BCF file")
