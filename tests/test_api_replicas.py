"""Two dashboard server processes on one PostgreSQL: probes answer, syncs from both never
interleave (one runs, the other gets 409), and the audit log matches the syncs that ran."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from sync_core import audit
from sync_core.api import handle_live, handle_ready
from sync_core.config import Settings
from sync_core.db import create_db_engine
from sync_core.runtime import build_runtime
from tests.test_app_support import streamlit_server

TOKEN = "replica-test-token-5c1e"


@pytest.fixture
def replicas(pg_url: str, tmp_path) -> Iterator[tuple[list[str], sa.Engine]]:  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": pg_url, "SYNC_API_TOKEN": TOKEN}
    with streamlit_server({**env, "_LOG": str(tmp_path / "a.log")}) as first, \
            streamlit_server({**env, "_LOG": str(tmp_path / "b.log")}) as second:
        engine = create_db_engine(pg_url)
        yield [first, second], engine
        engine.dispose()


def test_probes_and_concurrent_syncs_across_two_servers(replicas):
    bases, engine = replicas
    for base in bases:
        assert requests.get(base + "/api/v1/health/live", timeout=10).json() == {"status": "ok"}
        ready = requests.get(base + "/api/v1/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
    before = len(audit.list_audit(engine, action=audit.SYNC_ACTION))
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def fire(base: str) -> None:
        barrier.wait()
        answer = requests.post(base + "/api/v1/models/sync", json={"forceUpdate": True},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        statuses.append(answer.status_code)
        if answer.status_code == 409:
            assert "already running" in answer.text

    threads = [threading.Thread(target=fire, args=(bases[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 409} and 200 in statuses
    ran = len(audit.list_audit(engine, action=audit.SYNC_ACTION)) - before
    assert ran == statuses.count(200)
    with engine.connect() as conn:
        total, distinct = conn.execute(sa.text("SELECT count(*), count(DISTINCT id) FROM models")).one()
    assert total == distinct == 17


def test_ready_refuses_an_unmigrated_or_unreachable_database(empty_pg_url):
    assert handle_live().status == 200
    runtime = build_runtime(Settings.from_env({"DATABASE_URL": empty_pg_url}))
    answer = handle_ready(runtime)
    assert answer.status == 503 and "expected" in answer.body["reason"]
    runtime.close()
    runtime = build_runtime(Settings.from_env({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}))
    answer = handle_ready(runtime)
    assert answer.status == 503 and "unreachable" in answer.body["reason"]
    runtime.close()
