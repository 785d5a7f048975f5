"""Prometheus metrics, one registry per application (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fednode_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fednode_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )

        # The operator's view of the pooled class budgets (node/privacy/gate.py): answers
        # refused because a class's pool for a dataset is spent, by pool key.
        self.pool_refusals = Counter(
            "fednode_privacy_pool_refusals",
            "answers refused because a pooled class budget is spent",
            ["pool"],
            registry=self.registry,
        )

    def pool_refused(self, pool: str) -> None:
        self.pool_refusals.labels(pool).inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency (labelled children looked up once)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)), self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
