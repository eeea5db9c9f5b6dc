"""Diff: LiteLLM against the database, field by field, before anything is written."""

from __future__ import annotations

import orjson
import streamlit as st

from pages import ui
from sync_core.errors import SyncError
from sync_core.plan import (
    ACTIONS,
    INSERT,
    MARK_UNAVAILABLE,
    RESTORE,
    SKIP,
    UNCHANGED,
    UPDATE,
    plan_to_dict,
)

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
cols = st.columns(6)
for col, action in zip(
    cols, (INSERT, UPDATE, UNCHANGED, MARK_UNAVAILABLE, RESTORE, SKIP), strict=True
):
    col.metric(ui.ACTION_LABELS[action].capitalize(), summary[action])
for warning in plan.warnings:
    st.warning(warning)

# What the two options change, against the plan without them.
base = service.preview(service.options(force_update=False, mark_unavailable=False))
with st.expander("What forceUpdate and markUnavailable change"):
    forced = service.preview(service.options(force_update=True, mark_unavailable=False))
    marked = service.preview(service.options(force_update=False, mark_unavailable=True))
    st.markdown(
        f"- **forceUpdate** rewrites {forced.summary[UPDATE] - base.summary[UPDATE]} more "
        f"unchanged models ({forced.summary[UPDATE]} updates instead of {base.summary[UPDATE]}).\n"
        f"- **markUnavailable** marks {marked.summary[MARK_UNAVAILABLE]} models unavailable: "
        + (", ".join(f"`{a.model_id}`" for a in marked.by_action(MARK_UNAVAILABLE)) or "none")
        + "."
    )

st.subheader("Models")
labels = {ui.ACTION_LABELS[a]: a for a in ACTIONS if a in summary}
default = [ui.ACTION_LABELS[a] for a in ACTIONS if a != UNCHANGED and summary.get(a)]
shown = st.multiselect("Show actions", list(labels), default=default, key="diff_actions")
table = ui.plan_table(plan, [labels[s] for s in shown])
if table.empty:
    st.info(
        "Nothing to show: LiteLLM and the database agree for the chosen actions."
        if not plan.has_changes
        else "No model has the chosen actions."
    )
else:
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 400))

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
            column_config={"changed": st.column_config.CheckboxColumn("Changed")},
        )

st.divider()
d1, d2 = st.columns(2)
d1.download_button(
    "Download the plan (JSON)",
    orjson.dumps(plan_to_dict(plan), option=orjson.OPT_INDENT_2),
    file_name=f"sync-plan-{plan.fingerprint[:12]}.json",
    mime="application/json",
    icon=":material/download:",
)
review = d2.button(
    "Review and sync this plan",
    type="primary",
    icon=":material/arrow_forward:",
    disabled=not plan.has_changes and not force_update,
    help=None if ident.actor.can_sync else ident.reason,
)
st.caption(
    f"Plan fingerprint `{plan.fingerprint[:16]}…` — the Sync page applies exactly this "
    "plan or refuses if LiteLLM or the database changed meanwhile."
)
if review:
    st.session_state[ui.REVIEWED_KEY] = {
        "fingerprint": plan.fingerprint,
        "force_update": force_update,
        "mark_unavailable": mark_unavailable,
    }
    st.session_state.pop("_sync_defaults_from", None)
    st.switch_page("pages/sync.py")
