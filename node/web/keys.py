"""Typed application keys (aiohttp `web.AppKey`): the only state an app holds.

Sub-apps read them through `request.config_dict[KEY]`, which falls through to the
parent application.
"""

from __future__ import annotations

from aiohttp import ChainMapProxy, web

from node.config import Settings
from node.reads.catalog import ReadsCatalog
from node.store.registry import DatasetRegistry
from node.web.metrics import Metrics

__all__ = ["DATASETS", "METRICS", "READS", "SETTINGS", "config_of"]

SETTINGS = web.AppKey("settings", Settings)
DATASETS = web.AppKey("datasets", DatasetRegistry)
METRICS = web.AppKey("metrics", Metrics)
READS = web.AppKey("reads", ReadsCatalog)

_CONFIG = web.RequestKey("config_dict", ChainMapProxy)


def config_of(request: web.Request) -> ChainMapProxy:
    """`request.config_dict`, built once per request (aiohttp builds a new chain per access);
    only after routing, when the request's applications are known (handlers, middlewares)."""
    config = request.get(_CONFIG)
    if config is None:
        config = request[_CONFIG] = request.config_dict
    return config
