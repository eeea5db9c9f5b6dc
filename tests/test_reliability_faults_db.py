"""Database faults during a sync: the transaction rolls back whole, the failure is audited, the
lock is free afterwards and the next sync succeeds.

Faults: the syncing connection terminated mid-write (``pg_terminate_backend`` while a trigger
holds the write in ``pg_sleep``), the lock's own connection terminated mid-sync, the server
unreachable, a ``statement_timeout``, and a constraint violation on one row (PostgreSQL and
SQLite).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from sync_core.access import Actor
from sync_core.config import Secret, Settings
from sync_core.errors import DatabaseError
from sync_core.runtime import build_runtime
from sync_core.sync import SyncService
from tests.factories import StaticSource, entry, real_entries
from tests.reliability.helpers import (
    audit_rows,
    cli_env,
    current_rows,
    expected_rows,
    fingerprint,
    lock_is_free,
    make_engine,
    run_cli,
)

ADMIN = Actor("reliability@example.com", "admin")


def changed_catalogue() -> list[dict]:
    """Every price of the real catalogue changed, plus 50 new models."""
    entries = real_entries()
    for e in entries:
        e["model_info"]["input_cost_per_token"] = 7.5e-06
        e["model_info"]["output_cost_per_token"] = 9.5e-06
    return entries + [entry(f"new-{i:02d}") for i in range(50)]


@pytest.fixture
def pg(pg_url):
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def admin_pg(pg_url):
    """A second engine, like another admin's psql session."""
    eng = make_engine(pg_url, pool_size=2)
    yield eng
    eng.dispose()


