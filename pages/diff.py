"""Diff: LiteLLM against the database, field by field, before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pandas as pd
import streamlit as st

from pages import ui
from sync_core import control
from sync_core.errors import SyncError
from sync_core.plan import (
    ACTIONS,
    UNCHANGED,
    UPDATE,
    WRITING_ACTIONS,
)
from sync_core.plan_render import plan_to_dict

app, ident = ui.page_context()
service = app.service
st.title("Diff")
st.caption(
    "What a sync would do now: LiteLLM (desired) against the database (current). "
    "Nothing is written on this page."
)

top = st.columns([2, 2, 3])
force_update = top[0].toggle(
    "forceUpdate", key="diff_force", help="Also rewrite models whose data did not change."
)
mark_unavailable = top[1].toggle(
    "markUnavailable",
    key="diff_mark",
    value=True,
    help="Mark models LiteLLM no longer serves as unavailable.",
)
if top[2].button(
    "Re-fetch from LiteLLM",
    icon=":material/refresh:",
    help="Page views use a catalogue cached for up to 5 minutes.",
):
    app.runtime.source.clear_cache()

options = service.options(force_update=force_update, mark_unavailable=mark_unavailable)
try:
    plan = service.preview(options)
except SyncError as exc:
    st.error(f"Cannot compute the diff: {exc}")
    st.stop()

summary = plan.summary
ui.plan_metrics(plan)
for warning in plan.warnings:
    st.warning(warning)

approved = control.approvals(app.runtime.engine)
held = [a for a in plan.actions if a.held]
flagged = [a for a in plan.actions if a.flags]
conflicted = [a for a in plan.actions if a.conflicts]
if held or flagged or conflicted:
    st.info(
        " · ".join(
            part
            for part in (
                held and f"**{len(held)}** model(s) with changes held back (protected fields)",
                flagged
                and f"**{len(flagged)}** model(s) with suspicious changes "
                "(held from scheduled syncs until approved; a manual sync applies them)",
                conflicted
                and f"**{len(conflicted)}** model(s) with merge conflicts "
                "(the database's value is kept)",
            )
            if part
        ),
        icon=":material/shield:",
    )

# What the two options change: the plan says so itself (no extra planning per rerun).
effects = plan.option_effects
with st.expander("What forceUpdate and markUnavailable change"):
    st.markdown(
        f"- **forceUpdate** rewrites {len(effects['force_update'])} models that have not changed "
        "(their `updated_at` moves).\n"
        f"- **markUnavailable** marks {len(effects['mark_unavailable'])} models unavailable"
        + (":" if effects["mark_unavailable"] else ".")
    )
    if effects["mark_unavailable"]:  # plain text: model names are not Markdown
        st.text(", ".join(effects["mark_unavailable"]))

st.subheader("Models")
labels = {ui.ACTION_LABELS[a]: a for a in ACTIONS if a in summary}
default = [ui.ACTION_LABELS[a] for a in ACTIONS if a != UNCHANGED and summary.get(a)]
shown = st.multiselect("Show actions", list(labels), default=default, key="diff_actions")
table = ui.plan_table(plan, [labels[s] for s in shown], approved=approved, always_noted=True)
if table.empty:
    st.info(
        "Nothing to show: LiteLLM and the database agree for the chosen actions."
        if not plan.has_changes
        else "No model has the chosen actions."
    )
else:
    notes = ["held back", "suspicious", "conflicts"]  # shown when some model has one
    shown_table = table.drop(columns=[c for c in notes if not table[c].astype(bool).any()])
    st.dataframe(
        shown_table,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 400),
        column_order=[
            c
            for c in ["model", "action", *notes, "changed fields", "reason"]
            if c in shown_table.columns
        ],
        column_config={
            "held back": st.column_config.TextColumn(
                "Held back",
                width="medium",
                help="LiteLLM changes this sync leaves out: protected fields, or "
                "suspicious changes a scheduled sync holds until approved",
            ),
            "suspicious": st.column_config.TextColumn(
                "Suspicious",
                width="medium",
                help="A price becoming 0/null or moving >10×, a context length "
                "shrinking by more than half",
            ),
            "conflicts": st.column_config.TextColumn(
                "Conflicts",
                width="medium",
                help="merge: fields changed both in the database and in LiteLLM",
            ),
        },
    )
    if held or conflicted:
        st.caption("Models with held changes or conflicts are listed whatever their action.")

st.subheader("One model, side by side")
model_ids = table["model"].tolist() if not table.empty else []
changed_first = next(
    (i for i, action in enumerate(table["action"]) if action == ui.ACTION_LABELS[UPDATE]), 0
)
a, b = st.columns([3, 2])
model_id = a.selectbox(
    "Model",
    model_ids,
    key="diff_model",
    index=changed_first if model_ids else None,
    placeholder="No model to compare",
)
mode = b.radio("Fields", ["Changed only", "All fields"], horizontal=True, key="diff_mode")
if model_id:
    frame = ui.side_by_side(plan, model_id, changed_only=mode == "Changed only")
    if frame.empty:
        st.info("No field differs for this model." if mode == "Changed only" else "No data.")
    else:
        st.dataframe(
            ui.highlight_changed(frame),
            hide_index=True,
            width="stretch",
            column_order=["field", "note", "changed", "database", "LiteLLM"]
            if "note" in frame.columns
            else None,
            column_config={
                "changed": st.column_config.CheckboxColumn("Changed"),
                "note": st.column_config.TextColumn("Note", width="medium"),
                "database": st.column_config.TextColumn("database", width="medium"),
                "LiteLLM": st.column_config.TextColumn("LiteLLM", width="medium"),
            },
        )
        if "note" in frame.columns:
            st.caption(
                "Red rows: LiteLLM differs but this sync keeps the database's value "
                "(held back or in conflict)."
            )

# --- suspicious changes: approve them for scheduled syncs ----------------------------------------
if flagged:
    st.subheader("Suspicious changes")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": a.model_id,
                    "field": name,
                    "why": why,
                    "status": "approved: scheduled syncs apply it"
                    if ui.suspicious_key(a, name) in approved
                    else "held from scheduled syncs until approved",
                }
                for a in flagged
                for name, why in a.flags.items()
            ],
            columns=["model", "field", "why", "status"],
        ),
        hide_index=True,
        width="stretch",
    )
    approve_why = None if ident.actor.can_sync else f"Only admins can approve. {ident.reason}"
    pending = [
        a.model_id for a in flagged if any(ui.suspicious_key(a, n) not in approved for n in a.flags)
    ]
    p1, p2 = st.columns([3, 2], vertical_alignment="bottom")
    flagged_ids = [a.model_id for a in flagged]
    chosen = st.session_state.get("diff_approve_models")  # preselect the ones still pending
    st.session_state["diff_approve_models"] = (
        pending if chosen is None else [m for m in chosen if m in flagged_ids]
    )
    to_approve = p1.multiselect(
        "Models whose suspicious changes to approve",
        flagged_ids,
        key="diff_approve_models",
        disabled=approve_why is not None,
        help=approve_why,
    )
    approve = p2.button(
        "Approve suspicious changes",
        key="diff_approve",
        icon=":material/verified:",
        disabled=approve_why is not None or not to_approve,
        help=approve_why
        or "Approves exactly these new values; a different value later is flagged again.",
    )
    if approve_why:
        st.caption(f":material/lock: {approve_why}")
    if approve:
        keys = [
            ui.suspicious_key(a, n) for a in flagged if a.model_id in to_approve for n in a.flags
        ]
        try:
            control.approve(app.runtime.engine, keys, ident.actor)
        except SyncError as exc:
            st.error(str(exc))
        else:
            st.session_state["_diff_approved"] = len(keys)
            st.rerun()
    if st.session_state.get("_diff_approved"):
        count = st.session_state.pop("_diff_approved")
        st.success(f"Approved {count} suspicious change(s): scheduled syncs may apply them.")

# --- apply only these, then review --------------------------------------------------------------
st.divider()
writing = [a.model_id for a in plan.actions if a.action in WRITING_ACTIONS]
if st.session_state.get("diff_only"):  # a model synced meanwhile is no longer a choice
    st.session_state["diff_only"] = [m for m in st.session_state["diff_only"] if m in writing]
only = st.multiselect(
    "Apply only these",
    writing,
    key="diff_only",
    placeholder="All models (leave empty) or pick the ones to sync",
    help="Hand-picked models: the sync changes these and leaves every other model as it is.",
)
reviewed_plan = plan
if only:
    only_options = service.options(
        force_update=force_update, mark_unavailable=mark_unavailable, only=only
    )
    try:
        reviewed_plan = service.preview(only_options)
    except SyncError as exc:
        st.error(f"Cannot compute the plan for these models: {exc}")
        st.stop()
    picked = reviewed_plan.summary
    st.caption(
        f"Only these {len(only)} model(s): "
        + ", ".join(
            f"{picked[a]} {ui.ACTION_LABELS[a]}"
            for a in ACTIONS
            if a in picked and a in WRITING_ACTIONS and picked[a]
        )
        + ". Every other model is left as it is."
    )

d1, d2 = st.columns(2)
d1.download_button(
    "Download the plan (JSON)",
    orjson.dumps(plan_to_dict(reviewed_plan), option=orjson.OPT_INDENT_2),
    file_name=f"sync-plan-{reviewed_plan.fingerprint[:12]}.json",
    mime="application/json",
    icon=":material/download:",
)
review = d2.button(
    "Review and sync this plan",
    type="primary",
    icon=":material/arrow_forward:",
    disabled=not reviewed_plan.has_changes and not force_update,
    help=None if ident.actor.can_sync else ident.reason,
)
st.caption(
    f"Plan fingerprint `{reviewed_plan.fingerprint[:16]}…` — the Sync page applies exactly this "
    "plan or refuses if LiteLLM or the database changed meanwhile. A reviewed plan expires "
    f"after {ui.fmt_minutes(service.plan_ttl_s)}."
)
if review:
    st.session_state[ui.REVIEWED_KEY] = {
        "fingerprint": reviewed_plan.fingerprint,
        "force_update": force_update,
        "mark_unavailable": mark_unavailable,
        "only": sorted(only) if only else None,
        "reviewed_at": datetime.now(UTC),
    }
    st.session_state.pop("_sync_defaults_from", None)
    st.switch_page("pages/sync.py")
