"""Health: is LiteLLM reachable, is the catalogue synced on time and consistent? Self-refreshing."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages import ui
from sync_core import catalogue_queries as cq
from sync_core.doctor import run_doctor
from sync_core.errors import SyncError
from sync_core.health import check_health
from sync_core.scheduler import scheduler_status, set_paused

REFRESH_SECONDS = 30
TIMELINESS = {
    "on_time": ("On time", "🟢"),
    "late": ("Late", "🟠"),
    "error": ("Error", "🔴"),
    "never": ("Never synced", "⚪"),
    "unknown": ("Unknown", "⚪"),
}
STATUS_ICON = {"healthy": "🟢", "warning": "🟠", "error": "🔴"}

app, ident = ui.page_context()
st.title("Health")
interval = app.settings.sync_interval_seconds if app.settings.auto_sync else None
st.caption(
    f"Refreshes every {REFRESH_SECONDS} s. "
    + (
        f"Scheduled syncs every {interval} s."
        if interval
        else "Scheduled syncs are off (LITELLM_AUTO_SYNC=false): timeliness is not judged."
    )
)


@st.fragment(run_every=REFRESH_SECONDS)
def tiles() -> None:
    """The live part: probes LiteLLM and the database each time it runs."""
    report = check_health(app.service, sync_interval_s=interval)
    st.subheader(f"{STATUS_ICON.get(report.status, '')} Overall: {report.status}")
    probe = report.litellm
    c = st.columns(4, border=True)
    if probe is None:
        c[0].metric("LiteLLM", "unknown")
    else:
        c[0].metric(
            "LiteLLM",
            "reachable" if probe.reachable else "unreachable",
            f"{probe.latency_ms:.0f} ms" if probe.latency_ms is not None else probe.error_kind,
            delta_color="off",
            delta_arrow="off",
        )
        c[1].metric(
            "Circuit breaker",
            probe.breaker_state,
            f"mode: {probe.mode}",
            delta_color="off",
            delta_arrow="off",
        )
    c[2].metric(
        "Database",
        "ok" if report.database_ok else "error",
        report.database_error or app.settings.display_database_url(),
        delta_color="off",
        delta_arrow="off",
    )
    label, icon = TIMELINESS.get(report.sync_timeliness, TIMELINESS["unknown"])
    c[3].metric(
        "Last successful sync",
        f"{icon} {label}",
        ui.fmt_time(report.last_success_at),
        delta_color="off",
        delta_arrow="off",
    )
    d = st.columns(4, border=True)
    d[0].metric(
        "Models in LiteLLM", "—" if report.litellm_models is None else report.litellm_models
    )
    d[1].metric("Models in the database", report.counts.get("total", 0))
    d[2].metric(
        "Available / unavailable",
        f"{report.counts.get('available', 0)} / {report.counts.get('unavailable', 0)}",
    )
    d[3].metric(
        "Pending changes",
        "—" if report.pending_changes is None else report.pending_changes,
        ", ".join(f"{k}: {v}" for k, v in report.pending_summary.items() if v) or None,
        delta_color="off",
        delta_arrow="off",
    )
    st.caption(f"Checked at {ui.fmt_time(report.checked_at)}")
    if report.issues:  # plain text: messages can quote model names and upstream errors
        st.markdown("**Issues**")
        st.text("\n".join(f"- {issue}" for issue in report.issues))
    st.subheader("Data-integrity checks")
    if not report.integrity:
        st.success("All data-integrity checks pass.")
    for issue in report.integrity:
        with st.expander(f"{'🔴' if issue.severity == 'error' else '🟠'} {issue.message}"):
            st.text(", ".join(issue.model_ids))


tiles()

st.subheader("Pre-deployment checklist")
st.caption("The same checks as `litemaas-sync doctor`: configuration, database, migrations, pool "
           "size, LiteLLM with the key. It fetches the catalogue once, so it runs on request.")
if st.button("Run the checklist", key="health_doctor"):
    checks = run_doctor(app.runtime)
    st.dataframe(
        pd.DataFrame([{"check": c.name, "status": c.status.upper(), "detail": c.detail}
                      for c in checks]),
        hide_index=True,
        width="stretch",
    )
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        st.error(f"Failing: {', '.join(failed)}")
    else:
        st.success("Nothing fails.")

st.subheader("Scheduled syncs")
status = scheduler_status(app.service, app.settings)
s = st.columns(4, border=True)
s[0].metric("Schedule", status.schedule if status.enabled else "off",
            "LITELLM_AUTO_SYNC=true" if status.enabled else "set LITELLM_AUTO_SYNC=true to enable",
            delta_color="off", delta_arrow="off")
s[1].metric("Last scheduled run", ui.fmt_time(status.last_run_at),
            None if status.last_run_success is None
            else ("succeeded" if status.last_run_success else "failed"),
            delta_color="off", delta_arrow="off")
s[2].metric("Next run", "paused" if status.paused else ui.fmt_time(status.next_run_at),
            f"frozen until {ui.fmt_time(status.frozen_until)}" if status.frozen_until else None,
            delta_color="off", delta_arrow="off")
with s[3]:
    paused = st.toggle("Pause scheduled syncs", value=status.paused,
                       disabled=not ident.actor.can_sync,
                       help=None if ident.actor.can_sync else ident.reason)
    if status.paused and status.paused_by:
        st.caption(f"Paused by {status.paused_by}")
    if status.last_skip:
        st.caption(f"Last skip: {status.last_skip}")
if paused != status.paused:
    try:
        set_paused(app.service, paused, ident.actor)
        st.rerun()
    except SyncError as exc:
        st.error(str(exc))

st.subheader("History")
runs = pd.DataFrame(cq.sync_runs(app.runtime.engine, limit=500))
if runs.empty:
    ui.empty_chart("No sync has been audited yet, so there is no history to chart.")
else:
    runs = runs.assign(
        at=pd.to_datetime(runs["at"], utc=True),
        outcome=runs["success"].map({True: "success", False: "failure"}),
        duration_ms=runs["duration_ms"].astype(float),
    ).sort_values("at")
    fig = px.scatter(
        runs,
        x="at",
        y="duration_ms",
        color="outcome",
        title="Sync duration per run",
        color_discrete_map={"success": "#2e7d32", "failure": "#c62828"},
        labels={"at": "Sync time (UTC)", "duration_ms": "Duration (ms)"},
        hover_data=["trigger", "actor"],
    )
    for name, q, dash, where in (
        ("median", 0.5, "dash", "bottom left"),
        ("p90", 0.9, "dot", "top right"),
    ):
        value = float(runs["duration_ms"].quantile(q))
        fig.add_hline(
            y=value,
            line_dash=dash,
            annotation_text=f"{name} {value:.0f} ms",
            annotation_position=where,
        )
    st.plotly_chart(fig, width="stretch")

    left, right = st.columns(2)
    with left:
        timeline = pd.DataFrame(cq.availability_timeline(app.runtime.engine))
        if timeline.empty:
            ui.empty_chart(
                "Model counts are recorded after each sync run by this server; none recorded yet."
            )
        else:
            timeline["at"] = pd.to_datetime(timeline["at"], utc=True)
            fig = go.Figure()
            for column, colour in (("available", "#2e7d32"), ("unavailable", "#c62828")):
                fig.add_scatter(
                    x=timeline["at"],
                    y=timeline[column],
                    name=column,
                    mode="lines+markers",
                    line={"color": colour, "shape": "hv"},
                )
            fig.update_layout(
                title="Available vs unavailable models over time",
                xaxis_title="Sync time (UTC)",
                yaxis_title="Models (count)",
            )
            st.plotly_chart(fig, width="stretch")
    with right:
        daily = (
            runs.assign(
                day=runs["at"].dt.strftime("%Y-%m-%d"), failed=~runs["success"].astype(bool)
            )
            .groupby("day")
            .agg(runs=("failed", "size"), failures=("failed", "sum"))
            .reset_index()
        )
        daily["failure_rate"] = 100 * daily["failures"] / daily["runs"]
        fig = px.bar(
            daily,
            x="day",
            y="failure_rate",
            title="Sync failure rate per day",
            hover_data=["runs", "failures"],
            labels={"day": "Day (UTC)", "failure_rate": "Failed syncs (%)"},
        )
        fig.update_yaxes(range=[0, 100])
        fig.update_xaxes(type="category")
        st.plotly_chart(fig, width="stretch")