def _wait_for(engine, sql: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(sa.text(sql)).first()
        if row is not None:
            return row[0]
        time.sleep(0.02)
    raise AssertionError(f"nothing matched: {sql}")


def _in_thread(fn):
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


SLOW_WRITE = """
CREATE FUNCTION reliability_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
CREATE TRIGGER reliability_slow BEFORE {events} ON models
FOR EACH STATEMENT EXECUTE FUNCTION reliability_slow();
"""
DROP_SLOW = "DROP TRIGGER reliability_slow ON models; DROP FUNCTION reliability_slow();"
#: How each write reaches PostgreSQL (new rows are COPYed straight into models).
WRITE_QUERY = {"INSERT": "COPY models%", "UPDATE": "UPDATE %models%"}


@pytest.mark.parametrize("statement", ["INSERT", "UPDATE"])
def test_syncing_connection_terminated_mid_write(pg, admin_pg, statement):
    source = StaticSource()
    service = SyncService(pg, source)
    assert service.run(trigger="manual", actor=ADMIN).success
    before, audits = fingerprint(pg), len(audit_rows(pg))
    source.entries = changed_catalogue()  # both an INSERT and an UPDATE statement to write
    with admin_pg.begin() as conn:
        conn.exec_driver_sql(SLOW_WRITE.format(seconds=30, events=statement))

    thread, box = _in_thread(lambda: service.run(trigger="manual", actor=ADMIN))
    pid = _wait_for(
        admin_pg,
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
        f"AND query LIKE '%{WRITE_QUERY[statement]}' AND datname = current_database()",
    )
    with admin_pg.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    thread.join(20)
    result = box["result"]
    assert not result.success and result.error_kind == "database"
    assert result.error_message.startswith("Database error, nothing was written")
    assert fingerprint(pg) == before  # INSERTs done before the UPDATE rolled back too
    last = audit_rows(pg)
    assert len(last) == audits + 1 and last[-1]["success"] is False
    assert last[-1]["error_message"] == result.error_message
    assert lock_is_free(pg)

    with admin_pg.begin() as conn:
        conn.exec_driver_sql(DROP_SLOW)
    base = current_rows(pg)
    retry = service.run(trigger="manual", actor=ADMIN)
    assert retry.success and retry.new_models == 50 and retry.updated_models == 8
    assert current_rows(pg) == expected_rows(source.entries, base, mark_unavailable=True)
    assert lock_is_free(pg, wait=0)


class BlockingSource(StaticSource):
    """Blocks in fetch_entries until released, to act at a known moment inside the lock."""

    def __init__(self, entries=None):
        super().__init__(entries)
        self.entered, self.release = threading.Event(), threading.Event()

    def fetch_entries(self):
        self.entered.set()
        assert self.release.wait(20)
        return super().fetch_entries()


def test_lock_connection_terminated_mid_sync_refuses_to_commit(pg, admin_pg):
    """The advisory lock dies with its session: a sync that lost it must not commit, since
    another sync may already be running."""
    source = BlockingSource()
    source.release.set()
    service = SyncService(pg, source)
    assert service.run(trigger="manual", actor=ADMIN).success
    before = fingerprint(pg)
    source.entries = changed_catalogue()
    source.entered.clear()
    source.release.clear()
    thread, box = _in_thread(lambda: service.run(trigger="manual", actor=ADMIN))
    assert source.entered.wait(10)
    pid = _wait_for(
        admin_pg,
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE "
        "'litemaas-sync lock:%' AND datname = current_database()",
    )
    with admin_pg.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    assert lock_is_free(pg)  # another replica could take it now ...
    source.release.set()
    thread.join(20)
    result = box["result"]
    assert not result.success and result.error_kind == "database"  # ... so this one stops
    assert "lost its lock" in result.error_message
    assert fingerprint(pg) == before
    assert audit_rows(pg)[-1]["success"] is False
    assert lock_is_free(pg)
    assert service.run(trigger="manual", actor=ADMIN).success
    assert fingerprint(pg) != before


def test_statement_timeout_rolls_back(pg_url, admin_pg):
    engine = make_engine(pg_url)
    service = SyncService(engine, StaticSource())
    assert service.run(trigger="manual", actor=ADMIN).success
    before = fingerprint(engine)
    engine.dispose()
    with admin_pg.begin() as conn:
        conn.exec_driver_sql(SLOW_WRITE.format(seconds=2, events="INSERT OR UPDATE"))
        conn.exec_driver_sql(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %%I SET "
            "statement_timeout = 300', current_database()); END $$"
        )
    engine = make_engine(pg_url)  # new sessions get the timeout
    source = StaticSource(changed_catalogue())
    service = SyncService(engine, source)
    started = time.monotonic()
    result = service.run(trigger="manual", actor=ADMIN)
    assert time.monotonic() - started < 2
    assert not result.success and result.error_kind == "database"
    assert "QueryCanceled" in result.error_message and "statement timeout" in result.error_message
    assert fingerprint(engine) == before
    assert audit_rows(engine)[-1]["success"] is False
    assert lock_is_free(engine)
    with admin_pg.begin() as conn:
        conn.exec_driver_sql(DROP_SLOW)
    assert service.run(trigger="manual", actor=ADMIN).success  # the timeout stays: fast is fine
    assert len(current_rows(engine)) == 58
    engine.dispose()


def test_unreachable_server(pg_url, tmp_path):
    url = "postgresql://postgres:pw-hidden-4411@127.0.0.1:1/nothing"
    engine = make_engine(url)
    service = SyncService(engine, StaticSource())
    with pytest.raises(DatabaseError) as caught:
        service.run(trigger="manual", actor=ADMIN)
    assert "nothing was written" in str(caught.value) and "pw-hidden" not in str(caught.value)

    import sync_core.api as api
    settings = Settings(database_url=url, sync_api_token=Secret("tok"))
    runtime = build_runtime(settings, source=StaticSource(), engine=engine)
    answer = api.handle_sync(runtime, authorization="Bearer tok", body=b"{}")
    assert answer.status in (500, 503) and answer.body["error"] == "database"
    assert "pw-hidden" not in json.dumps(answer.body)

    done = run_cli(["sync", "--json"], cli_env(url, None), fast=False)
    assert done.returncode == 1 and "Database error" in done.stderr
    assert "pw-hidden" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    engine.dispose()


POISON = {
    "postgresql": """
CREATE FUNCTION reliability_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.id = 'gpt-4o' THEN RAISE EXCEPTION 'poisoned row' USING ERRCODE = '23514'; END IF;
RETURN NEW; END $$;
CREATE TRIGGER reliability_poison BEFORE UPDATE ON models
FOR EACH ROW EXECUTE FUNCTION reliability_poison();""",
    "sqlite": """
CREATE TRIGGER reliability_poison BEFORE UPDATE ON models WHEN NEW.id = 'gpt-4o'
BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;""",
}


def test_constraint_violation_on_one_row_writes_nothing(db_url, request):
    """One row refused by the database → the 50 inserts and 7 other updates roll back too."""
    kind = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    engine = make_engine(db_url)
    source = StaticSource()
    service = SyncService(engine, source)
    assert service.run(trigger="manual", actor=ADMIN).success
    before = fingerprint(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if kind == "sqlite":
            cursor.execute(POISON[kind])
        else:
            cursor.execute(POISON[kind])
        raw.commit()
    finally:
        raw.close()
    source.entries = changed_catalogue()
    result = service.run(trigger="manual", actor=ADMIN)
    assert not result.success and result.error_kind == "database"
    assert "poisoned row" in result.error_message
    assert fingerprint(engine) == before
    assert audit_rows(engine)[-1]["success"] is False
    assert lock_is_free(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER reliability_poison" + (" ON models" if kind == "postgresql" else "")
        )
    base = current_rows(engine)
    assert service.run(trigger="manual", actor=ADMIN).success
    assert current_rows(engine) == expected_rows(source.entries, base, mark_unavailable=True)
    engine.dispose()
