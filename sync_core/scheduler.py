"""Scheduled syncs: every ``LITELLM_SYNC_INTERVAL`` seconds, once across all replicas.

Each replica ticks on its own; before syncing it asks the audit log when the last sync
started, and skips when another replica (or an admin) synced less than an interval ago. The sync
lock settles the remaining race: the loser gets "already running" and skips.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from . import audit
from .access import Actor
from .errors import SyncError
from .sync import SyncResult, SyncService

log = logging.getLogger("sync_core.scheduler")
SCHEDULER_ACTOR = Actor("scheduler", "admin")
#: Tolerance so replicas whose ticks drift slightly do not skip a whole interval.
DUE_FRACTION = 0.9


class Scheduler:
    def __init__(
        self,
        service: SyncService,
        interval_s: float,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.service = service
        self.interval_s = interval_s
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = False
        self.last_run_at: datetime | None = None
        self.last_result: SyncResult | None = None
        self.next_run_at: datetime | None = None
        self.last_skip_reason: str | None = None

    def is_due(self) -> bool:
        """Whether no sync (by anyone, anywhere) started within the last interval."""
        last = audit.last_sync(self.service.engine)
        if last is None:
            return True
        started = last["created_at"]
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        started -= timedelta(milliseconds=(last.get("metadata") or {}).get("durationMs") or 0)
        return (self._now() - started).total_seconds() >= self.interval_s * DUE_FRACTION

    def run_once(self) -> SyncResult | None:
        """One tick: sync when due and not paused; returns the result, or None when skipped."""
        self.next_run_at = self._now() + timedelta(seconds=self.interval_s)
        if self.paused:
            self.last_skip_reason = "paused by an admin"
            return None
        try:
            if not self.is_due():
                self.last_skip_reason = "a sync ran less than an interval ago"
                return None
            result = self.service.run(trigger="schedule", actor=SCHEDULER_ACTOR)
        except SyncError as exc:  # another replica is syncing right now
            self.last_skip_reason = str(exc)
            log.info("scheduled sync skipped: %s", exc)
            return None
        except Exception:  # the loop must survive a database outage
            log.exception("scheduled sync could not run")
            self.last_skip_reason = "error, see the logs"
            return None
        self.last_run_at, self.last_result, self.last_skip_reason = self._now(), result, None
        return result

    def run_forever(self) -> None:
        log.info("scheduler started: every %s s", self.interval_s)
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)

    def start(self) -> threading.Thread:
        """Run in a daemon thread (inside the dashboard's server process)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.run_forever, name="litemaas-sync-scheduler", daemon=True
            )
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
