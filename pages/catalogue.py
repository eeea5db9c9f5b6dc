"""Catalogue: browse and filter the synced models; filters live in the URL so a view is a link."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import ui
from sync_core import catalogue_queries as cq
from sync_core import control
from sync_core.errors import SyncError
from sync_core.policy import PROTECTABLE_FIELDS, ModelPolicy


def policy_section(model_id: str, current: ModelPolicy) -> None:
    """Pin the model and protect fields; admins only (``control.set_policy`` checks it too)."""
    with st.container(border=True):
        st.markdown("**Policy**")
        st.caption(
            f"Current: {ui.policy_badges(current)}."
            if current != ModelPolicy()
            else "Current: none. A sync may overwrite every field, and marks the model "
            "unavailable when LiteLLM stops serving it."
        )
        if st.session_state.get("_cat_policy_for") != model_id:  # another model: its values
            st.session_state["cat_pin"] = current.pinned
            st.session_state["cat_protect"] = sorted(current.protected_fields)
            st.session_state["_cat_policy_for"] = model_id
        viewer = not ident.actor.can_sync
        why = f"Only admins can change policies. {ident.reason}" if viewer else None
        left, right = st.columns([1, 2])
        pinned = left.toggle(
            "Pinned (never marked unavailable)",
            key="cat_pin",
            disabled=viewer,
            help=why or "Kept available even when LiteLLM no longer serves it.",
        )
        protected = right.multiselect(
            "Protected fields (a sync never overwrites them)",
            list(PROTECTABLE_FIELDS),
            key="cat_protect",
            disabled=viewer,
            help=why,
        )
        wanted = ModelPolicy(pinned, frozenset(protected))
        save = st.button(
            "Save policy",
            key="cat_policy_save",
            icon=":material/save:",
            disabled=viewer or wanted == current,
            help=why,
        )
        if why:
            st.caption(f":material/lock: {why}")
        if save:
            try:
                control.set_policy(engine, model_id, wanted, ident.actor)
            except SyncError as exc:  # the engine refuses viewers whatever the page shows
                st.error(str(exc))
            else:
                st.session_state["_cat_policy_saved"] = model_id
                st.rerun()
        if st.session_state.pop("_cat_policy_saved", None) == model_id:
            st.success(
                f"Policy saved: {ui.policy_badges(current) or 'no pin, no protected field'}. "
                "The Diff page shows what it holds back."
            )


app, ident = ui.page_context()
engine = app.runtime.engine
st.title("Catalogue")
st.caption("The models table as LiteMaaS users see it. Prices are per 1M tokens.")

kpis = cq.catalogue_kpis(engine)
cols = st.columns(5)
cols[0].metric("Models", kpis["total"])
cols[1].metric("Available", kpis["available"])
cols[2].metric("Unavailable", kpis["unavailable"])
cols[3].metric("Providers", kpis["providers"])
cols[4].metric(
    "Last successful sync", ui.fmt_age(kpis["last_sync_at"]), help=ui.fmt_time(kpis["last_sync_at"])
)

# --- filters, seeded from and written back to the query parameters ------------------------------
params = st.query_params
all_providers = cq.providers(engine)
f1, f2, f3, f4, f5 = st.columns([3, 3, 2, 3, 2])
search = f1.text_input(
    "Search", value=params.get("q", ""), key="cat_q", placeholder="name, provider or description"
)
chosen_providers = f2.multiselect(
    "Provider",
    all_providers,
    key="cat_provider",
    default=list(cq.ids_in(",".join(params.get_all("provider")).split(","), all_providers)),
)
availability = f3.selectbox(
    "Availability",
    ["any", *cq.AVAILABILITIES],
    key="cat_availability",
    index=(
        ["any", *cq.AVAILABILITIES].index(params.get("availability"))
        if params.get("availability") in cq.AVAILABILITIES
        else 0
    ),
)
capabilities = f4.multiselect(
    "Capabilities (all of)",
    list(cq.CAPABILITIES),
    key="cat_cap",
    default=list(cq.ids_in(",".join(params.get_all("cap")).split(","), list(cq.CAPABILITIES))),
)
min_ctx_raw = params.get("min_ctx", "0")
min_context = f5.number_input(
    "Min context (tokens)",
    min_value=0,
    step=1000,
    key="cat_min_ctx",
    value=int(min_ctx_raw) if min_ctx_raw.isdigit() else 0,
)

wanted = {
    "q": search.strip(),
    "provider": ",".join(chosen_providers),
    "availability": "" if availability == "any" else availability,
    "cap": ",".join(capabilities),
    "min_ctx": str(min_context) if min_context else "",
}
for key, value in wanted.items():
    if value and params.get(key) != value:
        params[key] = value
    elif not value and key in params:
        del params[key]

flt = cq.ModelFilter(
    search=search,
    providers=tuple(chosen_providers),
    availability=None if availability == "any" else availability,
    capabilities=tuple(capabilities),
    min_context=min_context or None,
)
rows = cq.list_models(engine, flt)
with engine.connect() as conn:
    policies = control.read_policies(conn)
frame = pd.DataFrame(
    rows,
    columns=[
        "id",
        "name",
        "provider",
        "availability",
        "context_length",
        "input_per_1m",
        "output_per_1m",
        "capabilities",
        "updated_at",
        "description",
    ],
)
frame["availability"] = (
    frame["availability"]
    .map({"available": "🟢 available", "unavailable": "🔴 unavailable"})
    .fillna(frame["availability"])
)
frame.insert(4, "policy", [ui.policy_badges(policies.get(i)) for i in frame["id"]])

st.subheader(f"{len(frame)} of {kpis['total']} models")
if frame.empty:
    st.info(
        "No model matches these filters."
        if kpis["total"]
        else "The catalogue is empty: no sync has written models yet. Run one on the Sync page."
    )
else:
    event = st.dataframe(
        frame.drop(columns=["id", "description"]),
        hide_index=True,
        width="stretch",
        height=420,
        on_select="rerun",
        selection_mode="single-row",
        key="cat_table",
        column_config={
            "name": st.column_config.TextColumn("Model", width="medium"),
            "provider": st.column_config.TextColumn("Provider"),
            "availability": st.column_config.TextColumn("Availability"),
            "policy": st.column_config.TextColumn(
                "Policy",
                width="small" if not any(frame["policy"]) else "medium",
                help="📌 pinned: never marked unavailable; 🔒 fields a sync never overwrites",
            ),
            "context_length": st.column_config.NumberColumn("Context (tokens)", format="%d"),
            "input_per_1m": st.column_config.NumberColumn("Input $/1M tokens", format="$%.4f"),
            "output_per_1m": st.column_config.NumberColumn("Output $/1M tokens", format="$%.4f"),
            "capabilities": st.column_config.ListColumn("Capabilities"),
            "updated_at": st.column_config.DatetimeColumn("Last update", format="YYYY-MM-DD HH:mm"),
        },
    )
    st.download_button(
        "Download this view as CSV",
        frame.to_csv(index=False).encode(),
        file_name="litemaas-models.csv",
        mime="text/csv",
        icon=":material/download:",
    )

    # --- one model: mapped fields, raw LiteLLM data, change history -----------------------------
    ids = frame["id"].tolist()
    selected_rows = event.selection.rows if event is not None else []
    preferred = ids[selected_rows[0]] if selected_rows else params.get("model")
    model_id = st.selectbox(
        "Open a model",
        ids,
        key="cat_model",
        index=ids.index(preferred) if preferred in ids else None,
        placeholder="Select a row above or pick a model",
    )
    if model_id:
        params["model"] = model_id
        model = cq.get_model(engine, model_id)
        if model is not None:
            st.subheader(ui.plain(model["name"]))
            policy_section(model_id, policies.get(model_id, ModelPolicy()))
            mapped, raw, history = st.tabs(["Mapped fields", "Raw LiteLLM data", "Change history"])
            with mapped:
                st.json(
                    {
                        k: ui.fmt_time(v) if k in ("created_at", "updated_at") else v
                        for k, v in model.items()
                        if k not in ("litellm_model_info", "litellm_params")
                    }
                )
            with raw:
                st.caption("As LiteLLM's /model/info sent it (credentials are never stored).")
                st.json(
                    {
                        "model_info": model["litellm_model_info"],
                        "litellm_params": model["litellm_params"],
                    },
                    expanded=2,
                )
            with history:
                changes = cq.model_history(engine, model_id)
                st.caption(f"First stored {ui.fmt_time(model.get('created_at'))}.")
                if not changes:
                    st.info("No recorded change since this model was first stored.")
                for change in changes:
                    st.markdown(
                        f"**{ui.fmt_time(change['at'])}** — {change['action']} "
                        f"by {ui.plain(change['actor'])} ({change['trigger']})"
                    )
                    if change["fields"]:
                        st.dataframe(
                            pd.DataFrame(
                                [
                                    {"field": k, "old": str(v["old"]), "new": str(v["new"])}
                                    for k, v in change["fields"].items()
                                ]
                            ),
                            hide_index=True,
                        )
    elif "model" in params:
        del params["model"]
