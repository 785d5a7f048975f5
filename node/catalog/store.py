"""Persistence of the metadata catalog: one SQLite file, `<home>/catalog/catalog.sqlite3`.

A load replaces one dataset's metadata in a single transaction, so a failed load leaves
the catalog exactly as it was, and readers (other replicas, other processes) never see a
half-loaded dataset. A `generation` counter, bumped by every load, lets readers keep a
parsed copy in memory and notice when it is stale.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.errors import Unavailable

__all__ = ["CatalogFile", "DatasetRow", "Snapshot"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    dataset_id TEXT NOT NULL, entry_type TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (dataset_id, entry_type, id));
CREATE TABLE IF NOT EXISTS ontology (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class DatasetRow:
    """One dataset's metadata: its dataset record, VCF sample columns, declared terms."""

    dataset: dict[str, Any]
    targets: tuple[str, ...] | None
    declared_terms: tuple[dict[str, Any], ...]
    records: Mapping[str, Mapping[str, dict[str, Any]]]  # entry type -> id -> record


@dataclass(frozen=True)
class Snapshot:
    generation: int
    datasets: Mapping[str, DatasetRow]
    ontology_terms: tuple[dict[str, Any], ...]


class CatalogFile:
    """The SQLite file; every call opens its own connection (safe across threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "catalog.sqlite3"

    def generation(self) -> int:
        if not self.path.exists():
            return 0
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def snapshot(self) -> Snapshot:
        if not self.path.exists():
            return Snapshot(0, {}, ())
        with self._connect() as db:
            gen = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            rows = db.execute("SELECT id, doc FROM datasets ORDER BY id").fetchall()
            records = db.execute(
                "SELECT dataset_id, entry_type, id, doc FROM records ORDER BY rowid"
            ).fetchall()
            terms = db.execute("SELECT doc FROM ontology ORDER BY rowid").fetchall()
        return Snapshot(
            int(gen[0]) if gen else 0,
            _datasets(rows, records),
            tuple(json.loads(t[0]) for t in terms),
        )

    def replace_dataset(
        self,
        dataset_id: str,
        row: DatasetRow,
        ontology_terms: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Replace everything about `dataset_id` (and add ontology terms) atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._connect() as db, _transaction(db):
            db.execute("DELETE FROM records WHERE dataset_id = ?", (dataset_id,))
            db.execute(
                "INSERT OR REPLACE INTO datasets (id, doc) VALUES (?, ?)",
                (dataset_id, json.dumps(_dataset_doc(row))),
            )
            db.executemany(
                "INSERT INTO records (dataset_id, entry_type, id, doc) VALUES (?, ?, ?, ?)",
                [
                    (dataset_id, entry_type, rid, json.dumps(rec))
                    for entry_type, by_id in row.records.items()
                    for rid, rec in by_id.items()
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO ontology (id, doc) VALUES (?, ?)",
                [(t["id"], json.dumps(t)) for t in ontology_terms],
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('generation', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                db.executescript(_SCHEMA)
                yield db
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"metadata catalog {self.path} unavailable: {exc}") from exc


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _dataset_doc(row: DatasetRow) -> dict[str, Any]:
    return {
        "dataset": row.dataset,
        "targets": list(row.targets) if row.targets is not None else None,
        "declared_terms": list(row.declared_terms),
    }


def _datasets(
    rows: list[tuple[str, str]], records: list[tuple[str, str, str, str]]
) -> dict[str, DatasetRow]:
    by_dataset: dict[str, dict[str, dict[str, dict[str, Any]]]] = {rid: {} for rid, _ in rows}
    for dataset_id, entry_type, rid, doc in records:
        by_dataset.setdefault(dataset_id, {}).setdefault(entry_type, {})[rid] = json.loads(doc)
    out: dict[str, DatasetRow] = {}
    for dataset_id, doc in rows:
        meta = json.loads(doc)
        targets = meta.get("targets")
        out[dataset_id] = DatasetRow(
            meta["dataset"],
            tuple(targets) if targets is not None else None,
            tuple(meta.get("declared_terms", ())),
            by_dataset.get(dataset_id, {}),
        )
    return out
