"""Audit log: every sync, who ran it and what it did; filters, charts and CSV export."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from pages import ui
from sync_core import audit
from sync_core import catalogue_queries as cq

app, ident = ui.page_context()
engine = app.runtime.engine
st.title("Audit log")
st.caption("One row per sync, successful or not (LiteMaaS's audit_logs table).")

actions = cq.audit_actions(engine) or [audit.SYNC_ACTION]
f = st.columns([2, 2, 2, 3])
action = f[0].selectbox(
    "Action",
    actions,
    key="audit_action",
    index=actions.index(audit.SYNC_ACTION) if audit.SYNC_ACTION in actions else 0,
)
outcome = f[1].selectbox("Outcome", ["any", "success", "failure"], key="audit_outcome")
actor = f[2].text_input("Actor", key="audit_actor", placeholder="e.g. startup, api, e-mail")
today = date.today()
period = f[3].date_input("Date range", value=(today - timedelta(days=30), today), key="audit_dates")
start, end = (
    period
    if isinstance(period, tuple) and len(period) == 2
    else (today - timedelta(days=30), today)
)
since = datetime.combine(start, time.min, tzinfo=UTC)
until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)

rows = cq.audit_rows(
    engine,
    action=action,
    success=None if outcome == "any" else outcome == "success",
    actor=actor.strip() or None,
    since=since,
    until=until,
)
frame = pd.DataFrame(
    rows, columns=["at", "action", "success", "actor", "trigger", "error_message", "id", "metadata"]
)
st.subheader(f"{len(frame)} {'entry' if len(frame) == 1 else 'entries'}")
if frame.empty:
    st.info(
        "No audit entry matches these filters. Every sync (start-up, schedule, manual, "
        "CLI, API) writes one."
    )
else:
    shown = frame.drop(columns=["metadata"])
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(shown), 360),
        on_select="rerun",
        selection_mode="single-row",
        key="audit_table",
        column_config={
            "at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss"),
            "success": st.column_config.CheckboxColumn("Success"),
            "error_message": st.column_config.TextColumn("Error", width="large"),
        },
    )
    export = frame.assign(metadata=frame["metadata"].map(lambda m: json.dumps(m, default=str)))
    st.download_button(
        "Download as CSV",
        export.to_csv(index=False).encode(),
        file_name="litemaas-audit.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    picked = event.selection.rows[0] if event is not None and event.selection.rows else 0
    with st.expander(f"Metadata of the entry of {ui.fmt_time(frame['at'].iloc[picked])}"):
        st.json(frame["metadata"].iloc[picked])

st.subheader("Charts")
runs = pd.DataFrame(cq.sync_runs(engine, since=since, until=until))
left, right = st.columns(2)
with left:
    if runs.empty:
        ui.empty_chart("No sync in this period yet, so there is nothing to chart.")
    else:
        per_day = (
            runs.assign(
                day=pd.to_datetime(runs["at"], utc=True).dt.strftime("%Y-%m-%d"),
                outcome=runs["success"].map({True: "success", False: "failure"}),
            )
            .groupby(["day", "outcome"])
            .size()
            .reset_index(name="syncs")
        )
        fig = px.bar(
            per_day,
            x="day",
            y="syncs",
            color="outcome",
            title="Syncs per day by outcome",
            color_discrete_map={"success": "#2e7d32", "failure": "#c62828"},
            labels={"day": "Day (UTC)", "syncs": "Syncs (count)"},
        )
        fig.update_xaxes(type="category")
        st.plotly_chart(fig, width="stretch")
with right:
    if runs.empty:
        ui.empty_chart("No sync in this period yet, so there are no changes to chart.")
    else:
        changes = runs.assign(
            run=pd.to_datetime(runs["at"], utc=True).dt.strftime("%m-%d %H:%M:%S")
        ).melt(
            id_vars=["run"],
            value_vars=["new", "updated", "unavailable", "restored", "errors"],
            var_name="type",
            value_name="models",
        )
        fig = px.bar(
            changes,
            x="run",
            y="models",
            color="type",
            title="Changes per sync by type",
            labels={"run": "Sync time (UTC)", "models": "Models (count)", "type": "Change"},
        )
        fig.update_xaxes(type="category")
        st.plotly_chart(fig, width="stretch")
