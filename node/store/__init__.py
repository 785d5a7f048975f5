"""Variant stores: the `VariantStore` Protocol and its implementations."""

from node.store.base import IngestSummary, VariantStore

__all__ = ["IngestSummary", "VariantStore"]
