"""Concurrency: 8 syncs started at once from processes and threads — CLI subprocesses,
SyncService threads, the HTTP API's handler and Scheduler.run_once — on PostgreSQL and SQLite.

Exactly one runs; every other caller hears "already running" at once (the scheduler may instead
skip because a sync ran less than an interval ago); no row is duplicated or lost; the audit log
has one row per sync that ran. The winner's LiteLLM fetch is held open until the 7 others have
answered, so the race is real and the outcome does not depend on timing.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from sync_core import api
from sync_core.access import Actor
from sync_core.config import Secret, Settings
from sync_core.errors import SyncInProgressError
from sync_core.litellm import LiteLLMClient
from sync_core.locking import current_holder, sync_lock
from sync_core.runtime import build_runtime
from sync_core.scheduler import Scheduler
from sync_core.sync import SyncService
from tests import fake_litellm as fl
from tests.reliability.helpers import (
    REAL_CLI,
    ROOT,
    audit_rows,
    big_catalogue,
    cli_env,
    current_rows,
    expected_rows,
    lock_is_free,
    make_engine,
)

KEY = "sk-reliability-concurrency"
ROUNDS = 3
MODELS = 300


def _round(url, engine, fake, gate, entries):
    """Start 8 syncs at once; return each participant's outcome."""
    client = lambda: LiteLLMClient(fake.url, Secret(KEY), timeout=30)  # noqa: E731
    outcomes: dict[str, str] = {}
    done = threading.Semaphore(0)
    barrier = threading.Barrier(5)

    def thread_service(name):
        service = SyncService(engine, client())
        barrier.wait()
        try:
            result = service.run(trigger="manual", actor=Actor(name, "admin"))
            outcomes[name] = "ran" if result.success else f"failed:{result.error_message}"
        except SyncInProgressError as exc:
            outcomes[name] = "busy" if "already running" in str(exc) else f"?{exc}"
        done.release()

    def thread_api(name):
        settings = Settings(litellm_url=fake.url, database_url=url, sync_api_token=Secret("t0k"))
        runtime = build_runtime(settings, source=client(), engine=engine)
        barrier.wait()
        answer = api.handle_sync(runtime, authorization="Bearer t0k", body=b"{}")
        if answer.status == 200:
            outcomes[name] = "ran"
        elif answer.status == 409 and "already running" in answer.body["message"]:
            outcomes[name] = "busy"
        else:
            outcomes[name] = f"?{answer.status} {answer.body}"
        done.release()

    def thread_scheduler(name):
        scheduler = Scheduler(SyncService(engine, client()), interval_s=3600)
        barrier.wait()
        result = scheduler.run_once()
        if result is not None:
            outcomes[name] = "ran" if result.success else f"failed:{result.error_message}"
        elif "already running" in (scheduler.last_skip_reason or ""):
            outcomes[name] = "busy"
        elif "already handled" in (scheduler.last_skip_reason or ""):
            outcomes[name] = "not-due"
        else:
            outcomes[name] = f"?{scheduler.last_skip_reason}"
        done.release()

    procs = {
        f"cli-{i}": subprocess.Popen(
            [*REAL_CLI, "sync", "--json"],
            env=cli_env(url, fake.url, KEY),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    }
    threads = [
        threading.Thread(target=f, args=(n,))
        for f, n in (
            (thread_service, "thread-0"),
            (thread_service, "thread-1"),
            (thread_api, "api-0"),
            (thread_api, "api-1"),
            (thread_scheduler, "scheduler"),
        )
    ]
    for t in threads:
        t.start()

    def watch(name, proc):
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            outcomes[name] = "ran"
        elif "already running" in err + out:
            outcomes[name] = "busy"
        else:
            outcomes[name] = f"?{proc.returncode} {err[-300:]}"
        done.release()

    watchers = [threading.Thread(target=watch, args=item) for item in procs.items()]
    for w in watchers:
        w.start()
    for _ in range(7):  # everyone but the winner answers while the winner's fetch is held
        assert done.acquire(timeout=60), outcomes
    holder = current_holder(engine)
    assert holder is not None
    gate.set()
    for t in threads + watchers:
        t.join(60)
    return outcomes, holder


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_eight_concurrent_syncs_one_runs(kind, request):
    url = request.getfixturevalue("pg_url" if kind == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    gate = threading.Event()

    def gated(handler):
        gate.wait(60)
        fl.normal(handler)

    summary: Counter[str] = Counter()
    with fl.FakeLiteLLM(key=KEY) as fake:
        for r in range(ROUNDS):
            fake.entries = big_catalogue(MODELS + 10 * r, r)
            fake.default = gated
            gate.clear()
            before = current_rows(engine)
            audits = len(audit_rows(engine))
            outcomes, holder = _round(url, engine, fake, gate, fake.entries)
            values = Counter(outcomes.values())
            assert len(outcomes) == 8, outcomes
            assert values["ran"] == 1, outcomes
            assert set(values) <= {"ran", "busy", "not-due"}, outcomes
            summary.update(values)
            winner = next(n for n, v in outcomes.items() if v == "ran")
            # the holder the refused callers were told about is the winner
            assert holder[0].split(":")[0] in {"cli", "manual", "api", "schedule"}
            # no duplicate or lost row; the table is exactly what one sync of this catalogue makes
            with engine.connect() as conn:
                dupes = conn.execute(
                    sa.text("SELECT id FROM models GROUP BY id HAVING count(*) > 1")
                ).all()
            assert dupes == []
            assert current_rows(engine) == expected_rows(
                fake.entries, before, mark_unavailable=True
            )
            new_audits = audit_rows(engine)[audits:]
            assert len(new_audits) == 1 and new_audits[0]["success"] is True
            trigger = new_audits[0]["metadata"]["trigger"]
            assert (
                trigger
                == {"cli": "cli", "thread": "manual", "api": "api", "scheduler": "schedule"}[
                    winner.split("-")[0]
                ]
            )
            assert lock_is_free(engine)
    engine.dispose()
    print(f"\n[concurrency {kind}] rounds={ROUNDS} outcomes={dict(summary)}")


def test_lock_holder_is_per_database(pg_url, empty_pg_url):
    """Advisory locks are per database: a sync in another database on the same server is
    neither blocked nor reported as the holder (bug fixed in locking.current_holder)."""
    here, other = make_engine(pg_url), make_engine(empty_pg_url)
    with sync_lock(other, "manual:someone-else"):
        assert current_holder(other)[0] == "manual:someone-else"
        assert current_holder(here) is None
        with sync_lock(here, "manual:me"):
            assert current_holder(here)[0] == "manual:me"
    assert current_holder(here) is None and current_holder(other) is None
    here.dispose()
    other.dispose()


def test_refusal_is_immediate(db_url):
    """A second caller is refused at once, not queued."""
    engine = make_engine(db_url)
    with sync_lock(engine, "manual:first"):
        started = time.monotonic()
        with pytest.raises(SyncInProgressError) as caught:
            SyncService(engine, None).run(trigger="manual", actor=Actor("b", "admin"))
        assert time.monotonic() - started < 1.0
        assert "manual:first" in str(caught.value)
    engine.dispose()
