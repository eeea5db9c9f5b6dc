"""Wiring: settings → engine, LiteLLM source and sync service, built once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from .config import Settings
from .db import create_db_engine
from .history import change_recorder
from .litellm import LiteLLMClient
from .mock_litellm import MockLiteLLMClient
from .notify import Notifier
from .policy import Selection
from .snapshots import SnapshotSource, snapshot_taker
from .sync import CatalogueSource, SyncResult, SyncService

if TYPE_CHECKING:
    from .metrics import SyncMetrics

log = logging.getLogger("sync_core.runtime")
#: How long closing waits for webhooks still queued (a CLI sync exits right after its sync).
NOTIFY_DRAIN_S = 15.0


def make_source(settings: Settings, metrics: SyncMetrics | None = None) -> CatalogueSource:
    """The live client when a URL is set; the bundled catalogue only in development mock mode."""
    if settings.mock_mode:
        return MockLiteLLMClient()
    assert settings.litellm_url is not None  # Settings.from_env refuses production without it
    observer = metrics.observe_request if metrics is not None else None
    return LiteLLMClient(settings.litellm_url, settings.litellm_api_key, observer=observer,
                         timeout=settings.litellm_timeout_seconds)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    source: CatalogueSource
    service: SyncService
    #: None in the CLI: nothing scrapes a command's process (prometheus_client: 10 ms of start-up).
    metrics: SyncMetrics | None
    #: What every finished sync notifies (metrics, then the per-model history).
    on_finished: Callable[[SyncResult], None]
    notifier: Notifier

    def close(self) -> None:
        """Deliver the webhooks still queued (bounded), then close the pool."""
        try:
            if self.notifier.urls and not self.notifier.drain(NOTIFY_DRAIN_S):
                log.warning("webhook notifications still queued were not delivered before "
                            "closing (waited %g s)", NOTIFY_DRAIN_S)
        finally:
            self.engine.dispose()

    def service_for(self, source: CatalogueSource) -> SyncService:
        """A sync service with this runtime's policy and listeners over another source (a
        snapshot to restore, the older demo catalogue)."""
        return _service(self.settings, self.engine, source, self.on_finished)

    def restore_service(self, sync_audit_id: str) -> SyncService:
        """The service whose plan restores the catalogue as it stood after that sync."""
        return self.service_for(SnapshotSource(self.engine, sync_audit_id))


def _service(settings: Settings, engine: Engine, source: CatalogueSource,
             on_finished: Callable[[SyncResult], None]) -> SyncService:
    return SyncService(
        engine,
        source,
        conflict_resolution=settings.conflict_resolution,
        on_finished=on_finished,
        selection=Selection(providers=settings.sync_providers,
                            patterns=settings.sync_model_patterns),
        retention_days=settings.retention_days,
        max_unavailable_share=settings.max_unavailable_share,
        plan_ttl_s=settings.plan_ttl_seconds,
    )


def build_runtime(
    settings: Settings | None = None,
    *,
    source: CatalogueSource | None = None,
    engine: Engine | None = None,
    with_metrics: bool = True,
) -> Runtime:
    settings = settings or Settings.from_env()
    engine = engine or create_db_engine(settings)
    metrics = None
    if with_metrics:
        from .metrics import SyncMetrics

        metrics = SyncMetrics()
    source = source or make_source(settings, metrics)
    notifier = Notifier(settings.notify_webhook_urls, settings.notify_webhook_secret)
    listeners: tuple[Callable[[SyncResult], None], ...] = (
        change_recorder(engine), snapshot_taker(engine), notifier)
    if metrics is not None:
        listeners = (metrics.observe_sync, *listeners)

    def on_finished(result: SyncResult) -> None:
        for listener in listeners:
            listener(result)

    service = _service(settings, engine, source, on_finished)
    if metrics is not None:
        metrics.bind(lambda: service.engine, lambda: getattr(service.source, "breaker", None))
    return Runtime(settings, engine, source, service, metrics, on_finished, notifier)
