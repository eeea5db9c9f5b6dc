"""Scheduled syncs run when due, once across replicas, and survive failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sync_core import audit
from sync_core.access import SYSTEM
from sync_core.scheduler import Scheduler
from sync_core.sync import SyncService
from tests.factories import StaticSource


def test_first_tick_syncs_then_waits_for_the_interval(engine, source):
    clock = [datetime.now(UTC)]
    scheduler = Scheduler(SyncService(engine, source), 60, now=lambda: clock[0])
    result = scheduler.run_once()
    assert result is not None and result.success and result.trigger == "schedule"
    assert scheduler.run_once() is None
    assert "less than an interval" in scheduler.last_skip_reason
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


def test_paused_scheduler_skips(engine, source):
    scheduler = Scheduler(SyncService(engine, source), 60)
    scheduler.paused = True
    assert scheduler.run_once() is None and scheduler.last_skip_reason == "paused by an admin"
    assert audit.list_audit(engine) == []


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
