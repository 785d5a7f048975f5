"""Records of a `VariantStore` → a whole BGZF-compressed VCF or a BCF file (htsget variants).

The header is the one the dataset keeps (`vcf_header`: its inputs' headers, merged), so
types, numbers, contig lengths and `##reference` are the input's; each record's FORMAT
keys keep their order in the input. A store without kept headers (the in-memory
reference) gets one rebuilt from what it returns: contigs in the order asked, INFO and
FORMAT definitions typed from the values seen (Number=., so any arity is valid). The
output is a valid file even when empty.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from node.domain import Record, Region
from node.errors import PayloadTooLarge
from node.reads.bgzf import BGZF_EOF, compress_block
from node.store.base import VariantStore
from node.store.read.batch import GenotypeBatch, Site, genotype_batches
from node.store.read.gt_text import genotype_text
from node.store.read.vcf_header import HeaderSource, merged_header

__all__ = ["export_variants", "merge_regions"]

_WHOLE = 1 << 31


def merge_regions(regions: Iterable[Region], order: Sequence[str]) -> list[Region]:
    """Overlapping or touching regions merged; contigs in store order (file order)."""
    rank = {c: i for i, c in enumerate(order)}
    ordered = sorted(regions, key=lambda r: (rank.get(r.contig, len(rank)), r.contig, r.start))
    out: list[Region] = []
    for r in ordered:
        if out and out[-1].contig == r.contig and r.start <= out[-1].end:
            out[-1] = Region(r.contig, out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def export_variants(
    store: VariantStore,
    regions: Sequence[Region],
    *,
    fmt: str,
    header_only: bool = False,
    max_bytes: int,
) -> bytes:
    """The file holding every record overlapping `regions`, each once, in file order."""
    batches = [] if header_only else list(_unique(store, regions, max_bytes))
    body = "".join(line for batch in batches for line in _lines(batch))
    text = _header(store, batches) + body
    if len(text) > max_bytes:
        raise PayloadTooLarge("the result is too large; request smaller regions")
    if fmt == "BCF":
        return _to_bcf(text)
    compressed = compress_block(text.encode())
    return compressed if header_only else compressed + BGZF_EOF


def _unique(
    store: VariantStore, regions: Sequence[Region], max_bytes: int
) -> Iterator[GenotypeBatch]:
    """Batches (columns: every sample) without a record already seen in another region."""
    seen: set[tuple[object, ...]] = set()
    budget = max_bytes // 16  # a coarse bound on the number of records held at once
    for region in regions:
        for batch in genotype_batches(store, region):
            keep = []
            for row, site in enumerate(batch.sites):
                key = (site.contig, site.start, site.ref, site.alts, site.ids)
                if key not in seen:  # else a long record overlapping two merged regions
                    seen.add(key)
                    keep.append(row)
            if len(seen) > budget:
                raise PayloadTooLarge("the result is too large; request smaller regions")
            if keep:
                yield batch if len(keep) == len(batch) else batch.select(keep)


def _header(store: VariantStore, batches: Sequence[GenotypeBatch]) -> str:
    # Contigs named as the records name them (the input's names), in store order.
    sites = [site for b in batches for site in b.sites]
    named = {s.contig: s.source_contig or s.contig for s in sites}
    contigs = [named.get(c, c) for c in store.contigs()]
    kept = store.vcf_headers() if isinstance(store, HeaderSource) else {}
    if kept and all(s in kept for s in store.samples):
        return merged_header(
            [kept[s] for s in store.samples] or kept.values(),
            samples=store.samples,
            contigs=contigs,
        )
    info = _types(s.info for s in sites)
    fmt = _types(_call_fields(batches))
    filters = sorted({f for s in sites for f in s.filters} - {"PASS"})
    lines = ["##fileformat=VCFv4.3", '##FILTER=<ID=PASS,Description="All filters passed">']
    lines += [f'##FILTER=<ID={f},Description="{f}">' for f in filters]
    lines += [f"##reference={store.assembly}"]
    lines += [f"##contig=<ID={c}>" for c in contigs]
    lines += [f'##INFO=<ID={k},Number={n},Type={t},Description="{k}">' for k, (n, t) in info]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines += [f'##FORMAT=<ID={k},Number=.,Type={t},Description="{k}">' for k, (_, t) in fmt]
    cols = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if store.samples:
        cols += ["FORMAT", *store.samples]
    return "\n".join([*lines, "\t".join(cols)]) + "\n"


def _call_fields(batches: Sequence[GenotypeBatch]) -> Iterator[Mapping[str, object]]:
    for batch in batches:
        if batch.fields is not None:
            yield from (c.fields for r in batch.records() for c in r.calls)


def _types(maps: Iterable[Mapping[str, object]]) -> list[tuple[str, tuple[str, str]]]:
    found: dict[str, tuple[str, str]] = {}
    for m in maps:
        for key, value in m.items():
            if key == "GT":
                continue
            kind = _vcf_type(value)
            prev = found.get(key)
            if prev is None or (prev[1] == "Integer" and kind[1] == "Float"):
                found[key] = kind
            elif prev[1] != kind[1] and {prev[1], kind[1]} != {"Integer", "Float"}:
                found[key] = (".", "String")
    return sorted(found.items())


def _vcf_type(value: object) -> tuple[str, str]:
    if value is True or value is None:
        return ("0", "Flag") if value is True else (".", "String")
    items = value if isinstance(value, list | tuple) else [value]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items if v is not None):
        return ".", "Integer"
    if all(isinstance(v, int | float) for v in items if v is not None):
        return ".", "Float"
    return ".", "String"


def _value(value: object) -> str:
    if value is None:
        return "."
    if isinstance(value, list | tuple):
        return ",".join(_value(v) for v in value) or "."
    if isinstance(value, float):
        return "." if math.isnan(value) else f"{value:g}"
    return str(value)


def _lines(batch: GenotypeBatch) -> Iterator[str]:
    """VCF lines of a batch; GT-only batches straight from the genotype matrix."""
    gts = genotype_text(batch) if batch.fields is None else None
    if gts is None:
        for rec, site in zip(batch.records(), batch.sites, strict=True):
            cols = _site_cols(site)
            if batch.samples:
                cols += _genotypes(rec, batch.samples)
            yield "\t".join(cols) + "\n"
        return
    for site, row in zip(batch.sites, gts, strict=True):
        cols = _site_cols(site)
        yield "\t".join([*cols, "GT", *row.tolist()] if batch.samples else cols) + "\n"


def _site_cols(site: Site) -> list[str]:
    info = ";".join(k if v is True else f"{k}={_value(v)}" for k, v in site.info.items())
    return [
        site.source_contig or site.contig,
        str(site.start + 1),
        ";".join(site.ids) or ".",
        site.ref,
        ",".join(site.alts) or ".",
        "." if site.qual is None else f"{site.qual:g}",
        ";".join(site.filters) or ".",
        info or ".",
    ]


def _genotypes(rec: Record, samples: Sequence[str]) -> list[str]:
    # FORMAT keys in the input's order (VCF 4.3 §1.6.2: GT first; the rest as given).
    keys = list(dict.fromkeys(k for c in rec.calls for k in c.fields if k != "GT"))
    by_sample = {c.sample: c for c in rec.calls}
    out = [":".join(["GT", *keys])]
    for name in samples:
        call = by_sample.get(name)
        if call is None:
            out.append(":".join(["./.", *(["."] * len(keys))]))
            continue
        sep = "|" if call.phased else "/"
        gt = sep.join("." if a is None else str(a) for a in call.alleles) or "."
        out.append(":".join([gt, *(_value(call.fields.get(k)) for k in keys)]))
    return out


def _to_bcf(text: str) -> bytes:
    import pysam  # htslib writes BCF; the VCF text above is its input

    with tempfile.TemporaryDirectory(prefix="fednode-export-") as tmp:
        src, dst = Path(tmp) / "in.vcf", Path(tmp) / "out.bcf"
        src.write_text(text)
        with (
            pysam.VariantFile(str(src)) as vin,
            pysam.VariantFile(str(dst), "wb", header=vin.header) as vout,
        ):
            for rec in vin:
                vout.write(rec)
        return dst.read_bytes()
