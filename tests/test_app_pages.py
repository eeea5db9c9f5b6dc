"""Every dashboard page under AppTest, on seeded SQLite (demo mode) and on an empty database.

The app is driven through ``app.py`` exactly as a browser session runs it: navigation, the
cached runtime (start-up once), the role, and the page. Assertions read what the page shows and
what the database holds afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from pages.ui import plain
from sync_core import audit
from sync_core import catalogue_queries as cq
from sync_core.api import get_app_runtime
from sync_core.config import Settings
from sync_core.db import create_db_engine
from tests.factories import entry
from tests.test_app_support import APP, StubLiteLLM, app_env, stub_litellm  # noqa: F401

TIMEOUT = 60


def open_page(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements: Any) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.fixture
def demo(app_env, sqlite_url: str) -> str:  # noqa: F811
    """Demo mode on a fresh SQLite file: seeded from the older mock snapshot at start-up."""
    app_env(DATABASE_URL=sqlite_url)
    return sqlite_url


@pytest.fixture
def empty_production(app_env, sqlite_url: str, stub_litellm: StubLiteLLM) -> str:  # noqa: F811
    """Production, no login configured, LiteLLM serving nothing: an empty database, a viewer."""
    app_env(DATABASE_URL=sqlite_url, NODE_ENV="production", LITELLM_API_URL=stub_litellm.url)
    return sqlite_url


# --- catalogue ----------------------------------------------------------------------------------


def test_catalogue_renders_seeded_models_with_demo_banner(demo: str) -> None:
    at = open_page()
    assert at.title[0].value == "Catalogue"
    assert "Demo mode" in texts(at.info)
    engine = create_db_engine(demo)
    total = len(cq.list_models(engine))
    assert total > 10
    assert metrics(at)["Models"] == str(total)
    table = at.dataframe[0].value
    assert len(table) == total
    assert {"input_per_1m", "output_per_1m", "availability"} <= set(table.columns)
    assert at.get("download_button")[0].label == "Download this view as CSV"


def test_catalogue_filters_change_rows_and_land_in_the_url(demo: str) -> None:
    at = open_page()
    everything = len(at.dataframe[0].value)
    at.text_input(key="cat_q").input("claude").run()
    rows = at.dataframe[0].value
    assert 0 < len(rows) < everything
    assert all("claude" in name.lower() for name in rows["name"])
    assert at.query_params["q"] == "claude"

    at.text_input(key="cat_q").input("").run()
    at.multiselect(key="cat_provider").set_value(["anthropic"]).run()
    assert set(at.dataframe[0].value["provider"]) == {"anthropic"}
    assert at.query_params["provider"] == "anthropic"
    at.multiselect(key="cat_cap").set_value(["vision"]).run()
    assert at.query_params["cap"] == "vision"


def test_catalogue_filters_are_read_from_a_shared_link(demo: str) -> None:
    at = open_page(provider="anthropic", availability="available")
    rows = at.dataframe[0].value
    assert len(rows) > 0 and set(rows["provider"]) == {"anthropic"}
    at = open_page(q="no-such-model-anywhere")
    assert len(at.dataframe) == 0
    assert "No model matches these filters." in texts(at.info)


def test_opening_a_model_shows_raw_data_and_change_history(demo: str) -> None:
    at = open_page()
    model_id = at.dataframe[0].value["name"].iloc[0]
    at.selectbox(key="cat_model").set_value(model_id).run()
    assert not at.exception
    assert at.query_params["model"] == model_id
    assert at.subheader[-1].value == plain(model_id)  # shown as text, not Markdown
    raw = [j.value for j in at.json]
    assert any("model_info" in str(v) and "litellm_params" in str(v) for v in raw)
    assert "api_key" not in " ".join(str(v) for v in raw)


# --- diff and sync ------------------------------------------------------------------------------


def test_diff_shows_real_changes_on_first_demo_visit(demo: str) -> None:
    at = open_page("pages/diff.py")
    counts = metrics(at)
    assert int(counts["New"]) + int(counts["Changed"]) > 0
    changed_model = next(r for r in at.dataframe[0].value.itertuples() if r.action == "changed")
    at.selectbox(key="diff_model").set_value(changed_model.model).run()
    side = at.dataframe[1].value
    assert list(side.columns) == ["field", "database", "LiteLLM", "changed"]
    assert side["changed"].all() and len(side) > 0
    at.radio(key="diff_mode").set_value("All fields").run()
    assert len(at.dataframe[1].value) > len(side)


def test_diff_action_filter_changes_rows(demo: str) -> None:
    at = open_page("pages/diff.py")
    before = len(at.dataframe[0].value)
    at.multiselect(key="diff_actions").set_value(["new"]).run()
    rows = at.dataframe[0].value
    assert 0 < len(rows) < before and set(rows["action"]) == {"new"}


def test_admin_reviews_the_diff_then_syncs_and_the_database_follows(demo: str) -> None:
    at = open_page("pages/diff.py")
    pending = int(metrics(at)["New"])
    assert pending > 0
    at.button[-1].click().run()  # "Review and sync this plan" switches to the Sync page
    assert at.title[0].value == "Sync"
    at.switch_page("pages/sync.py").run()  # AppTest reruns its own page unless told
    assert "Applying the plan reviewed on the Diff page" in texts(at.info)
    if at.checkbox:  # models to mark unavailable are listed and must be confirmed
        assert at.button(key="sync_run").disabled
        at.checkbox(key="sync_confirm").check().run()
    at.text_input(key="sync_reason").input("reviewed in test").run()
    at.button(key="sync_run").click().run()
    assert not at.exception
    assert "Synced at" in texts(at.success)

    runtime = get_app_runtime(Settings.from_env())
    assert not runtime.service.preview().has_changes
    last = audit.last_sync(runtime.runtime.engine)
    assert last["success"] and last["metadata"]["trigger"] == "manual"
    assert last["metadata"]["reason"] == "reviewed in test"
    assert last["metadata"]["actor"] == "local-admin"
    recorded = audit.list_audit(runtime.runtime.engine, action=cq.CHANGES_ACTION, limit=1)
    changed_id = recorded[0]["metadata"]["changes"][0]["model_id"]
    history = cq.model_history(runtime.runtime.engine, changed_id)
    assert history and history[0]["trigger"] == "manual"


def test_a_stale_plan_is_refused_and_nothing_is_written(demo: str) -> None:
    at = open_page("pages/diff.py")
    at.button[-1].click().run()
    assert at.title[0].value == "Sync"
    at.switch_page("pages/sync.py").run()
    engine = create_db_engine(demo)
    with engine.begin() as conn:  # someone changes the database after the review
        conn.execute(
            sa.text(
                "UPDATE models SET context_length = 7 WHERE id = "
                "(SELECT id FROM models ORDER BY id LIMIT 1)"
            )
        )
        before = conn.execute(sa.text("SELECT count(*) FROM models")).scalar()
    if at.checkbox:
        at.checkbox(key="sync_confirm").check().run()
    at.button(key="sync_run").click().run()
    assert "Stale plan" in texts(at.error)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM models")).scalar() == before
        assert (
            conn.execute(sa.text("SELECT count(*) FROM models WHERE context_length = 7")).scalar()
            == 1
        )
    assert audit.last_sync(engine)["error_message"].startswith("Stale plan")


def test_a_viewer_cannot_sync(empty_production: str, stub_litellm: StubLiteLLM) -> None:  # noqa: F811
    at = open_page()  # start-up syncs the empty catalogue; then LiteLLM gains two models
    assert "Read-only" in texts(at.warning)
    stub_litellm.entries = [entry("m1"), entry("m2")]
    get_app_runtime(Settings.from_env()).runtime.source.clear_cache()
    at.switch_page("pages/sync.py").run()
    assert "New" in metrics(at) and metrics(at)["New"] == "2"
    button = at.button(key="sync_run")
    assert button.disabled
    assert "Only admins can sync" in button.help
    engine = create_db_engine(empty_production)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM models")).scalar() == 0


# --- empty database, audit log, health ----------------------------------------------------------


@pytest.mark.parametrize(
    "page,title",
    [
        ("pages/catalogue.py", "Catalogue"),
        ("pages/diff.py", "Diff"),
        ("pages/sync.py", "Sync"),
        ("pages/audit_log.py", "Audit log"),
        ("pages/health.py", "Health"),
        ("pages/restore.py", "Restore"),
    ],
)
def test_every_page_renders_on_an_empty_database(
    empty_production: str, page: str, title: str
) -> None:
    at = open_page(page)
    assert at.title[0].value == title
    shown = texts(at.info) + texts(at.success) + texts(at.warning) + texts(at.subheader)
    expected = {
        "Catalogue": "The catalogue is empty",
        "Diff": "LiteLLM and the database agree",
        "Sync": "a sync now would change nothing",
        "Audit log": "1 entry",  # the start-up sync, which found nothing to do
        "Health": "Models in the database",
        "Restore": "No snapshot is kept yet",
    }[title]
    assert expected in shown or expected in str(metrics(at))


def test_audit_log_lists_syncs_and_filters_them(demo: str) -> None:
    at = open_page("pages/audit_log.py")
    rows = at.dataframe[0].value
    assert len(rows) >= 1 and rows["action"].eq("MODELS_SYNC").all()
    assert len(at.get("plotly_chart")) == 2
    at.selectbox(key="audit_outcome").set_value("failure").run()
    assert "No audit entry matches these filters" in texts(at.info)
    at.selectbox(key="audit_outcome").set_value("any").run()
    at.text_input(key="audit_actor").input("demo-seed").run()
    assert set(at.dataframe[0].value["actor"]) == {"demo-seed"}


def test_health_page_shows_tiles_checks_and_charts(demo: str) -> None:
    at = open_page("pages/health.py")
    shown = metrics(at)
    assert shown["LiteLLM"] == "reachable" and shown["Database"] == "ok"
    assert int(shown["Pending changes"]) > 0
    assert any("Wildcard routes" in e.label for e in at.expander)
    assert len(at.get("plotly_chart")) >= 2


def test_start_up_runs_once_per_process(demo: str) -> None:
    for _ in range(3):
        open_page()
    open_page("pages/health.py")
    engine = create_db_engine(demo)
    startups = [r for r in cq.sync_runs(engine) if r["trigger"] == "startup"]
    assert len(startups) == 1


def test_health_page_pause_switch_is_shared_and_admin_only(demo: str) -> None:
    from sync_core.control import SCHEDULER_PAUSED, get_control

    at = open_page("pages/health.py")
    assert metrics(at)["Schedule"] == "off"
    switch = at.toggle[0]
    assert switch.label == "Pause scheduled syncs" and not switch.disabled
    switch.set_value(True).run()
    engine = create_db_engine(demo)
    state = get_control(engine, SCHEDULER_PAUSED)
    assert state["paused"] is True and state["by"] == "local-admin"
    assert metrics(at)["Next run"] == "paused"


def test_health_page_pause_switch_is_disabled_for_viewers(empty_production: str) -> None:
    at = open_page("pages/health.py")
    assert at.toggle[0].disabled


def test_diff_page_explains_both_toggles_from_one_plan(demo: str) -> None:
    at = open_page("pages/diff.py")
    explained = texts(at.markdown)
    assert "**forceUpdate** rewrites 11 models that have not changed" in explained
    assert "**markUnavailable** marks 1 models unavailable:" in explained
    assert "gpt-4-turbo" in texts(at.text)


def test_health_page_runs_the_doctor_checklist_on_request(demo: str) -> None:
    at = open_page("pages/health.py")
    before = len(at.dataframe)  # nothing is fetched until asked
    at.button(key="health_doctor").click().run()
    assert len(at.dataframe) == before + 1
    table = at.dataframe[-1].value
    assert {"database", "migrations", "litellm"} <= set(table["check"])
    assert "Nothing fails." in texts(at.success)


def test_markdown_and_html_in_model_names_are_shown_as_plain_text(
    app_env, sqlite_url: str, stub_litellm: StubLiteLLM  # noqa: F811
) -> None:
    hostile = "[x](http://evil.example) ![i](http://evil.example/i.png) <b>bold</b> :smile:"
    stub_litellm.entries = [entry(hostile, description="<script>alert(1)</script> **loud**")]
    app_env(DATABASE_URL=sqlite_url, LITELLM_API_URL=stub_litellm.url)
    at = open_page()
    assert hostile in set(at.dataframe[0].value["name"])  # stored and listed verbatim
    at.selectbox(key="cat_model").set_value(hostile).run()
    shown = at.subheader[-1].value
    assert shown == plain(hostile)
    for markup in ("](", "<b>", ":smile:"):
        assert markup not in shown  # no link, image, tag or emoji code survives as markup
    assert r"evil\.example" in shown  # the text itself is kept, escaped
