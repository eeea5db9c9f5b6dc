"""Crash safety: ``kill -9`` of ``python -m sync_core sync`` at a random moment while it applies a
5,000-model catalogue → the table holds the old state or the new one, never a mix; the lock is
free afterwards; the next sync completes.

Three catalogue states alternate so that every sync writes inserts, updates, unavailable marks and
restores: A (models 0..4999, price set 0), B (0..4899 and 100 new ones, price set 1) and A'
(A again: the 100 new ones stay, unavailable). Each kill's target is the next state; half the
kills land at a uniformly random time within a calibrated sync duration, half the moment the
syncing backend is seen executing its INSERT/UPDATE on ``models`` (plus 0-50 ms), so a good share
certainly hits the write. The seed is fixed; counts are printed (``-s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from sync_core.access import Actor
from sync_core.config import Secret
from sync_core.litellm import LiteLLMClient
from sync_core.sync import SyncService
from tests.fake_litellm import FakeLiteLLM
from tests.reliability.helpers import (
    REAL_CLI,
    ROOT,
    big_catalogue,
    big_entry,
    cli_env,
    fingerprint,
    lock_is_free,
    make_engine,
    pg_fingerprint,
)

SEED = 20251127
MODELS = 5000
KILLS = {"postgresql": 20, "sqlite": 6}
KEY = "sk-reliability-crash"
ADMIN = Actor("reliability@example.com", "admin")


def _states() -> dict[str, bytes]:
    a = big_catalogue(MODELS, 0)
    b = big_catalogue(MODELS - 100, 1) + [big_entry(i, 1) for i in range(10_000, 10_100)]
    return {"A": json.dumps({"data": a}).encode(), "B": json.dumps({"data": b}).encode()}


def _fp(engine):
    return pg_fingerprint(engine) if engine.dialect.name == "postgresql" else fingerprint(engine)


def _data_writing(engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND (query LIKE 'INSERT INTO models%' OR query LIKE "
                    "'%UPDATE models%') AND pid <> pg_backend_pid()"
                )
            ).scalar()
        )


def _sqlite_locked_by(path: str, pid: int) -> bool:
    """Whether process ``pid`` holds the sync's file lock (its holder record names the pid)."""
    try:
        with open(path + ".sync-lock", "rb") as handle:
            return f'"pid":{pid}'.encode() in handle.read()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_kill_9_mid_sync_leaves_old_or_new_state(kind, request, tmp_path, capsys):
    url = request.getfixturevalue("pg_url" if kind == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    bodies = _states()
    rng = random.Random(SEED)
    with FakeLiteLLM(key=KEY) as fake:
        service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY), timeout=30))
        states: dict[str, tuple] = {}
        for name, body in (("A", "A"), ("B", "B"), ("A'", "A")):
            fake.body = bodies[body]
            assert service.run(trigger="manual", actor=ADMIN).success
            states[name] = _fp(engine)
        assert len(set(states.values())) == 3
        env = cli_env(url, fake.url, KEY)

        # calibrate: how long does an uninterrupted CLI sync take here?
        fake.body = bodies["B"]
        started = time.monotonic()
        done = subprocess.run(
            [*REAL_CLI, "sync"], env=env, cwd=ROOT, capture_output=True, timeout=120
        )
        duration = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert _fp(engine) == states["B"]
        current = "B"

        outcomes: Counter[str] = Counter()
        for i in range(KILLS[kind]):
            target = "A'" if current == "B" else "B"
            fake.body = bodies["A" if target == "A'" else "B"]
            log = open(tmp_path / f"cli-{i}.log", "wb")  # noqa: SIM115 - closed after the kill
            proc = subprocess.Popen([*REAL_CLI, "sync"], env=env, cwd=ROOT, stdout=log, stderr=log)
            if i % 2 == 0:
                mode = "random"
                time.sleep(rng.uniform(0.0, duration))
            elif kind == "postgresql":  # the moment its INSERT/UPDATE on models runs
                mode = "mid-write"
                deadline = time.monotonic() + 60
                while (
                    proc.poll() is None
                    and not _data_writing(engine)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.05))
            else:  # SQLite's writes are not observable from outside: once it holds the lock
                mode = "after-lock"
                deadline = time.monotonic() + 60
                path = url.removeprefix("sqlite:///")
                while (
                    proc.poll() is None
                    and not _sqlite_locked_by(path, proc.pid)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, duration / 2))
            finished_first = proc.poll() is not None
            if not finished_first:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            log.close()
            state = _fp(engine)
            assert state in (states[current], states[target]), f"kill {i}: a mixed state"
            landed = "new" if state == states[target] else "old"
            outcomes[f"{mode}:{'exited-before-kill' if finished_first else 'killed'}:{landed}"] += 1
            assert lock_is_free(engine, wait=15), f"kill {i}: the lock is still held"
            # the next sync completes and lands exactly on the target state
            result = service.run(trigger="manual", actor=ADMIN)
            assert result.success, result.error_message
            assert _fp(engine) == states[target]
            current = target

        # and the real CLI completes after all that
        fake.body = bodies["A" if current == "B" else "B"]
        done = subprocess.run(
            [*REAL_CLI, "sync", "--json"], env=env, cwd=ROOT, capture_output=True, timeout=120
        )
        assert done.returncode == 0 and json.loads(done.stdout)["success"] is True
    engine.dispose()
    with capsys.disabled():
        print(
            f"\n[crash {kind}] seed={SEED} models={MODELS} kills={KILLS[kind]} "
            f"calibrated_sync={duration:.2f}s outcomes={dict(sorted(outcomes.items()))}"
        )
    assert sum(outcomes.values()) == KILLS[kind]
    killed = sum(v for k, v in outcomes.items() if ":killed:" in k)
    assert killed >= KILLS[kind] * 3 // 4  # most kills hit a running sync
