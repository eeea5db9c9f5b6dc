"""Restoring an earlier catalogue from the dashboard under AppTest (issue 6, point 5).

Each test drives ``app.py`` as a browser session does: it picks a kept snapshot on the Restore
page, reads the restore plan, applies it and checks the database and the audit log afterwards.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from sync_core import audit
from sync_core.access import Actor
from sync_core.api import get_app_runtime
from sync_core.config import Settings
from sync_core.db import create_db_engine
from sync_core.mock_litellm import MockLiteLLMClient
from sync_core.snapshots import list_snapshots
from tests.factories import entry
from tests.test_app_pages import demo, empty_production, metrics, open_page, texts  # noqa: F401
from tests.test_app_support import StubLiteLLM, app_env, stub_litellm  # noqa: F401

PAGE = "pages/restore.py"
ADMIN = Actor("admin@example.com", "admin")
NOTE = "The next sync from LiteLLM will move the catalogue again unless scheduled syncs are paused"


def runtime():  # type: ignore[no-untyped-def]
    return get_app_runtime(Settings.from_env()).runtime


def snapshots(url: str) -> list[dict]:  # type: ignore[type-arg]
    engine = create_db_engine(url)
    kept = list_snapshots(engine)
    engine.dispose()
    return kept


def availability(url: str) -> dict[str, str]:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, availability FROM models")).all())
    engine.dispose()
    return rows


def plan_row(at: AppTest, model_id: str):  # type: ignore[no-untyped-def]
    frame = at.dataframe[0].value
    found = frame[frame["model"] == model_id]
    assert len(found) == 1, (model_id, frame)
    return found.iloc[0]


def test_restoring_the_seed_snapshot_brings_the_catalogue_back(demo: str) -> None:  # noqa: F811
    open_page()  # demo start-up seeds the older mock catalogue: the first snapshot
    [seed] = snapshots(demo)
    before = availability(demo)
    assert before["gpt-4-turbo"] == "available"

    synced = runtime().service.run(trigger="manual", actor=ADMIN)  # the current mock catalogue
    assert synced.success and synced.unavailable_models >= 1 and synced.new_models == 2
    after_sync = availability(demo)
    assert after_sync["gpt-4-turbo"] == "unavailable"
    added = sorted(set(after_sync) - set(before))
    assert len(added) == 2
    kept = snapshots(demo)
    assert [s["sync_audit_id"] for s in kept] == [synced.audit_id, seed["sync_audit_id"]]

    at = open_page(PAGE)
    assert at.title[0].value == "Restore"
    assert "Choose a snapshot" in texts(at.info)
    picker = at.selectbox(key="restore_pick")
    assert picker.options[0].endswith("· latest") and synced.audit_id in picker.options[0]
    assert seed["sync_audit_id"] in picker.options[1]
    assert f"{seed['model_count']} models" in picker.options[1]
    assert not [b for b in at.get("button") if b.key == "restore_run"]  # no plan chosen yet

    picker.set_value(seed["sync_audit_id"]).run()
    assert not at.exception, [e.value for e in at.exception]
    counts = metrics(at)
    assert counts["Restored"] == "1"  # gpt-4-turbo becomes available again
    assert counts["To mark unavailable"] == "2"  # the two models the sync added
    assert int(counts["Changed"]) >= 1
    assert plan_row(at, "gpt-4-turbo")["action"] == "restored"
    for model_id in added:
        assert plan_row(at, model_id)["action"] == "to mark unavailable"
    assert set(at.dataframe[0].value["action"]) <= {
        "restored",
        "to mark unavailable",
        "changed",
    }
    assert NOTE in texts(at.info)
    # 2 of the available models: under the share that asks for the typed number
    assert "restore_confirm_count" not in [t.key for t in at.text_input]
    button = at.button(key="restore_run")
    assert not button.disabled

    at.text_input(key="restore_reason").input("undo the test sync").run()
    at.button(key="restore_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Restored the catalogue of sync " + seed["sync_audit_id"] in texts(at.success)
    assert "restoring it would change nothing" in texts(at.success)  # the fresh plan is empty
    assert at.button(key="restore_run").disabled

    restored = availability(demo)
    assert restored["gpt-4-turbo"] == "available"
    assert all(restored[m] == "unavailable" for m in added)
    assert {m for m, a in restored.items() if a == "available"} == {
        m for m, a in before.items() if a == "available"
    }
    engine = create_db_engine(demo)
    last = audit.last_sync(engine)
    engine.dispose()
    assert last["success"] and last["metadata"]["trigger"] == "manual"
    reason = last["metadata"]["reason"]
    assert f"restore the catalogue as it stood after sync {seed['sync_audit_id']}" in reason
    assert reason.endswith(": undo the test sync")
    assert last["metadata"]["counts"]["restored"] == 1


def test_a_changed_database_makes_the_shown_plan_stale(demo: str) -> None:  # noqa: F811
    open_page()
    [seed] = snapshots(demo)
    assert runtime().service.run(trigger="manual", actor=ADMIN).success
    at = open_page(PAGE)
    at.selectbox(key="restore_pick").set_value(seed["sync_audit_id"]).run()
    assert metrics(at)["Restored"] == "1"

    engine = create_db_engine(demo)  # somebody else changes the database meanwhile
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE models SET availability = 'available' WHERE id = 'gpt-4-turbo'")
        )
    at.button(key="restore_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Restore refused: Stale plan" in texts(at.error)
    assert metrics(at)["Restored"] == "0"  # the page now shows the current plan
    assert availability(demo)["gpt-4-turbo"] == "available"

    at.button(key="restore_run").click().run()  # the current plan, reviewed: applies
    assert "Restored the catalogue of sync" in texts(at.success)
    engine.dispose()


def test_a_viewer_sees_the_restore_plan_with_the_button_disabled(
    app_env,  # noqa: F811
    sqlite_url: str,
    stub_litellm: StubLiteLLM,  # noqa: F811
) -> None:
    stub_litellm.entries = [entry("m1"), entry("m2")]
    app_env(DATABASE_URL=sqlite_url, NODE_ENV="production", LITELLM_API_URL=stub_litellm.url)
    open_page()  # start-up syncs m1 and m2: the first snapshot
    stub_litellm.entries = [entry("m1"), entry("m2"), entry("m3")]
    runtime().source.clear_cache()
    assert runtime().service.run(trigger="manual", actor=ADMIN).success
    first = snapshots(sqlite_url)[-1]

    at = open_page()  # production without login: a viewer
    assert "Read-only" in texts(at.warning)
    at.switch_page(PAGE).run()
    at.selectbox(key="restore_pick").set_value(first["sync_audit_id"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert metrics(at)["To mark unavailable"] == "1"
    assert plan_row(at, "m3")["action"] == "to mark unavailable"
    button = at.button(key="restore_run")
    assert button.disabled and "Only admins can restore" in button.help
    assert "Only admins can restore" in texts(at.caption)
    assert at.text_input(key="restore_reason").disabled
    assert availability(sqlite_url) == {"m1": "available", "m2": "available", "m3": "available"}


def test_no_snapshot_kept_shows_an_explanatory_empty_state(empty_production: str) -> None:  # noqa: F811
    at = open_page(PAGE)  # LiteLLM serves nothing: the start-up sync changed nothing
    assert snapshots(empty_production) == []
    assert at.title[0].value == "Restore"
    assert "No snapshot is kept yet" in texts(at.info)
    assert len(at.selectbox) == 0 and len(at.get("button")) == 0


def test_restore_from_the_page_on_postgres(app_env, pg_url: str) -> None:  # noqa: F811
    app_env(DATABASE_URL=pg_url)  # mock catalogue, real start-up sync into PostgreSQL
    open_page()
    [current] = snapshots(pg_url)
    assert "gpt-4-turbo" not in availability(pg_url)  # the current mock no longer serves it
    older = runtime().service_for(MockLiteLLMClient("previous"))
    assert older.run(trigger="manual", actor=ADMIN).success
    assert availability(pg_url)["gpt-4-turbo"] == "available"

    at = open_page(PAGE)
    at.selectbox(key="restore_pick").set_value(current["sync_audit_id"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert plan_row(at, "gpt-4-turbo")["action"] == "to mark unavailable"
    at.button(key="restore_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Restored the catalogue of sync" in texts(at.success)
    assert availability(pg_url)["gpt-4-turbo"] == "unavailable"
    engine = create_db_engine(pg_url)
    reason = audit.last_sync(engine)["metadata"]["reason"]
    engine.dispose()
    assert reason == f"restore the catalogue as it stood after sync {current['sync_audit_id']}"


def test_a_plan_shown_too_long_ago_expires_and_is_reviewed_again(demo: str) -> None:  # noqa: F811
    open_page()
    [seed] = snapshots(demo)
    assert runtime().service.run(trigger="manual", actor=ADMIN).success
    at = open_page(PAGE)
    at.selectbox(key="restore_pick").set_value(seed["sync_audit_id"]).run()
    shown = at.session_state["_restore_review"]
    at.session_state["_restore_review"] = {
        **shown,
        "reviewed_at": shown["reviewed_at"] - timedelta(hours=1),
    }
    at.button(key="restore_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Restore refused: The reviewed plan is 60 minutes old" in texts(at.error)
    assert availability(demo)["gpt-4-turbo"] == "unavailable"  # nothing was written
    at.button(key="restore_run").click().run()  # shown again just now: a fresh review
    assert "Restored the catalogue of sync" in texts(at.success)
    assert availability(demo)["gpt-4-turbo"] == "available"
