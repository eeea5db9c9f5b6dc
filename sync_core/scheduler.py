"""Scheduled syncs: every ``LITELLM_SYNC_INTERVAL`` or on ``LITELLM_SYNC_CRON``, once across
all replicas, paused by an admin switch, skipped (and recorded) inside freeze windows.

Each replica ticks on its own; before syncing it asks the audit log when the last sync (or
recorded skip) happened, and does nothing when another replica already handled this tick. The
sync lock settles the remaining race: the loser gets "already running" and skips.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from . import audit
from .access import Actor
from .config import FreezeWindow, Settings
from .control import SCHEDULER_PAUSED, get_control, set_control
from .errors import SyncError
from .sync import SyncResult, SyncService

log = logging.getLogger("sync_core.scheduler")
SCHEDULER_ACTOR = Actor("scheduler", "admin")
SKIPPED_ACTION = "MODELS_SYNC_SKIPPED"
HANDLED = "already handled by this or another replica"
#: Tolerance so replicas whose ticks drift slightly do not skip a whole interval.
DUE_FRACTION = 0.9


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Scheduler:
    def __init__(
        self,
        service: SyncService,
        interval_s: float,
        *,
        cron: str | None = None,
        freeze_windows: Sequence[FreezeWindow] = (),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.service = service
        self.interval_s = interval_s
        self.cron = cron
        self.freeze_windows = tuple(freeze_windows)
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_run_at: datetime | None = None
        self.last_result: SyncResult | None = None
        self.next_run_at: datetime | None = None
        self.last_skip_reason: str | None = None

    # --- when -----------------------------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime:
        if self.cron:
            return _aware(croniter(self.cron, moment).get_next(datetime))
        return moment + timedelta(seconds=self.interval_s)

    def _tick_started(self, now: datetime) -> datetime:
        """When the current tick began: the cron's last fire time, or one interval ago."""
        if self.cron:
            return _aware(croniter(self.cron, now).get_prev(datetime))
        return now - timedelta(seconds=self.interval_s * DUE_FRACTION)

    def _last_handled(self) -> datetime | None:
        """The start of the last sync, or the last recorded skip, by anyone."""
        times = []
        last = audit.last_sync(self.service.engine)
        if last is not None:
            duration_ms = (last.get("metadata") or {}).get("durationMs") or 0
            times.append(_aware(last["created_at"]) - timedelta(milliseconds=duration_ms))
        skipped = audit.list_audit(self.service.engine, action=SKIPPED_ACTION, limit=1)
        if skipped:
            times.append(_aware(skipped[0]["created_at"]))
        return max(times) if times else None

    def is_due(self) -> bool:
        """Whether nobody, anywhere, handled the current tick yet."""
        handled = self._last_handled()
        return handled is None or handled < self._tick_started(self._now())

    @property
    def paused(self) -> bool:
        state = get_control(self.service.engine, SCHEDULER_PAUSED, {}) or {}
        return bool(state.get("paused"))

    def frozen_until(self) -> datetime | None:
        now = self._now()
        ends = [end for w in self.freeze_windows if (end := w.frozen_until(now)) is not None]
        return max(ends) if ends else None

    # --- what -----------------------------------------------------------------------------

    def _skip(self, reason: str, *, record: bool) -> None:
        self.last_skip_reason = reason
        if record:
            audit.write_audit(self.service.engine, action=SKIPPED_ACTION, success=True,
                              metadata={"trigger": "schedule", "actor": SCHEDULER_ACTOR.name,
                                        "reason": reason})
        log.info("scheduled sync skipped: %s", reason)

    def run_once(self) -> SyncResult | None:
        """One tick: sync when due, not paused and not frozen; None when skipped."""
        now = self._now()
        self.next_run_at = self.next_after(now)
        try:
            if not self.is_due():
                self.last_skip_reason = HANDLED
                return None
            if self.paused:
                self._skip("paused by an admin", record=False)
                return None
            frozen = self.frozen_until()
            if frozen is not None:
                self._skip(f"freeze window until {frozen.isoformat(timespec='minutes')}",
                           record=True)
                return None
            options = self.service.options(hold_suspicious=True)  # suspicious waits for a human
            result = self.service.run(
                options, trigger="schedule", actor=SCHEDULER_ACTOR,
                still_wanted=lambda: None if self.is_due() else HANDLED)
        except SyncError as exc:  # another replica is syncing right now
            self.last_skip_reason = str(exc)
            log.info("scheduled sync skipped: %s", exc)
            return None
        except Exception:  # the loop must survive a database outage
            log.exception("scheduled sync could not run")
            self.last_skip_reason = "error, see the logs"
            return None
        self.last_run_at, self.last_result, self.last_skip_reason = now, result, None
        return result

    def run_forever(self) -> None:
        log.info("scheduler started: %s", f"cron {self.cron}" if self.cron
                 else f"every {self.interval_s} s")
        while not self._stop.is_set():
            self.run_once()
            wait = (self.next_after(self._now()) - self._now()).total_seconds()
            self._stop.wait(max(wait, 0.01))

    def start(self) -> threading.Thread:
        """Run in a daemon thread (inside the dashboard's server process)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run_forever, name="litemaas-sync-scheduler",
                                            daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def scheduler_for(service: SyncService, settings: Settings) -> Scheduler:
    """The scheduler the settings describe (interval or cron, freeze windows)."""
    return Scheduler(service, settings.sync_interval_seconds, cron=settings.sync_cron,
                     freeze_windows=settings.sync_freeze_windows)


@dataclass(frozen=True)
class SchedulerStatus:
    """What the health page shows about scheduled syncs (shared state, any replica)."""

    enabled: bool
    schedule: str
    paused: bool
    paused_by: str | None
    frozen_until: datetime | None
    last_run_at: datetime | None
    last_run_success: bool | None
    next_run_at: datetime | None
    last_skip: str | None


def scheduler_status(service: SyncService, settings: Settings,
                     now: datetime | None = None) -> SchedulerStatus:
    now = now or datetime.now(UTC)
    probe = scheduler_for(service, settings)
    probe._now = lambda: now
    pause = get_control(service.engine, SCHEDULER_PAUSED, {}) or {}
    runs = [r for r in audit.list_audit(service.engine, action=audit.SYNC_ACTION, limit=200)
            if (r.get("metadata") or {}).get("trigger") == "schedule"]
    skips = audit.list_audit(service.engine, action=SKIPPED_ACTION, limit=1)
    last = runs[0] if runs else None
    if settings.sync_cron:
        next_run = probe.next_after(now)
    else:  # the tick after the last one anybody handled, or now when that is overdue
        handled = probe._last_handled()
        next_run = max(now, probe.next_after(handled)) if handled else now
    return SchedulerStatus(
        enabled=settings.auto_sync,
        schedule=f"cron {settings.sync_cron} (UTC)" if settings.sync_cron
        else f"every {settings.sync_interval_seconds} s",
        paused=bool(pause.get("paused")),
        paused_by=pause.get("by"),
        frozen_until=probe.frozen_until(),
        last_run_at=_aware(last["created_at"]) if last else None,
        last_run_success=bool(last["success"]) if last else None,
        next_run_at=next_run if settings.auto_sync else None,
        last_skip=(skips[0]["metadata"] or {}).get("reason") if skips else None,
    )


def set_paused(service: SyncService, paused: bool, actor: Actor) -> None:
    """The admin's pause switch, shared by every replica (the check is in set_control)."""
    set_control(service.engine, SCHEDULER_PAUSED,
                {"paused": paused, "by": actor.name,
                 "at": datetime.now(UTC).isoformat(timespec="seconds")}, actor)
