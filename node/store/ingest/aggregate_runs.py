"""`AggregateRuns`: rows of the fednode aggregate (`fednode_allele_stats`) held as columns.

The statistics' block path adds a block's rows at once (numpy columns, texts as codes);
`fold` merges the rows of each key (contig, pos, REF, ALT) into one with numpy, by the
rule the read side applies to the rows of one key (`aggregate_index.index_of_rows`):
counts summed, the largest end, the union of the IDs, the first row's source contig.
Held rows are folded whenever the unfolded ones outnumber the folded, so a key repeated
by many inputs (per-sample files of one cohort) is held once, not once per input.
"""

from __future__ import annotations

import numpy as np

from node.store.dataset import layout

__all__ = ["AggregateRuns"]

_FOLD_MIN = 1 << 16  # unfolded rows before a fold
_WIDTH = len(layout.FEDNODE_COUNTS)
_NO_ALLELES = ("", "")  # the site row's REF and ALT
_NO_ID = "."

# contig, pos, (REF, ALT), ID, source contig (codes), end, counts (rows x _WIDTH)
_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class AggregateRuns:
    """Aggregate rows as columns; texts (contigs, IDs) and (REF, ALT) pairs by code."""

    def __init__(self) -> None:
        self.codes: dict[object, int] = {}
        self._values: list[object] = []
        self._folded: _Rows | None = None
        self._parts: list[_Rows] = []
        self._unfolded = 0
        self.rows = 0  # held: at least the number of distinct keys
        self._reset()

    def _reset(self) -> None:
        self.codes, self._values = {}, []
        self.site = self.code(_NO_ALLELES)
        self.no_id = self.code(_NO_ID)
        self._folded, self._parts, self._unfolded, self.rows = None, [], 0, 0

    def code(self, value: object) -> int:
        """The code of a text or an (REF, ALT) pair (the same value, the same code)."""
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self._values)
            self._values.append(value)
        return found

    def add(
        self,
        contig: np.ndarray,
        pos: np.ndarray,
        alleles: np.ndarray,
        ids: np.ndarray,
        source: np.ndarray,
        end: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Rows as columns: codes (`code`) of the canonical contig, the (REF, ALT) pair,
        the ID and the source contig; pos and end; signed counts (rows x 6)."""
        n = len(pos)
        if not n:
            return
        self._parts.append((contig, pos, alleles, ids, source, end, counts))
        self._unfolded += n
        self.rows += n
        folded = 0 if self._folded is None else len(self._folded[1])
        if self._unfolded >= max(_FOLD_MIN, folded):
            self.fold()

    def fold(self) -> None:
        """One row per key (module docstring)."""
        parts = self._parts if self._folded is None else [self._folded, *self._parts]
        if not parts:
            return
        contig, pos, alleles, ids, source, end, counts = (
            np.concatenate([p[i] for p in parts]) for i in range(7)
        )
        order = np.lexsort((alleles, pos, contig))
        contig, pos, alleles = contig[order], pos[order], alleles[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = contig[1:] != contig[:-1]
        new[1:] |= (pos[1:] != pos[:-1]) | (alleles[1:] != alleles[:-1])
        starts = np.flatnonzero(new)
        ids = ids[order]
        first, last = np.minimum.reduceat(ids, starts), np.maximum.reduceat(ids, starts)
        merged = first.copy()
        bounds = [*starts.tolist(), len(order)]
        for g in np.flatnonzero(first != last).tolist():  # rows of one key, IDs differing
            found: set[str] = set()
            for c in ids[bounds[g] : bounds[g + 1]].tolist():
                found.update(str(self._values[c]).split(";"))
            merged[g] = self.code(";".join(sorted(found - {".", ""})) or _NO_ID)
        self._folded = (
            contig[starts],
            pos[starts],
            alleles[starts],
            merged,
            source[order][starts],
            np.maximum.reduceat(end[order], starts),
            np.add.reduceat(counts[order], starts, axis=0),
        )
        self._parts, self._unfolded, self.rows = [], 0, len(starts)

    def take(self) -> dict[str, object]:
        """The held rows, one per key, as `fednode_allele_stats` columns; empties the runs."""
        self.fold()
        folded, values = self._folded, self._values
        self._reset()
        if folded is None:
            empty = np.zeros(0, np.int64)
            folded = (empty, empty, empty, empty, empty, empty, np.zeros((0, _WIDTH), np.int64))
        contig, pos, alleles, ids, source, end, counts = folded
        pairs = [values[c] for c in alleles.tolist()]
        out: dict[str, object] = {
            "contig": [values[c] for c in contig.tolist()],
            "pos": pos.astype(np.uint32),
            "ref": [p[0] for p in pairs],  # type: ignore[index]
            "alt": [p[1] for p in pairs],  # type: ignore[index]
            "end": end.astype(np.uint32),
            "id": [values[c] for c in ids.tolist()],
            "source_contig": [values[c] for c in source.tolist()],
        }
        for i, name in enumerate(layout.FEDNODE_COUNTS):
            out[name] = counts[:, i].astype(np.int32)
        return out
