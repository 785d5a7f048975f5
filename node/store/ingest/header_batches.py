"""`write_headers`: the samples' VCF headers (`metadata/vcf_headers`), batch by batch.

One input's samples share one header text (`IngestWriter.headers` holds one str per
input, however many samples it has), but the array stores it once per sample: 100,000
samples with 16 KB headers are 1.6 GB of cells. Written as one column, the process would
hold that column, its encoded values and TileDB's sorted copy at once. Written in batches
of at most `batch_bytes` of cells, each its own fragment at the ingest's timestamp (as
TileDB-VCF's `store` writes one per batch of samples), it holds one batch's worth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import tiledb

from node.store.dataset import layout

__all__ = ["header_batches", "write_headers"]


def write_headers(
    open_array: Callable[[], tiledb.Array], headers: Mapping[str, str], *, batch_bytes: int
) -> int:
    """Write `headers` (sample -> text) through arrays `open_array` opens for writing, one
    fragment per batch; the number of fragments written."""
    written = 0
    for names, texts in header_batches(headers, batch_bytes=batch_bytes):
        with open_array() as arr:
            layout.write_columns(
                arr, {"sample": layout.Var.text(names), "header": layout.Var(texts)}
            )
        written += 1
    return written


def header_batches(
    headers: Mapping[str, str], *, batch_bytes: int
) -> Iterator[tuple[list[str], list[bytes]]]:
    """The samples in name order and their encoded headers, in batches whose headers
    total at most `batch_bytes` (a larger header alone). Equal texts of one batch are
    encoded once: its list repeats one bytes object."""
    names: list[str] = []
    texts: list[bytes] = []
    encoded: dict[str, bytes] = {}
    size = 0
    for name in sorted(headers):
        text = headers[name]
        data = encoded.get(text)
        if data is None:
            data = encoded[text] = text.encode()
        if names and size + len(data) > batch_bytes:
            yield names, texts
            names, texts, encoded, size = [], [], {text: data}, 0
        names.append(name)
        texts.append(data)
        size += len(data)
    if names:
        yield names, texts
