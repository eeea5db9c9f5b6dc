"""The database work of a sync is set-based: the SQL statements per sync do not grow with N.

Counted with SQLAlchemy's ``before_cursor_execute`` event (the store announces its COPY and
driver-cursor statements to it too), on PostgreSQL and SQLite, for a first sync (inserts), a
sync that rewrites half the models and marks some unavailable, and a sync with nothing to do.
A count, never a time.
"""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from benchmarks.catalogue import change_some, generate_entries
from sync_core.access import SYSTEM
from sync_core.db import create_db_engine
from sync_core.litellm import LiteLLMClient
from sync_core.sync import SyncService
from tests.factories import StaticSource
from tests.fake_litellm import FakeLiteLLM


def _statements(engine, service) -> tuple[int, list[str]]:
    seen: list[str] = []

    def on_execute(_conn, _cursor, statement, *_args):
        seen.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        result = service.run(trigger="cli", actor=SYSTEM)
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    assert result.success, result.error_message
    return len(seen), seen


def _scenarios(db_url: str, n: int, over_http: bool) -> dict[str, tuple[int, list[str]]]:
    engine = create_db_engine(db_url)
    entries = generate_entries(n, seed=3)
    try:
        with contextlib.ExitStack() as scope:
            with engine.begin() as conn:  # a first sync: no rows, no records of earlier ones
                conn.execute(sa.text("DELETE FROM models"))
                conn.execute(sa.text("DELETE FROM model_sync_records"))
            if over_http:  # the answer's bytes: split, recognised, rows streamed (row_stage)
                source = scope.enter_context(FakeLiteLLM(entries, key=None))
                service = SyncService(engine, LiteLLMClient(source.url, None))
            else:
                source = StaticSource(entries)
                service = SyncService(engine, source)
            counts = {"first": _statements(engine, service)}
            counts["unchanged"] = _statements(engine, service)
            change_some(entries, 0.5)
            source.entries = entries[: n - n // 10]  # and a tenth no longer served
            counts["changed"] = _statements(engine, service)
        with engine.connect() as conn:
            total = conn.execute(sa.text("SELECT count(*) FROM models")).scalar()
        assert total == n
        return counts
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("over_http", [False, True], ids=["entries", "http"])
def test_statements_per_sync_are_the_same_for_100_and_5000_models(db_url, over_http):
    small = _scenarios(db_url, 100, over_http)
    large = _scenarios(db_url, 5000, over_http)
    assert small == large
    first_count, first = small["first"]
    assert first_count < 25
    assert "COPY" in first if db_url.startswith("postgresql") else "COPY" not in first
