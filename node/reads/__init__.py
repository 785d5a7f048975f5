"""Indexed BAM/CRAM/VCF/BCF files: index parsing, header extents, byte segments, catalog."""

from node.reads.cache import LayoutCache
from node.reads.catalog import ReadsCatalog, ReadsEntry, detect_format
from node.reads.layout import Inline, Layout, Query, Segment, Span

__all__ = [
    "Inline",
    "Layout",
    "LayoutCache",
    "Query",
    "ReadsCatalog",
    "ReadsEntry",
    "Segment",
    "Span",
    "detect_format",
]
