"""Prometheus metrics: what monitoring at scale reads from ``GET /metrics``.

One registry per runtime (not the global one), so tests and several runtimes in one process
never collide. Sync outcomes and LiteLLM requests are pushed as they happen; model counts and
the breaker state are read at scrape time, so they are never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .breaker import STATE_CODES
from .store import model_counts

log = logging.getLogger("sync_core.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _ScrapeTimeCollector(Collector):
    """Models by availability and the breaker state, read when Prometheus scrapes."""

    def __init__(self, engine_getter: Callable[[], Any], breaker_getter: Callable[[], Any]):
        self._engine = engine_getter
        self._breaker = breaker_getter

    def collect(self) -> Iterator[GaugeMetricFamily]:
        models = GaugeMetricFamily(
            "litemaas_models", "Rows in the models table by availability", labels=["availability"]
        )
        try:
            with self._engine().connect() as conn:
                counts = model_counts(conn)
            for availability, count in counts.items():
                if availability != "total":
                    models.add_metric([availability], count)
        except sa.exc.SQLAlchemyError:
            log.warning("metrics: database unreachable, model counts omitted")
        yield models
        breaker = self._breaker()
        state = GaugeMetricFamily(
            "litemaas_litellm_circuit_breaker_state",
            "LiteLLM circuit breaker: 0 closed, 1 half-open, 2 open",
        )
        state.add_metric([], STATE_CODES.get(breaker.state, 0) if breaker is not None else 0)
        yield state


class SyncMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sync_runs = Counter(
            "litemaas_sync_runs",
            "Syncs by trigger and outcome",
            ["trigger", "outcome"],
            registry=self.registry,
        )
        self.sync_duration = Histogram(
            "litemaas_sync_duration_seconds",
            "Sync duration",
            ["trigger"],
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "litemaas_sync_last_success_timestamp_seconds",
            "Unix time of the last successful sync",
            registry=self.registry,
        )
        self.sync_changes = Counter(
            "litemaas_sync_model_changes",
            "Model changes written by syncs",
            ["action"],
            registry=self.registry,
        )
        self.sync_errors = Counter(
            "litemaas_sync_model_errors", "Models skipped with a data error", registry=self.registry
        )
        self.pending = Gauge(
            "litemaas_sync_pending_changes",
            "Changes LiteLLM has that the database does not (last plan seen)",
            registry=self.registry,
        )
        self.requests = Counter(
            "litemaas_litellm_requests",
            "HTTP requests to LiteLLM by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "litemaas_litellm_request_duration_seconds",
            "LiteLLM request latency",
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )

    def bind(self, engine_getter: Callable[[], Any], breaker_getter: Callable[[], Any]) -> None:
        self.registry.register(_ScrapeTimeCollector(engine_getter, breaker_getter))

    def observe_request(self, outcome: str, seconds: float) -> None:
        self.requests.labels(outcome).inc()
        self.request_latency.observe(max(seconds, 0.0))

    def observe_sync(self, result: Any) -> None:
        outcome = "success" if result.success else (result.error_kind or "error")
        self.sync_runs.labels(result.trigger, outcome).inc()
        self.sync_duration.labels(result.trigger).observe(result.duration_ms / 1000)
        if result.success:
            self.last_success.set(result.synced_at.timestamp())
            self.pending.set(0)
            for action, count in (
                ("insert", result.new_models),
                ("update", result.updated_models),
                ("mark_unavailable", result.unavailable_models),
                ("restore", result.restored_models),
            ):
                if count:
                    self.sync_changes.labels(action).inc(count)
            if result.errors:
                self.sync_errors.inc(len(result.errors))

    def observe_pending(self, count: int) -> None:
        """Changes LiteLLM has that the database does not, as the last health check saw them."""
        self.pending.set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
