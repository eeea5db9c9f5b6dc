"""The plan is pure: actions, field-level changes, summary, fingerprint, options."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sync_core.mapping import map_catalogue
from sync_core.plan import (
    INSERT,
    MARK_UNAVAILABLE,
    RESTORE,
    SKIP,
    UNCHANGED,
    UPDATE,
    SyncOptions,
    build_plan,
)
from sync_core.plan_render import plan_to_dict
from tests.factories import entry, real_entries


def current_from(entries, **overrides):
    """Rows as the database would hold them after syncing ``entries``."""
    rows = map_catalogue(entries).rows
    return {k: dataclasses.replace(v, **overrides.get(k, {})) for k, v in rows.items()}


def test_first_plan_inserts_everything():
    plan = build_plan(map_catalogue(real_entries()), {})
    assert plan.summary[INSERT] == 8
    assert plan.has_changes


def test_plan_against_its_own_result_changes_nothing():
    catalogue = map_catalogue(real_entries())
    plan = build_plan(catalogue, current_from(real_entries()))
    assert plan.summary[UNCHANGED] == 8
    assert not plan.has_changes


def test_update_lists_changed_fields_old_to_new():
    current = current_from(
        real_entries(),
        **{"gpt-4o": {"input_cost_per_token": Decimal("0.000005"), "context_length": 16384}},
    )
    plan = build_plan(map_catalogue(real_entries()), current)
    (action,) = plan.by_action(UPDATE)
    assert action.model_id == "gpt-4o"
    assert set(action.changes) == {"input_cost_per_token", "context_length"}
    assert action.changes["context_length"].old == 16384
    assert action.changes["context_length"].new == 128000
    assert action.changes["input_cost_per_token"].new == Decimal("0.0000025")


def test_missing_models_are_marked_unavailable_only_with_the_option():
    current = current_from(real_entries())
    catalogue = map_catalogue(real_entries()[:-1])
    plan = build_plan(catalogue, current, SyncOptions(mark_unavailable=True))
    assert [a.model_id for a in plan.by_action(MARK_UNAVAILABLE)] == ["text-embedding-3-small"]
    assert plan.by_action(MARK_UNAVAILABLE)[0].is_destructive
    plan = build_plan(catalogue, current, SyncOptions(mark_unavailable=False))
    assert plan.by_action(MARK_UNAVAILABLE) == []
    assert not plan.has_changes


def test_unavailable_model_served_again_is_restored():
    current = current_from(real_entries(), **{"gpt-4o": {"availability": "unavailable"}})
    plan = build_plan(map_catalogue(real_entries()), current)
    (action,) = plan.by_action(RESTORE)
    assert action.changes["availability"].new == "available"


def test_force_update_rewrites_unchanged_models():
    plan = build_plan(
        map_catalogue(real_entries()), current_from(real_entries()), SyncOptions(force_update=True)
    )
    assert plan.summary[UPDATE] == 8
    assert all(a.changes == {} for a in plan.by_action(UPDATE))


def test_description_is_filled_only_while_null():
    admin_text = {"claude-sonnet": {"description": "Our favourite"}}
    plan = build_plan(map_catalogue(real_entries()), current_from(real_entries(), **admin_text))
    assert not plan.has_changes
    cleared = {"claude-sonnet": {"description": None}}
    plan = build_plan(map_catalogue(real_entries()), current_from(real_entries(), **cleared))
    (action,) = plan.by_action(UPDATE)
    assert action.changes["description"].new == "anthropic, custom pricing"


def test_database_wins_keeps_existing_rows_but_inserts_and_restores():
    current = current_from(
        real_entries()[1:],
        **{"claude-sonnet": {"context_length": 1}, "gemini-flash": {"availability": "unavailable"}},
    )
    options = SyncOptions(conflict_resolution="database_wins")
    plan = build_plan(map_catalogue(real_entries()), current, options)
    assert [a.model_id for a in plan.by_action(INSERT)] == ["gpt-4o"]
    assert plan.by_action(UPDATE) == []
    (restore,) = plan.by_action(RESTORE)
    assert set(restore.changes) == {"availability"}


def test_skips_are_listed_and_data_error_models_are_not_marked_unavailable():
    bad = entry("claude-sonnet", input_cost_per_token=-1)
    entries = [e for e in real_entries() if e["model_name"] != "claude-sonnet"] + [
        bad,
        entry("x/*"),
    ]
    plan = build_plan(map_catalogue(entries), current_from(real_entries()))
    assert plan.by_action(MARK_UNAVAILABLE) == []
    assert {a.model_id for a in plan.by_action(SKIP)} == {"claude-sonnet", "x/*"}
    assert [a.model_id for a in plan.errors] == ["claude-sonnet"]


def test_fingerprint_depends_on_both_inputs_and_options_but_not_order():
    entries = real_entries()
    current = current_from(entries)
    base = build_plan(map_catalogue(entries), current).fingerprint
    assert build_plan(map_catalogue(list(reversed(entries))), current).fingerprint == base
    changed = [dict(e) for e in entries]
    changed[0] = entry("gpt-4o")
    assert build_plan(map_catalogue(changed), current).fingerprint != base
    edited = current_from(entries, **{"gpt-4o": {"description": "edited"}})
    assert build_plan(map_catalogue(entries), edited).fingerprint != base
    assert (
        build_plan(map_catalogue(entries), current, SyncOptions(force_update=True)).fingerprint
        != base
    )


def test_empty_catalogue_warns_before_marking_everything_unavailable():
    plan = build_plan(map_catalogue([]), current_from(real_entries()))
    assert plan.summary[MARK_UNAVAILABLE] == 8
    assert "all 8 available models" in plan.warnings[0]


def test_plan_json_shape():
    current = current_from(real_entries()[:-1], **{"gpt-4o": {"context_length": 1}})
    document = plan_to_dict(build_plan(map_catalogue(real_entries()), current))
    assert set(document) >= {"fingerprint", "summary", "actions"}
    assert set(document["summary"]) == {INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE, UNCHANGED, SKIP}  # noqa: E501
    by_id = {a["model_id"]: a for a in document["actions"]}
    assert by_id["gpt-4o"]["changes"]["context_length"] == {"old": 1, "new": 128000}
    assert by_id["text-embedding-3-small"]["action"] == INSERT
    assert "claude-sonnet" not in by_id  # unchanged models are left out by default


def _merge_plan(admin_changes, upstream_changes):
    """Database synced from the fixture, then edited by an admin; LiteLLM then changes too."""
    current = current_from(real_entries(), **{"gpt-4o": admin_changes})
    upstream = real_entries()
    upstream[0]["model_info"].update(upstream_changes)
    return build_plan(map_catalogue(upstream), current, SyncOptions(conflict_resolution="merge"))


def test_merge_keeps_a_field_only_the_admin_changed():
    plan = _merge_plan({"context_length": 64000}, {})
    assert not plan.has_changes


def test_merge_takes_a_field_only_litellm_changed_and_keeps_the_admins():
    plan = _merge_plan({"context_length": 64000}, {"input_cost_per_token": 5e-06})
    (action,) = plan.by_action(UPDATE)
    assert set(action.changes) == {"input_cost_per_token", "metadata"}
    assert action.target.context_length == 64000
    assert action.conflicts == {}


def test_merge_reports_a_field_both_changed_and_keeps_the_database_value():
    plan = _merge_plan({"context_length": 64000}, {"max_input_tokens": 256000})
    (action,) = plan.by_action(UPDATE)
    assert action.conflicts["context_length"].old == 64000
    assert action.conflicts["context_length"].new == 256000
    assert action.target.context_length == 64000
    assert plan_to_dict(plan)["actions"][0]["conflicts"] == {
        "context_length": {"database": 64000, "litellm": 256000}
    }


def test_litellm_wins_overwrites_the_admins_edit():
    current = current_from(real_entries(), **{"gpt-4o": {"context_length": 64000}})
    plan = build_plan(map_catalogue(real_entries()), current)
    (action,) = plan.by_action(UPDATE)
    assert action.target.context_length == 128000


def test_merge_keeps_features_consistent_with_the_merged_flags():
    # the admin turned vision on; LiteLLM now reports function calling for a model without it
    upstream = real_entries()
    info = upstream[4]["model_info"]  # compat-mistral: no flags upstream
    current = current_from(real_entries(), **{"compat-mistral": {"supports_vision": True,
                                                                 "features": ("vision", "chat")}})
    info["supports_function_calling"] = True
    plan = build_plan(map_catalogue(upstream), current, SyncOptions(conflict_resolution="merge"))
    (action,) = [a for a in plan.actions if a.model_id == "compat-mistral"]
    assert action.target.supports_vision and action.target.supports_function_calling
    assert action.target.features == ("function_calling", "vision", "chat")
    assert "features" not in action.conflicts


def test_option_effects_say_what_each_toggle_does_without_planning_again():
    current = current_from(real_entries()[:-1])
    catalogue = map_catalogue(real_entries()[1:])  # gpt-4o gone, the embedding model new
    for options in (SyncOptions(), SyncOptions(force_update=True, mark_unavailable=False)):
        plan = build_plan(catalogue, current, options)
        assert plan.option_effects["mark_unavailable"] == ("gpt-4o",)
        assert len(plan.option_effects["force_update"]) == 6
        forced = build_plan(catalogue, current, SyncOptions(force_update=True))
        assert forced.summary[UPDATE] == 6
