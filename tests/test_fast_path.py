"""The re-sync fast path: taken only when LiteLLM's answer and the database are exactly as the
last successful sync left them; any write, any upstream change or option change takes the full
path (which, for litellm_wins, reverts an admin's edit of a synced field)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from sync_core.access import SYSTEM
from sync_core.config import Secret
from sync_core.control import set_policy
from sync_core.litellm import LiteLLMClient
from sync_core.plan import SyncOptions
from sync_core.policy import ModelPolicy
from sync_core.sync import SyncService
from tests.factories import entry, real_entries
from tests.fake_litellm import FakeLiteLLM

KEY = "sk-fast-path"


@pytest.fixture
def fake():
    with FakeLiteLLM(real_entries() + [entry("x" * 300)], key=KEY) as server:
        yield server


def run(service, **kwargs):
    options = kwargs.pop("options", SyncOptions())
    return service.run(options, trigger="manual", actor=SYSTEM, **kwargs)


def price(engine, model_id):
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT input_cost_per_token FROM models WHERE id = :i"),
                             {"i": model_id}).scalar()
    return Decimal(str(value))


def test_unchanged_resync_skips_the_work_and_reports_the_same_counts(engine, fake):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    first = run(service)
    assert first.success and not first.fast_path and first.new_models == 8
    again = run(service)
    assert again.success and again.fast_path
    assert (again.total_models, again.unchanged_models, again.new_models) == (9, 8, 0)
    assert again.errors == first.errors and len(again.errors) == 1  # the 300-char name
    slow = service.preview()
    assert not slow.has_changes  # what the full path would have found


def test_any_write_or_upstream_change_takes_the_full_path(engine, fake):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    with engine.begin() as conn:  # an admin edits a synced field by hand
        conn.execute(sa.text("UPDATE models SET input_cost_per_token = 0.5 WHERE id = 'gpt-4o'"))
    reverted = run(service)
    assert not reverted.fast_path and reverted.updated_models == 1
    assert price(engine, "gpt-4o") == Decimal("0.0000025")
    assert run(service).fast_path

    fake.entries = real_entries()[:-1]  # LiteLLM changes
    changed = run(service)
    assert not changed.fast_path and changed.unavailable_models == 1
    assert run(service).fast_path

    set_policy(engine, "gpt-4o", ModelPolicy(pinned=True), SYSTEM)  # a policy changes
    assert not run(service).fast_path
    assert not run(service, options=SyncOptions(force_update=True)).fast_path
    assert not run(service, options=SyncOptions(mark_unavailable=False)).fast_path
    plan = service.preview()
    checked = run(service, expected_fingerprint=plan.fingerprint)
    assert checked.success and not checked.fast_path  # a reviewed plan is always checked


def test_sqlite_sees_a_write_the_timestamps_miss(sqlite_url, fake):
    """SQLite's timestamps have whole seconds, and an edit in the sync's second leaves the newest
    one where it was: the write counter sees it (here the edited row's time is set back, so
    nothing but the counter moves)."""
    from sync_core.db import create_db_engine

    engine = create_db_engine(sqlite_url)
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    assert run(service).success and run(service).fast_path
    with engine.begin() as conn:  # a price edited, the row's time set back: the newest time,
        conn.execute(sa.text(  # the counts and the descriptions all stay as recorded
            "UPDATE models SET input_cost_per_token = 0.5, updated_at = '2000-01-01 00:00:00' "
            "WHERE id = 'gpt-4o'"))
    reverted = run(service)
    assert not reverted.fast_path and reverted.updated_models == 1
    assert run(service).fast_path
    engine.dispose()
