"""What a reader needs to know about a dataset before reading it (`DatasetState`), and
which of its files are committed (timestamps; `discard_after` removes the rest).

fednode keeps it in the root group metadata (`fednode_state`, written with the committed
timestamp `fednode_committed` in one group-metadata write, see `tiledbvcf`). A dataset
TileDB-VCF wrote has neither: its samples, assembly and contigs come from the stored VCF
headers and the `data` fragments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tiledb
import tiledb.libtiledb as lt

from node.domain import normalize_contig
from node.store.dataset import layout
from node.store.ingest.vcfio import detect_assembly

__all__ = [
    "COMMITTED",
    "STAGING",
    "STATE",
    "DatasetState",
    "Staging",
    "declared_contigs",
    "discard_after",
    "exists",
    "header_tables",
    "header_texts",
    "latest_timestamp",
    "list_datasets",
    "load_state",
    "publish",
    "put_ascii_meta",
    "put_meta",
    "recover_staged",
    "stage",
    "stage_part",
    "write_initial_metadata",
]

COMMITTED = "fednode_committed"
STATE = "fednode_state"
_POS_MAX = 2**32 - 2
_STALE_DIRS = ("__fragments", "__commits", "__meta", "__fragment_meta")
STAGING = "__fednode_staging"  # under the dataset root: one folder per ingest being written
_OWNER, _DECISION = "owner.json", "commit.json"
_PARTS = "parts"  # workers' arrays of a partitioned ingest: `<staging>/parts/<id>/<array>`
# Published in this order: fragment folders first (TileDB ignores a fragment without its
# commit file), then array metadata and commit files, which make them visible.
_PUBLISH_PHASES = (("__fragments", "__fragment_meta"), ("__meta", "__commits"))

# The metadata types TileDB-VCF writes and checks: on `data` any other type fails every
# command ("Error loading metadata; 'version' field has invalid value", tiledbvcfdataset.cc
# read_metadata_v4); variant_stats_reader.cc requires a UINT32 `version` and ignores a
# `max_length` that is not INT32. `tile_capacity` is UINT64 (write_metadata_v4, fixture).
TILEDBVCF_META_TYPES: dict[str, dict[str, type[np.generic]]] = {
    layout.DATA: {
        "version": np.uint32,
        "tile_capacity": np.uint64,
        "anchor_gap": np.uint32,
        "extra_attributes": np.bytes_,  # CHAR
    },
    layout.ALLELE_COUNT: {"version": np.uint32},
    layout.VARIANT_STATS: {"version": np.uint32, "max_length": np.int32},
    layout.SAMPLE_STATS: {"version": np.int32},
}
_FRAGMENT_SAMPLE_ARRAYS = (layout.ALLELE_COUNT, layout.VARIANT_STATS)


@dataclass
class DatasetState:
    """What readers need, as of the committed timestamp (None: TileDB-VCF wrote it)."""

    committed: int | None
    samples: tuple[str, ...]
    assembly: str
    contigs: dict[str, str] = field(default_factory=dict)  # source name -> canonical
    aggregate: bool = False  # fednode_allele_stats covers every sample
    coverage: bool = False  # fednode_coverage holds reference blocks (else never queried)
    # fednode_genotypes holds every sample's records: fednode wrote it from the first ingest
    # (False for TileDB-VCF's datasets and those older fednode code created: `data` is read)
    genotypes: bool = False

    def dump(self) -> str:
        return json.dumps(
            {
                "samples": self.samples,
                "assembly": self.assembly,
                "contigs": self.contigs,
                "aggregate": self.aggregate,
                "coverage": self.coverage,
                "genotypes": self.genotypes,
            }
        )


def exists(uri: str, *, tiledb_config: Mapping[str, str] | None = None) -> bool:
    ctx = tiledb.Ctx(dict(tiledb_config or {}))
    if tiledb.object_type(uri, ctx=ctx) != "group":
        return False
    with tiledb.Group(uri, ctx=ctx) as group:
        return layout.meta_str(group.meta, "dataset_type") == "vcf"


def list_datasets(root_uri: str, *, tiledb_config: Mapping[str, str] | None = None) -> list[str]:
    """Ids (child names) of the TileDB-VCF datasets directly under `root_uri`."""
    vfs = tiledb.VFS(ctx=tiledb.Ctx(dict(tiledb_config or {})))
    if not vfs.is_dir(root_uri):
        return []
    ids = []
    for child in vfs.ls(root_uri):
        name = child.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(".") and exists(child, tiledb_config=tiledb_config):
            ids.append(name)
    return sorted(ids)


def load_state(uri: str, ctx: tiledb.Ctx) -> DatasetState:
    with tiledb.Group(uri, ctx=ctx) as group:
        committed = group.meta.get(COMMITTED)
        raw = layout.meta_str(group.meta, STATE, "")
    if committed is not None and raw:
        data = json.loads(raw)
        return DatasetState(
            int(committed),
            tuple(data["samples"]),
            data["assembly"],
            dict(data["contigs"]),
            bool(data["aggregate"]),
            bool(data.get("coverage", True)),
            bool(data.get("genotypes", False)),
        )
    return _foreign_state(uri, ctx, None if committed is None else int(committed))


def header_tables(headers: tiledb.Array) -> dict[str, list[str]]:
    """Per sample, its header's htslib FILTER/INFO/FORMAT id table. The headers are read a
    range of samples at a time (`header_texts`) and samples of equal tables share one list
    (100,000 samples of one input hold one table, not 100,000; readers group samples by
    table identity)."""
    tables: dict[str, list[str]] = {}
    by_digest: dict[bytes, list[str]] = {}
    interned: dict[tuple[str, ...], list[str]] = {}
    for sample, digest, text in header_texts(headers):
        if text is not None:
            table = layout.header_id_table(text)
            by_digest[digest] = interned.setdefault(tuple(table), table)
        tables[sample] = by_digest[digest]
    return tables


def header_texts(headers: tiledb.Array) -> Iterator[tuple[str, bytes, str | None]]:
    """Each stored sample in name order, a digest of its header and the header's text
    (None when an earlier sample's was the same). The array keeps one copy per sample
    (1.6 GB for 100,000 samples of 16 KB) where inputs share few: texts are read about
    `_HEADER_READ_BYTES` at a time and only the digests of those seen are kept."""
    seen: set[bytes] = set()
    for sample, raw in _header_cells(headers):
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        yield sample, digest, None if digest in seen else _text(raw)
        seen.add(digest)


_HEADER_READ_BYTES = 8 << 20


def _header_cells(headers: tiledb.Array) -> Iterator[tuple[str, bytes]]:
    """Each (sample, stored header), read by ranges of samples in name order, each range
    sized from the last one's bytes per sample to about `_HEADER_READ_BYTES`."""
    names = sorted(_text(s) for s in headers.query(attrs=[], dims=["sample"])[:]["sample"])
    at, count = 0, 16
    while at < len(names):
        chunk = names[at : at + count]
        cells = headers.query(attrs=["header"], dims=["sample"]).multi_index[chunk[0] : chunk[-1]]
        size = 0
        for sample, raw in zip(cells["sample"], cells["header"], strict=True):
            data = raw if isinstance(raw, bytes) else str(raw).encode()
            size += len(data)
            yield _text(sample), data
        at += len(chunk)
        count = max(1, min(4 * count, _HEADER_READ_BYTES * len(chunk) // max(1, size)))


def _foreign_state(uri: str, ctx: tiledb.Ctx, committed: int | None) -> DatasetState:
    """A dataset TileDB-VCF wrote: samples and assembly from the stored headers."""
    names, headers = [], []  # each distinct header once (`header_texts`)
    with tiledb.open(f"{uri}/{layout.HEADERS}", ctx=ctx, timestamp=committed) as arr:
        for sample, _, text in header_texts(arr):
            names.append(sample)
            if text is not None:
                headers.append(text)
    samples = tuple(sorted(names))
    assembly = next((a for a in map(detect_assembly, headers) if a), "GRCh38")
    contigs = _foreign_contigs(uri, ctx, committed, headers)
    return DatasetState(committed, samples, assembly, contigs, aggregate=False)


def declared_contigs(headers: Iterable[str]) -> set[str]:
    """The contig names `headers` declare (`##contig=<ID=...`)."""
    return {
        line[13:].split(",")[0].rstrip(">")
        for h in headers
        for line in h.splitlines()
        if line.startswith("##contig=<ID=")
    }


def _foreign_contigs(
    uri: str, ctx: tiledb.Ctx, committed: int | None, headers: Sequence[str]
) -> dict[str, str]:
    names = declared_contigs(headers)
    # Fragment non-empty domains settle most names without reading cells.
    data = f"{uri}/{layout.DATA}"
    spans = [_text_span(f.nonempty_domain[0]) for f in tiledb.array_fragments(data, ctx=ctx)]
    present = {}
    with tiledb.open(data, ctx=ctx, timestamp=committed) as arr:
        for name in sorted(names):
            if not any(lo <= name <= hi for lo, hi in spans):
                continue
            exact = any(lo == hi == name for lo, hi in spans)
            if not exact:
                query = arr.query(attrs=[], dims=["contig"])
                exact = len(query.multi_index[[name], [slice(0, _POS_MAX)]]["contig"]) > 0
            if exact:
                present[name] = normalize_contig(name)
    return present


def _text_span(span: tuple[object, object]) -> tuple[str, str]:
    lo, hi = span
    return _text(lo), _text(hi)


def _text(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")


def write_initial_metadata(
    uri: str, ctx: tiledb.Ctx, t0: int, variant_stats_version: int = layout.VARIANT_STATS_VERSION
) -> None:
    """The array metadata TileDB-VCF writes at dataset creation, at timestamp `t0`."""
    # `max_length` (version 3) is first written by an ingest, as TileDB-VCF's store does
    variant_stats: dict[str, int | str] = {"version": variant_stats_version}
    extra = base64.b64encode(",".join(layout.EXTRA_ATTRIBUTES).encode()).decode()
    metadata: dict[str, dict[str, int | str]] = {
        layout.DATA: {
            "version": layout.FORMAT_VERSION,
            "tile_capacity": layout.TILE_CAPACITY,
            "anchor_gap": layout.ANCHOR_GAP,
            "extra_attributes": extra,
        },
        layout.ALLELE_COUNT: {"version": 1},
        layout.VARIANT_STATS: variant_stats,
        layout.SAMPLE_STATS: {"version": 1},
        layout.FEDNODE_STATS: {"version": 1, "max_length": 0},
        layout.FEDNODE_GENOTYPES: {"version": 1, "anchor_gap": layout.ANCHOR_GAP},
    }
    for name, values in metadata.items():
        with tiledb.open(f"{uri}/{name}", "w", ctx=ctx, timestamp=t0) as arr:
            for key, value in values.items():
                put_meta(arr.meta, name, key, value)


def put_meta(meta: tiledb.Metadata, array: str, key: str, value: int | str) -> None:
    """`meta[key] = value` typed as TileDB-VCF types that key of `array`.

    The stats arrays' fragment keys (fragment URI -> its samples) are STRING_ASCII; keys
    TileDB-VCF does not know (fednode's arrays) keep tiledb-py's types (INT64, UTF-8).
    """
    kind = TILEDBVCF_META_TYPES.get(array, {}).get(key)
    if kind is np.bytes_:
        meta[key] = np.bytes_(str(value).encode("ascii"))
    elif kind is not None:
        meta[key] = kind(value)
    elif array in _FRAGMENT_SAMPLE_ARRAYS and isinstance(value, str):
        put_ascii_meta(meta, key, value)
    else:
        meta[key] = value


def put_ascii_meta(meta: tiledb.Metadata, key: str, text: str) -> None:
    """A STRING_ASCII value (TileDB-VCF's text type; tiledb-py writes a `str` as UTF-8 and
    has no public way to choose, hence its private `_put_metadata`). The bytes are UTF-8:
    TileDB does not check them, and sample names (TileDB-VCF's ASCII `sample`) may not be."""
    raw = text.encode()
    del meta[key]
    meta._array_or_group._put_metadata(key, lt.DataType.STRING_ASCII, len(raw), raw)


def latest_timestamp(uri: str, ctx: tiledb.Ctx) -> int:
    """The newest fragment/commit/metadata timestamp of any array (committed or not)."""
    return max((t for _, t in _entries(uri, ctx, layout.ALL_ARRAYS)), default=0)


def discard_after(
    uri: str, ctx: tiledb.Ctx, committed: int | None, arrays: Sequence[str] = layout.ALL_ARRAYS
) -> None:
    """Remove every fragment, commit and metadata file of `arrays` newer than `committed`
    (every one, when None)."""
    vfs = tiledb.VFS(ctx=ctx)
    for entry, stamp in list(_entries(uri, ctx, arrays)):
        if committed is None or stamp > committed:
            if vfs.is_dir(entry):
                vfs.remove_dir(entry)
            else:
                vfs.remove_file(entry)


def _entries(uri: str, ctx: tiledb.Ctx, arrays: Sequence[str]) -> Iterator[tuple[str, int]]:
    vfs = tiledb.VFS(ctx=ctx)
    for name in arrays:
        for sub in _STALE_DIRS:
            folder = f"{uri}/{name}/{sub}"
            if not vfs.is_dir(folder):
                continue
            for entry in vfs.ls(folder):
                parts = entry.rstrip("/").rsplit("/", 1)[-1].split("_")
                if len(parts) > 3 and parts[2].isdigit():
                    yield entry, int(parts[2])


# --- staged ingests ---------------------------------------------------------------------
# An ingest writes its fragments, deletes and array metadata into copies of the dataset's
# arrays under `<dataset>/__fednode_staging/<T>/` (the same schema files, so the fragments
# are valid in the real arrays), and publishes them as its last step: `commit.json` (the
# new state) is written first and decides the commit, then the files are moved into the
# dataset's arrays (a rename each on a local file system) and the group metadata written.
# Every reader, at whatever timestamp, sees the dataset unchanged until then. A staged
# ingest whose process died is rolled back (no decision) or forward (decision written) by
# `recover_staged` when a fednode command next opens the dataset.


@dataclass(frozen=True, slots=True)
class Staging:
    """Where one ingest writes: `array(name)` mirrors the dataset's array `name`."""

    dataset: str
    root: str

    def array(self, name: str) -> str:
        return f"{self.root}/{name}"

    def final_uri(self, fragment_uri: str) -> str:
        """The URI a fragment written here has once published (the stats arrays' metadata
        keys name fragments by URI, as TileDB-VCF's writer does)."""
        relative = self.root.partition(f"/{STAGING}/")[2]  # "<T>" or "<T>/parts/<id>"
        head, found, tail = fragment_uri.partition(f"/{STAGING}/{relative}/")
        return f"{head}/{tail}" if found else fragment_uri

    def part(self, name: str) -> Staging:
        """A worker's own copy of the arrays inside this ingest's staging (`stage_part`)."""
        return Staging(self.dataset, f"{self.root}/{_PARTS}/{name}")

    def discard(self, ctx: tiledb.Ctx) -> None:
        """Remove everything staged (the ingest failed before deciding to commit)."""
        vfs = tiledb.VFS(ctx=ctx)
        if vfs.is_dir(self.root):
            vfs.remove_dir(self.root)


def stage(uri: str, ctx: tiledb.Ctx, stamp: int) -> Staging:
    """Empty copies of the dataset's arrays for an ingest writing at `stamp`."""
    vfs = tiledb.VFS(ctx=ctx)
    staging = Staging(uri, f"{uri}/{STAGING}/{stamp}")
    if vfs.is_dir(staging.root):
        vfs.remove_dir(staging.root)
    vfs.create_dir(f"{uri}/{STAGING}")
    vfs.create_dir(staging.root)
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    _write_small(vfs, f"{staging.root}/{_OWNER}", json.dumps(owner).encode())
    _copy_schemas(vfs, uri, staging)
    return staging


def stage_part(staging: Staging, ctx: tiledb.Ctx, name: str) -> Staging:
    """Empty copies of the arrays for one task of a partitioned ingest (each attempt of a
    task its own, so a killed attempt's files are never published: `publish(parts=...)`
    moves in only the parts it is given)."""
    vfs = tiledb.VFS(ctx=ctx)
    part = staging.part(name)
    vfs.create_dir(f"{staging.root}/{_PARTS}")
    vfs.create_dir(part.root)
    _copy_schemas(vfs, staging.dataset, part)
    return part


def _copy_schemas(vfs: tiledb.VFS, uri: str, staging: Staging) -> None:
    for name in layout.ALL_ARRAYS:
        source, target = f"{uri}/{name}", staging.array(name)
        for sub in ("__schema", *_STALE_DIRS):
            vfs.create_dir(f"{target}/{sub}")
        _copy_tree(vfs, f"{source}/__schema", f"{target}/__schema")
        if vfs.is_file(f"{source}/__array_schema.tdb"):  # arrays of older TileDB formats
            vfs.copy_file(f"{source}/__array_schema.tdb", f"{target}/__array_schema.tdb")


def publish(
    staging: Staging, ctx: tiledb.Ctx, committed: int, state: str, *, parts: Sequence[str] = ()
) -> None:
    """Commit a staged ingest: decide, move its files in (the staging's own arrays and
    those of `parts`, the tasks that succeeded), write the group metadata."""
    vfs = tiledb.VFS(ctx=ctx)
    record = {"committed": committed, "state": state, "parts": list(parts)}
    _write_small(vfs, f"{staging.root}/{_DECISION}.tmp", json.dumps(record).encode())
    vfs.move_file(f"{staging.root}/{_DECISION}.tmp", f"{staging.root}/{_DECISION}")
    _finish(vfs, staging, ctx, committed, state, parts)


def recover_staged(uri: str, ctx: tiledb.Ctx, *, all_owners: bool) -> bool:
    """Finish or remove staged ingests whose process is gone (every one: `all_owners`,
    when the caller is about to write and one writer at a time is the rule). True when one
    was committed (the dataset state changed)."""
    vfs = tiledb.VFS(ctx=ctx)
    if not vfs.is_dir(f"{uri}/{STAGING}"):
        return False
    changed = False
    for entry in vfs.ls(f"{uri}/{STAGING}"):
        staging = Staging(uri, entry.rstrip("/"))
        if not vfs.is_dir(staging.root) or (not all_owners and _owner_alive(vfs, staging)):
            continue
        decision = _read_json(vfs, f"{staging.root}/{_DECISION}")
        if decision is None:
            vfs.remove_dir(staging.root)
            continue
        parts = [str(p) for p in decision.get("parts", [])]
        _finish(vfs, staging, ctx, int(decision["committed"]), str(decision["state"]), parts)
        changed = True
    return changed


def _finish(
    vfs: tiledb.VFS,
    staging: Staging,
    ctx: tiledb.Ctx,
    committed: int,
    state: str,
    parts: Sequence[str] = (),
) -> None:
    sources = [staging, *(staging.part(p) for p in parts)]
    for subs in _PUBLISH_PHASES:
        for source in sources:
            for name in layout.ALL_ARRAYS:
                for sub in subs:
                    target = f"{staging.dataset}/{name}/{sub}"
                    _move_children(vfs, f"{source.array(name)}/{sub}", target)
    with tiledb.Group(staging.dataset, ctx=ctx) as group:
        current = group.meta.get(COMMITTED)
    if current is None or int(current) < committed:
        with tiledb.Group(staging.dataset, "w", ctx=ctx) as group:  # one metadata write
            group.meta[COMMITTED] = committed
            group.meta[STATE] = state
    vfs.remove_dir(staging.root)


def _move_children(vfs: tiledb.VFS, source: str, target: str) -> None:
    if not vfs.is_dir(source):
        return
    for entry in vfs.ls(source):
        path = entry.rstrip("/")
        destination = f"{target}/{path.rsplit('/', 1)[-1]}"
        if vfs.is_dir(path):
            vfs.create_dir(target)
            vfs.move_dir(path, destination)
        else:
            vfs.move_file(path, destination)


def _copy_tree(vfs: tiledb.VFS, source: str, target: str) -> None:
    if not vfs.is_dir(source):
        return
    vfs.create_dir(target)
    for entry in vfs.ls(source):
        path = entry.rstrip("/")
        destination = f"{target}/{path.rsplit('/', 1)[-1]}"
        if vfs.is_dir(path):
            _copy_tree(vfs, path, destination)
        else:
            vfs.copy_file(path, destination)


def _owner_alive(vfs: tiledb.VFS, staging: Staging) -> bool:
    """Whether the ingest's process may still be running (another host's: assumed so)."""
    owner = _read_json(vfs, f"{staging.root}/{_OWNER}")
    if owner is None:
        return True  # being created this instant (or killed then: removed by the next ingest)
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_small(vfs: tiledb.VFS, path: str, data: bytes) -> None:
    with vfs.open(path, "wb") as handle:
        handle.write(data)


def _read_json(vfs: tiledb.VFS, path: str) -> dict[str, Any] | None:
    if not vfs.is_file(path):
        return None
    with vfs.open(path, "rb") as handle:
        data = json.loads(handle.read())
    return data if isinstance(data, dict) else None
