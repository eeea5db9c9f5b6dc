"""Admin policies in the dashboard under AppTest: pins and protected fields from the catalogue,
held and suspicious changes and their approval on the Diff page, "apply only these", the
mass-unavailable confirmation and the reviewed plan's expiry on the Sync page.

Each test drives ``app.py`` as a browser session does and checks the database afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from pages import ui
from sync_core import audit, control
from sync_core.api import get_app_runtime
from sync_core.config import Settings
from sync_core.db import create_db_engine
from sync_core.scheduler import SCHEDULER_ACTOR
from tests.factories import entry
from tests.test_app_pages import demo, metrics, open_page, texts  # noqa: F401
from tests.test_app_support import StubLiteLLM, app_env, stub_litellm  # noqa: F401


def service():  # type: ignore[no-untyped-def]
    return get_app_runtime(Settings.from_env()).service


def refetch() -> None:
    """Page views use a cached catalogue; the tests change LiteLLM between page runs."""
    get_app_runtime(Settings.from_env()).runtime.source.clear_cache()


def row(at: AppTest, model_id: str, table: int = 0):  # type: ignore[no-untyped-def]
    frame = at.dataframe[table].value
    found = frame[frame["model"] == model_id]
    assert len(found) == 1, (model_id, frame)
    return found.iloc[0]


def policies(url: str) -> dict:  # type: ignore[type-arg]
    engine = create_db_engine(url)
    with engine.connect() as conn:
        found = control.read_policies(conn)
    engine.dispose()
    return found


def open_model(at: AppTest, model_id: str) -> None:
    at.selectbox(key="cat_model").set_value(model_id).run()
    assert not at.exception, [e.value for e in at.exception]


def save_policy(at: AppTest, model_id: str, *, pin: bool, protect: list[str]) -> None:
    open_model(at, model_id)
    at.toggle(key="cat_pin").set_value(pin).run()
    at.multiselect(key="cat_protect").set_value(protect).run()
    at.button(key="cat_policy_save").click().run()
    assert not at.exception, [e.value for e in at.exception]


def availability(url: str, model_id: str) -> str | None:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT availability FROM models WHERE id = :id"), {"id": model_id}
        ).scalar()
    engine.dispose()
    return value


# --- pins and protected fields ------------------------------------------------------------------


def test_pin_and_protect_from_the_catalogue_reach_the_database_and_the_diff(demo: str) -> None:  # noqa: F811
    at = open_page()
    # deepseek-chat changes its prices and context length in LiteLLM; gpt-4-turbo is gone.
    save_policy(at, "deepseek-chat", pin=False, protect=["input_cost_per_token"])
    assert "Policy saved" in texts(at.success)
    save_policy(at, "gpt-4-turbo", pin=True, protect=[])

    saved = policies(demo)
    assert saved["deepseek-chat"].protected_fields == {"input_cost_per_token"}
    assert not saved["deepseek-chat"].pinned
    assert saved["gpt-4-turbo"].pinned
    assert "Current: 📌 pinned." in texts(at.caption)
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["gpt-4-turbo", "policy"] == "📌 pinned"
    assert table.loc["deepseek-chat", "policy"] == "🔒 input_cost_per_token"
    assert table.loc["claude-sonnet-4-5", "policy"] == ""

    at.switch_page("pages/diff.py").run()
    assert not at.exception
    assert metrics(at)["To mark unavailable"] == "0"  # the pinned model stays available
    deepseek = row(at, "deepseek-chat")
    assert deepseek["held back"] == "input_cost_per_token (protected)"
    assert "input_cost_per_token" not in deepseek["changed fields"]
    assert "output_cost_per_token" in deepseek["changed fields"]

    at.selectbox(key="diff_model").set_value("deepseek-chat").run()
    side = at.dataframe[1].value.set_index("field")
    assert side.loc["input_cost_per_token", "note"] == "held: protected by an admin"
    assert not side.loc["input_cost_per_token", "changed"]
    assert side.loc["output_cost_per_token", "changed"]
    assert side.loc["output_cost_per_token", "note"] == ""

    # The reviewed plan keeps the protected price and the pinned model.
    at.button[-1].click().run()
    at.switch_page("pages/sync.py").run()
    assert "Applying the plan reviewed on the Diff page" in texts(at.info)
    at.button(key="sync_run").click().run()
    assert "Synced at" in texts(at.success)
    assert availability(demo, "gpt-4-turbo") == "available"
    assert not service().preview().has_changes
    kept = service().preview().actions
    assert next(a for a in kept if a.model_id == "deepseek-chat").held


def test_a_viewer_sees_the_policy_and_approval_controls_disabled(
    app_env,  # noqa: F811
    sqlite_url: str,
    stub_litellm: StubLiteLLM,  # noqa: F811
) -> None:
    stub_litellm.entries = [entry("m1"), entry("m2")]
    app_env(DATABASE_URL=sqlite_url, NODE_ENV="production", LITELLM_API_URL=stub_litellm.url)
    at = open_page()  # start-up syncs m1 and m2; this anonymous visitor is a viewer
    assert "Read-only" in texts(at.warning)
    open_model(at, "m1")
    assert at.toggle(key="cat_pin").disabled
    assert at.multiselect(key="cat_protect").disabled
    save = at.button(key="cat_policy_save")
    assert save.disabled and "Only admins can change policies" in save.help
    assert "Only admins can change policies" in texts(at.caption)
    assert policies(sqlite_url) == {}

    stub_litellm.entries = [entry("m1", input_cost_per_token=0), entry("m2")]
    refetch()
    at.switch_page("pages/diff.py").run()
    assert row(at, "m1")["suspicious"] == "⚠ input_cost_per_token"
    approve = at.button(key="diff_approve")
    assert approve.disabled and "Only admins can approve" in approve.help
    assert at.multiselect(key="diff_approve_models").disabled
    engine = create_db_engine(sqlite_url)
    assert control.approvals(engine) == frozenset()
    engine.dispose()


# --- suspicious changes -------------------------------------------------------------------------


def test_approving_a_suspicious_change_from_the_diff_lets_scheduled_syncs_apply_it(
    app_env,  # noqa: F811
    sqlite_url: str,
    stub_litellm: StubLiteLLM,  # noqa: F811
) -> None:
    stub_litellm.entries = [entry("m1"), entry("m2", max_input_tokens=100_000)]
    app_env(DATABASE_URL=sqlite_url, LITELLM_API_URL=stub_litellm.url)  # development: admin
    open_page()
    stub_litellm.entries = [entry("m1", input_cost_per_token=0), entry("m2", max_input_tokens=1000)]
    refetch()
    scheduled = service().options(hold_suspicious=True)
    before = {a.model_id: dict(a.held) for a in service().preview(scheduled).actions}
    assert "input_cost_per_token" in before["m1"] and "context_length" in before["m2"]

    at = open_page("pages/diff.py")
    assert row(at, "m1")["suspicious"] == "⚠ input_cost_per_token"
    assert row(at, "m2")["suspicious"] == "⚠ context_length"
    assert "held from scheduled syncs until approved" in texts(at.info)
    at.selectbox(key="diff_model").set_value("m1").run()
    side = at.dataframe[1].value.set_index("field")
    assert side.loc["input_cost_per_token", "note"].startswith("⚠ suspicious: a positive price")

    at.multiselect(key="diff_approve_models").set_value(["m1"]).run()
    at.button(key="diff_approve").click().run()
    assert not at.exception
    assert "Approved 1 suspicious change(s)" in texts(at.success)
    assert row(at, "m1")["suspicious"] == "⚠ input_cost_per_token (approved)"
    assert row(at, "m2")["suspicious"] == "⚠ context_length"

    engine = create_db_engine(sqlite_url)
    approved = control.approvals(engine)
    assert len(approved) == 1 and next(iter(approved)).startswith("m1\x1finput_cost_per_token\x1f")
    engine.dispose()
    after = {
        a.model_id: dict(a.held)
        for a in service().preview(service().options(hold_suspicious=True)).actions
    }
    assert after["m1"] == {} and "context_length" in after["m2"]


def test_pin_protect_and_approve_on_postgres(app_env, pg_url: str) -> None:  # noqa: F811
    app_env(DATABASE_URL=pg_url)  # mock catalogue, real start-up sync into PostgreSQL
    at = open_page()
    engine = create_db_engine(pg_url)
    with engine.begin() as conn:  # an admin's hand edit: LiteLLM's price is now 100× this one
        model_id, price = conn.execute(
            sa.text(
                "SELECT id, input_cost_per_token FROM models WHERE input_cost_per_token > 0 "
                "AND id <> 'azure-gpt-4.1' ORDER BY id LIMIT 1"  # not also a skipped duplicate
            )
        ).one()
        conn.execute(
            sa.text(
                "UPDATE models SET input_cost_per_token = :p, context_length = 7 WHERE id = :id"
            ),
            {"p": price / 100, "id": model_id},
        )
    save_policy(at, model_id, pin=True, protect=["context_length"])
    saved = policies(pg_url)[model_id]
    assert saved.pinned and saved.protected_fields == {"context_length"}

    at.switch_page("pages/diff.py").run()
    found = row(at, model_id)
    assert found["held back"] == "context_length (protected)"
    assert found["suspicious"] == "⚠ input_cost_per_token"
    at.multiselect(key="diff_approve_models").set_value([model_id]).run()
    at.button(key="diff_approve").click().run()
    assert row(at, model_id)["suspicious"] == "⚠ input_cost_per_token (approved)"
    assert any(
        k.startswith(f"{model_id}\x1finput_cost_per_token\x1f") for k in control.approvals(engine)
    )

    # A scheduled-style sync now applies the approved price and keeps the protected field.
    result = service().run(
        service().options(hold_suspicious=True), trigger="schedule", actor=SCHEDULER_ACTOR
    )
    assert result.success, result.error_message
    with engine.connect() as conn:
        context, now_price = conn.execute(
            sa.text("SELECT context_length, input_cost_per_token FROM models WHERE id = :id"),
            {"id": model_id},
        ).one()
    assert context == 7 and now_price == price
    engine.dispose()


# --- apply only these ---------------------------------------------------------------------------


def test_apply_only_these_syncs_only_the_chosen_models(demo: str) -> None:  # noqa: F811
    at = open_page("pages/diff.py")
    chosen = ["deepseek-chat", "gemini-2.5-pro"]  # one update, one insert
    assert set(chosen) <= set(at.multiselect(key="diff_only").options)
    at.multiselect(key="diff_only").set_value(chosen).run()
    assert "Only these 2 model(s): 1 new, 1 changed" in texts(at.caption)
    at.button[-1].click().run()
    at.switch_page("pages/sync.py").run()
    assert not at.exception
    reviewed = at.session_state[ui.REVIEWED_KEY]
    assert reviewed["only"] == chosen
    assert reviewed["fingerprint"] == service().preview(service().options(only=chosen)).fingerprint
    assert "Only 2 hand-picked model(s)" in texts(at.info)
    assert "it expires at" in texts(at.info)
    assert metrics(at)["New"] == "1" and metrics(at)["Changed"] == "1"
    assert metrics(at)["To mark unavailable"] == "0"
    at.button(key="sync_run").click().run()
    assert "Synced at" in texts(at.success)

    engine = create_db_engine(demo)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.text("SELECT id FROM models")).scalars())
    assert "gemini-2.5-pro" in ids and "claude-haiku-4-5" not in ids
    assert availability(demo, "gpt-4-turbo") == "available"
    left = {a.model_id: a.action for a in service().preview().actions}
    assert left["deepseek-chat"] == "unchanged" and left["mistral-large"] == "update"
    last = audit.last_sync(engine)
    assert last["metadata"]["options"]["selection"]["only"] == chosen
    engine.dispose()


# --- the Sync page's guards ---------------------------------------------------------------------


def test_marking_most_models_unavailable_needs_the_typed_number(
    app_env,  # noqa: F811
    sqlite_url: str,
    stub_litellm: StubLiteLLM,  # noqa: F811
) -> None:
    stub_litellm.entries = [entry(f"m{i}") for i in range(1, 5)]
    app_env(DATABASE_URL=sqlite_url, LITELLM_API_URL=stub_litellm.url)
    open_page()  # start-up: four available models
    stub_litellm.entries = [entry("m1")]  # three of four disappear: over half
    refetch()
    at = open_page("pages/sync.py")
    assert "3 models will be marked unavailable" in texts(at.markdown)
    assert len(at.dataframe[0].value) == 3  # the confirmation list stays
    assert "Type the number of models to mark unavailable" in texts(at.warning)
    assert not at.checkbox
    button = at.button(key="sync_run")
    assert button.disabled and "Type the number" in button.help

    at.text_input(key="sync_confirm_count").input("2").run()  # the wrong number
    at.button(key="sync_run").click().run()
    assert not at.exception
    assert "Sync refused by a safety guard" in texts(at.error)
    assert "confirm by giving the number 3" in texts(at.error)
    assert all(availability(sqlite_url, f"m{i}") == "available" for i in range(1, 5))

    at.text_input(key="sync_confirm_count").input("3").run()
    at.button(key="sync_run").click().run()
    assert "Synced at" in texts(at.success)
    assert [availability(sqlite_url, f"m{i}") for i in range(1, 5)] == [
        "available",
        "unavailable",
        "unavailable",
        "unavailable",
    ]


def test_an_expired_review_is_refused_with_its_message(demo: str) -> None:  # noqa: F811
    at = open_page("pages/diff.py")
    at.button[-1].click().run()
    at.switch_page("pages/sync.py").run()
    reviewed = dict(at.session_state[ui.REVIEWED_KEY])
    reviewed["reviewed_at"] = datetime.now(UTC) - timedelta(minutes=20)
    at.session_state[ui.REVIEWED_KEY] = reviewed
    at.run()
    assert "This review has expired" in texts(at.warning)
    if at.checkbox:
        at.checkbox(key="sync_confirm").check().run()
    engine = create_db_engine(demo)
    syncs_before = len(audit.list_audit(engine, action=audit.SYNC_ACTION, limit=100))
    at.button(key="sync_run").click().run()
    assert not at.exception
    shown = texts(at.error)
    assert "The reviewed plan is 20 minutes old (plans expire after 15)" in shown
    assert "review the diff again" in shown
    assert len(audit.list_audit(engine, action=audit.SYNC_ACTION, limit=100)) == syncs_before
    assert service().preview().has_changes  # nothing was written
    engine.dispose()
