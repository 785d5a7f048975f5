"""`write_query`: TileDB writes through the C API, read back by tiledb-py; errors as
`TileDBError`; and the GIL released while a global-order fragment is committed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tiledb

from node.store.dataset.write_buffers import Null, Var
from node.store.dataset.write_query import GLOBAL_ORDER, UNORDERED, WriteQuery, write_once


def _array(tmp_path: Path, *, capacity: int = 10_000, level: int = 1) -> str:
    uri = str(tmp_path / "a")
    dom = tiledb.Domain(tiledb.Dim("pos", domain=(0, 2**31), tile=10_000, dtype=np.uint32))
    zstd = tiledb.FilterList([tiledb.ZstdFilter(level=level)])
    schema = tiledb.ArraySchema(
        domain=dom,
        sparse=True,
        allows_duplicates=True,
        capacity=capacity,
        attrs=[
            tiledb.Attr("n", dtype=np.int64, filters=zstd),
            tiledb.Attr("text", dtype=np.uint8, var=True),
            tiledb.Attr("maybe", dtype=np.int32, nullable=True),
        ],
    )
    tiledb.Array.create(uri, schema)
    return uri


def _read(uri: str) -> dict[str, object]:
    with tiledb.open(uri) as arr:
        return arr.query(order="G")[:]  # type: ignore[no-any-return]


def test_unordered_write_reads_back(tmp_path: Path) -> None:
    uri = _array(tmp_path)
    texts = [b"A\0", b"", b"CGT\0"]
    with tiledb.open(uri, "w") as arr:
        got = write_once(
            arr,
            {
                "pos": np.array([30, 10, 20], dtype=np.uint32),
                "n": np.array([3, 1, 2], dtype=np.int64),
                "text": Var(texts),
                "maybe": (np.array([7, 0, 9], dtype=np.int32), np.array([1, 0, 1], np.uint8)),
            },
            UNORDERED,
        )
    assert got is not None and Path(got.removeprefix("file://")).is_dir()
    out = _read(uri)
    assert out["pos"].tolist() == [10, 20, 30]  # type: ignore[attr-defined]
    assert out["n"].tolist() == [1, 2, 3]  # type: ignore[attr-defined]
    assert [bytes(t) for t in out["text"]] == [b"", b"CGT\0", b"A\0"]  # type: ignore[attr-defined]
    maybe = out["maybe"]
    assert np.ma.getmaskarray(maybe).tolist() == [True, False, False]
    assert np.ma.compressed(maybe).tolist() == [9, 7]


def test_global_order_submissions_make_one_fragment(tmp_path: Path) -> None:
    uri = _array(tmp_path, capacity=7)  # full tiles written by each submit, the rest held
    with tiledb.open(uri, "w") as arr:
        query = WriteQuery(arr, GLOBAL_ORDER)
        for start in (0, 25, 50):
            pos = np.arange(start, start + 25, dtype=np.uint32)
            query.set_columns({
                "pos": pos,
                "n": pos.astype(np.int64) * 2,
                "text": Var([b"x"] * 25),
                "maybe": Null(25, np.int32),
            })
            query.submit()
        assert query.finalize() is not None
    assert len(tiledb.array_fragments(uri)) == 1
    out = _read(uri)
    assert out["n"].tolist() == list(range(0, 150, 2))  # type: ignore[attr-defined]
    assert np.ma.getmaskarray(out["maybe"]).all()


def test_nothing_submitted_commits_nothing(tmp_path: Path) -> None:
    uri = _array(tmp_path)
    with tiledb.open(uri, "w") as arr:
        assert WriteQuery(arr, GLOBAL_ORDER).finalize() is None
    assert len(tiledb.array_fragments(uri)) == 0


def test_errors_are_tiledb_errors_and_commit_nothing(tmp_path: Path) -> None:
    uri = _array(tmp_path)
    with tiledb.open(uri, "w") as arr:
        query = WriteQuery(arr, GLOBAL_ORDER)
        query.set_columns({
            "pos": np.array([5, 1], dtype=np.uint32),  # not in global order
            "n": np.zeros(2, dtype=np.int64),
            "text": Var([b"a", b"b"]),
            "maybe": Null(2, np.int32),
        })
        with pytest.raises(tiledb.TileDBError) as err:
            query.submit()
        query.free()
        assert "order" in str(err.value).lower()
        with pytest.raises(tiledb.TileDBError, match="expect all attributes"):
            write_once(arr, {"pos": np.array([1], dtype=np.uint32)}, UNORDERED)  # attrs missing
    assert len(tiledb.array_fragments(uri)) == 0


def test_commit_lets_other_threads_run(tmp_path: Path) -> None:
    """A global-order fragment whose cells all sit in its last tile is filtered and written
    by the commit; another Python thread keeps running meanwhile (tiledb-py's own
    `finalize` holds the GIL: this fails with it, at about 2% of the free rate). The other
    thread's progress during the commit is compared with its progress over as long a time
    right after, when it runs alone."""
    cells = 400_000
    uri = _array(tmp_path, capacity=cells + 1, level=19)
    rng = np.random.default_rng(7)
    spans: dict[str, tuple[float, float]] = {}
    error: list[BaseException] = []

    def write() -> None:
        try:
            with tiledb.open(uri, "w") as arr:
                query = WriteQuery(arr, GLOBAL_ORDER)
                pos = np.arange(cells, dtype=np.uint32)
                query.set_columns({
                    "pos": pos,
                    "n": rng.integers(0, 1 << 40, cells),
                    "text": Var([b"ACGT"] * cells),
                    "maybe": Null(cells, np.int32),
                })
                query.submit()
                started = time.perf_counter()
                query.finalize()
                spans["commit"] = (started, time.perf_counter())
        except BaseException as exc:  # reported by the test thread
            error.append(exc)

    ticks: list[float] = []
    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        ticks.append(time.perf_counter())
        sum(range(200))
    writer.join()
    assert not error, error
    at = np.asarray(ticks)

    a, b = spans["commit"]
    during = float(((at >= a) & (at < b)).sum())
    alone, end = 0, time.perf_counter() + (b - a)
    while time.perf_counter() < end:
        alone += 1
        sum(range(200))
    assert during >= 0.2 * alone, (during, alone, b - a)
