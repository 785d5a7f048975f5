"""`AggregateRuns` (aggregate rows held as columns, folded with numpy) against a plain
fold of the same rows, one key at a time, by the read side's rule: counts summed, the
largest end, the union of the IDs (`.` when none), the first row's source contig.

Rows repeat keys within a part and across parts, with equal and differing IDs and ends,
folded at random points (a small fold threshold) and at the end.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from node.store.dataset import layout
from node.store.ingest import aggregate_runs
from node.store.ingest.aggregate_runs import AggregateRuns

_WIDTH = len(layout.FEDNODE_COUNTS)


@pytest.mark.parametrize("seed", range(6))
def test_folded_rows_are_the_plain_fold(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate_runs, "_FOLD_MIN", random.Random(seed).choice((1, 7, 50)))
    rng = random.Random(seed)
    runs = AggregateRuns()
    expected: dict[tuple[str, int, str, str], list[object]] = {}
    for _ in range(rng.randint(1, 12)):
        n = rng.randint(1, 60)
        rows = []
        for _ in range(n):
            contig = rng.choice(("1", "2", "X"))
            pos = rng.randint(1, 30)
            ref, alt = rng.choice((("", ""), ("A", "C"), ("A", "G"), ("AT", "A")))
            ids = rng.choice((".", ".", "rs1", "rs2;rs1", "rs3"))
            source = rng.choice((f"chr{contig}", contig))
            end = pos + rng.choice((0, 0, 1, 500))
            counts = [rng.randint(-3, 9) for _ in range(_WIDTH)]
            rows.append((contig, pos, ref, alt, ids, source, end, counts))
            key = (contig, pos, ref, alt)
            known = expected.get(key)
            if known is None:
                expected[key] = [end, {ids}, source, counts]
            else:
                known[0] = max(known[0], end)
                known[1].add(ids)
                known[3] = [a + b for a, b in zip(known[3], counts, strict=True)]
        code = runs.code
        runs.add(
            np.array([code(r[0]) for r in rows]),
            np.array([r[1] for r in rows]),
            np.array([code((r[2], r[3])) for r in rows]),
            np.array([code(r[4]) for r in rows]),
            np.array([code(r[5]) for r in rows]),
            np.array([r[6] for r in rows]),
            np.array([r[7] for r in rows], dtype=np.int64),
        )
        assert runs.rows >= len(expected)
    taken = runs.take()
    got = {}
    keys = zip(taken["contig"], taken["pos"].tolist(), taken["ref"], taken["alt"], strict=True)
    for i, key in enumerate(keys):
        counts = [int(taken[name][i]) for name in layout.FEDNODE_COUNTS]
        got[key] = (int(taken["end"][i]), taken["id"][i], taken["source_contig"][i], counts)
    assert len(got) == len(taken["pos"])  # one row per key
    want = {}
    for key, (end, ids, source, counts) in expected.items():
        if len(ids) == 1:
            text = next(iter(ids))
        else:
            names = {p for i in ids for p in i.split(";")} - {"."}
            text = ";".join(sorted(names)) or "."
        want[key] = (end, text, source, counts)
    assert got == want  # the plain fold kept the first row's source contig, as added
    assert runs.rows == 0 and len(runs.take()["pos"]) == 0
