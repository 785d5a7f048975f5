"""`sorted_columns` against Python's sort of the same coordinates (bytes compare)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from node.store.dataset import layout
from node.store.ingest.global_order import sorted_columns


@pytest.mark.parametrize("seed", range(5))
def test_sorted_columns_equal_python_sort(seed: int) -> None:
    rng = random.Random(seed)
    n = 500
    width = rng.choice([3, 8, 12])
    contigs = [rng.choice(["1", "10", "2", "chrX"]) for _ in range(n)]
    samples = ["".join(rng.choices("AB", k=rng.randint(0, width))) for _ in range(n)]
    pos = np.array([rng.randint(0, 20) for _ in range(n)], dtype=np.uint32)
    payload = [bytes(rng.choices(range(256), k=rng.randint(0, 5))) for _ in range(n)]
    schema = layout.variant_stats_schema(3)  # the 4-dimension order
    columns = {
        "contig": layout.Var.text(contigs),
        "pos": pos,
        "sample": layout.Var.text(samples),
        "end": pos,
        "allele": layout.Var(payload),
        "ac": np.arange(n, dtype=np.int32),
    }
    out = sorted_columns(schema, columns)
    order = sorted(range(n), key=lambda i: (contigs[i].encode(), pos[i], samples[i].encode()))
    assert out["ac"].tolist() == order  # type: ignore[union-attr]
    got = out["allele"]
    assert isinstance(got, layout.Var)
    ends = [*got.offsets[1:].tolist(), got.data.size if n else 0]
    cells = [bytes(got.data[a:b]) for a, b in zip(got.offsets.tolist(), ends, strict=True)]
    assert cells == [payload[i] for i in order]
