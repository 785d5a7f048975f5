"""Typed application keys (aiohttp `web.AppKey`): the only state an app holds.

Sub-apps read them through `request.config_dict[KEY]`, which falls through to the
parent application.
"""

from __future__ import annotations

from aiohttp import web

from node.config import Settings
from node.reads.catalog import ReadsCatalog
from node.store.registry import DatasetRegistry
from node.web.metrics import Metrics

__all__ = ["DATASETS", "METRICS", "READS", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
DATASETS = web.AppKey("datasets", DatasetRegistry)
METRICS = web.AppKey("metrics", Metrics)
READS = web.AppKey("reads", ReadsCatalog)
