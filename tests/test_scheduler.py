"""Scheduled syncs run when due, once across replicas, and survive failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from sync_core import audit
from sync_core.access import SYSTEM, Actor
from sync_core.config import ConfigError, FreezeWindow, Settings
from sync_core.control import SCHEDULER_PAUSED, set_control
from sync_core.errors import PermissionDeniedError
from sync_core.scheduler import SKIPPED_ACTION, Scheduler, scheduler_status, set_paused
from sync_core.sync import SyncService
from tests.factories import StaticSource


def test_first_tick_syncs_then_waits_for_the_interval(engine, source):
    clock = [datetime.now(UTC)]
    scheduler = Scheduler(SyncService(engine, source), 60, now=lambda: clock[0])
    result = scheduler.run_once()
    assert result is not None and result.success and result.trigger == "schedule"
    assert scheduler.run_once() is None
    assert "already handled" in scheduler.last_skip_reason
    clock[0] += timedelta(seconds=61)
    assert scheduler.run_once() is not None
    assert [r["metadata"]["trigger"] for r in audit.list_audit(engine)] == ["schedule", "schedule"]


def test_a_manual_sync_counts_as_the_last_run(engine, source):
    service = SyncService(engine, source)
    service.run(trigger="manual", actor=SYSTEM)
    assert Scheduler(service, 60).run_once() is None


def test_replicas_never_run_the_same_scheduled_sync_twice(engine):
    replicas = [Scheduler(SyncService(engine, StaticSource()), 60) for _ in range(4)]
    barrier = threading.Barrier(4)
    results = []

    def tick(s):
        barrier.wait()
        results.append(s.run_once())

    threads = [threading.Thread(target=tick, args=(s,)) for s in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(audit.list_audit(engine)) == 1


def test_paused_scheduler_skips_on_every_replica_until_resumed(engine, source):
    first, second = (Scheduler(SyncService(engine, source), 60) for _ in range(2))
    with pytest.raises(PermissionDeniedError):
        set_control(engine, SCHEDULER_PAUSED, {"paused": True}, Actor("v@x.org", "viewer"))
    set_control(engine, SCHEDULER_PAUSED, {"paused": True}, SYSTEM)
    assert first.run_once() is None and first.last_skip_reason == "paused by an admin"
    assert second.paused
    assert audit.list_audit(engine, action=audit.SYNC_ACTION) == []
    (change,) = audit.list_audit(engine, action="MODEL_SYNC_CONTROL_CHANGED")
    assert change["resource_id"] == SCHEDULER_PAUSED and change["metadata"]["actor"] == "system"
    set_control(engine, SCHEDULER_PAUSED, {"paused": False}, SYSTEM)
    assert second.run_once() is not None


def test_cron_schedule_runs_once_per_fire_time(engine, source):
    clock = [datetime(2026, 11, 27, 10, 7, tzinfo=UTC)]
    scheduler = Scheduler(SyncService(engine, source), 60, cron="*/15 * * * *",
                          now=lambda: clock[0])
    assert scheduler.next_after(clock[0]) == datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
    # the audit rows carry real timestamps; move the fake clock relative to them
    clock[0] = datetime.now(UTC)
    assert scheduler.run_once() is not None
    assert scheduler.run_once() is None  # same fire time: already handled
    clock[0] = clock[0] + timedelta(minutes=16)
    assert scheduler.run_once() is not None


def test_freeze_window_skips_and_records_the_skip(engine, source):
    now = datetime.now(UTC)
    window = FreezeWindow("* * * * *", timedelta(hours=2))  # fired within the last minute
    scheduler = Scheduler(SyncService(engine, source), 60, freeze_windows=[window],
                          now=lambda: now)
    assert scheduler.run_once() is None
    assert scheduler.last_skip_reason.startswith("freeze window until")
    (skip,) = audit.list_audit(engine, action=SKIPPED_ACTION)
    assert skip["metadata"]["reason"].startswith("freeze window")
    assert audit.list_audit(engine, action=audit.SYNC_ACTION) == []
    assert scheduler.run_once() is None  # recorded once per tick, not once per replica poll
    assert len(audit.list_audit(engine, action=SKIPPED_ACTION)) == 1


def test_freeze_and_cron_settings_are_validated():
    settings = Settings.from_env({"LITELLM_SYNC_CRON": "*/5 * * * *",
                                  "LITELLM_SYNC_FREEZE": "0 22 * * 5|60h; 0 0 24 12 *|2d"})
    assert settings.sync_cron == "*/5 * * * *"
    assert [w.duration for w in settings.sync_freeze_windows] == [timedelta(hours=60),
                                                                   timedelta(days=2)]
    for env in ({"LITELLM_SYNC_CRON": "every day"}, {"LITELLM_SYNC_FREEZE": "0 22 * * 5"},
                {"LITELLM_SYNC_FREEZE": "0 22 * * 5|forever"}):
        with pytest.raises(ConfigError) as error:
            Settings.from_env(env)
        assert next(iter(env)) in str(error.value)


def test_failed_sync_is_audited_and_the_loop_goes_on(engine, source):
    from sync_core.errors import LiteLLMTimeoutError

    source.error = LiteLLMTimeoutError("LiteLLM at http://x/model/info did not answer")
    scheduler = Scheduler(SyncService(engine, source), 0.05)
    thread = scheduler.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(audit.list_audit(engine)) < 2 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    scheduler.stop()
    assert not thread.is_alive()
    rows = audit.list_audit(engine)
    assert len(rows) >= 2 and not any(r["success"] for r in rows)


def test_status_shows_schedule_last_and_next_run_and_who_paused(engine, source):
    settings = Settings.from_env({"LITELLM_AUTO_SYNC": "true", "LITELLM_SYNC_INTERVAL": "10m"})
    service = SyncService(engine, source)
    status = scheduler_status(service, settings)
    assert status.enabled and status.schedule == "every 600 s" and status.last_run_at is None
    Scheduler(service, 600).run_once()
    set_paused(service, True, Actor("boss@example.com", "admin"))
    status = scheduler_status(service, settings)
    assert status.last_run_success is True and status.paused and status.paused_by == "boss@example.com"
    assert (status.next_run_at - status.last_run_at).total_seconds() == pytest.approx(600, abs=5)
    with pytest.raises(PermissionDeniedError):
        set_paused(service, False, Actor("viewer@example.com", "viewer"))
