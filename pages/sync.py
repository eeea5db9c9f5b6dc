"""Sync: choose the options, see what they will do, confirm, sync, read the result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from pages import ui
from sync_core.errors import PlanExpiredError, SyncError, SyncInProgressError
from sync_core.locking import current_holder
from sync_core.plan import INSERT, MARK_UNAVAILABLE, RESTORE, SKIP, UNCHANGED, UPDATE

app, ident = ui.page_context()
service = app.service
st.title("Sync")
st.caption("Write LiteLLM's catalogue into the models table, in one transaction, audited.")

reviewed = st.session_state.get(ui.REVIEWED_KEY)
if reviewed and not st.session_state.get("_sync_defaults_from"):
    st.session_state["sync_force"] = reviewed["force_update"]
    st.session_state["sync_mark"] = reviewed["mark_unavailable"]
    st.session_state["_sync_defaults_from"] = reviewed["fingerprint"]

st.session_state.setdefault("sync_force", False)
st.session_state.setdefault("sync_mark", True)
left, right = st.columns(2)
force_update = left.toggle(
    "forceUpdate",
    key="sync_force",
    help="Rewrite every model LiteLLM serves even when nothing changed.",
)
left.caption(
    "**forceUpdate** — off: only models whose data changed are written. "
    "On: every model LiteLLM serves is rewritten (its updated_at moves), "
    "useful after fixing data by hand."
)
mark_unavailable = right.toggle(
    "markUnavailable", key="sync_mark", help="Mark models LiteLLM no longer serves as unavailable."
)
right.caption(
    "**markUnavailable** — on: models in the database that LiteLLM no longer serves "
    "are marked unavailable (never deleted). Off: they are left as they are."
)

only = reviewed.get("only") if reviewed else None  # "apply only these" from the Diff page
if only:
    o1, o2 = st.columns([4, 1], vertical_alignment="center")
    o1.info(
        f"**Only {len(only)} hand-picked model(s)** are synced: "
        + ", ".join(f"`{m}`" for m in only)
        + ". Every other model is left as it is.",
        icon=":material/checklist:",
    )
    if o2.button("Sync every model instead", key="sync_all"):
        st.session_state.pop(ui.REVIEWED_KEY, None)
        st.session_state.pop("_sync_defaults_from", None)
        st.rerun()

options = service.options(force_update=force_update, mark_unavailable=mark_unavailable, only=only)
try:
    plan = service.preview(options)
except SyncError as exc:
    st.error(f"Cannot preview the sync: {exc}")
    st.stop()

st.subheader("What these options will do")
summary = plan.summary
ui.plan_metrics(plan, (INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE, UNCHANGED, SKIP))
for warning in plan.warnings:
    st.warning(warning)
held = [a for a in plan.actions if a.held]
if held:
    st.caption(
        f"{len(held)} model(s) have changes held back (protected fields): "
        + "; ".join(f"`{a.model_id}`: {ui.held_text(a)}" for a in held)
    )

expected = plan.fingerprint
reviewed_at = None
if reviewed:
    same_options = (reviewed["force_update"], reviewed["mark_unavailable"]) == (
        force_update,
        mark_unavailable,
    )
    if same_options:
        expected = reviewed["fingerprint"]
        reviewed_at = reviewed.get("reviewed_at")
        expires = reviewed_at + timedelta(seconds=service.plan_ttl_s) if reviewed_at else None
        left_s = (expires - datetime.now(UTC)).total_seconds() if expires else None
        st.info(
            f"Applying the plan reviewed on the Diff page (fingerprint "
            f"`{expected[:12]}`). If LiteLLM or the database changed since, the sync "
            "refuses and asks for a new review."
            + (
                f" Reviewed at {ui.fmt_time(reviewed_at)} UTC; it expires at "
                f"{ui.fmt_time(expires)} UTC"
                + (f" (in {ui.fmt_minutes(left_s)})." if left_s > 0 else ".")
                if expires and left_s is not None
                else ""
            ),
            icon=":material/fact_check:",
        )
        if left_s is not None and left_s <= 0:
            st.warning(
                "This review has expired: the sync will refuse it. Open the Diff page and "
                "review the current plan again.",
                icon=":material/timer_off:",
            )
    else:
        st.info(
            "The options differ from the plan reviewed on the Diff page: the preview above "
            "is what will be applied.",
            icon=":material/info:",
        )
if not plan.has_changes:
    st.success("LiteLLM and the database agree: a sync now would change nothing.")

to_mark = plan.by_action(MARK_UNAVAILABLE)
available = service.available_count(plan)
# The engine's mass-unavailable guard: over this share, the admin types the number to confirm.
mass = service.confirmation_needed(plan) is not None
confirm_count: int | None = None
confirmed = True
if to_mark:
    noun = "model" if len(to_mark) == 1 else "models"
    st.markdown(
        f"**{len(to_mark)} {noun} will be marked unavailable** (users can no longer pick them):"
    )
    st.dataframe(
        pd.DataFrame(
            {"model": [a.model_id for a in to_mark], "reason": [a.reason for a in to_mark]}
        ),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(to_mark), 300),
    )
    if mass:
        st.warning(
            f"That is {len(to_mark)} of the {available} available models, more than "
            f"{service.max_unavailable_share:.0%}. Type the number of models to mark unavailable "
            "to confirm.",
            icon=":material/warning:",
        )
        typed = st.text_input(
            f"Number of models to mark unavailable ({len(to_mark)})",
            key="sync_confirm_count",
            max_chars=9,
            placeholder="type the number",
        ).strip()
        confirm_count = int(typed) if typed.isdigit() else None
        confirmed = confirm_count is not None
    else:
        confirmed = st.checkbox(
            f"I confirm: mark {len(to_mark)} {noun} unavailable", key="sync_confirm"
        )

reason = st.text_input(
    "Reason (optional, stored in the audit log)", key="sync_reason", max_chars=500
)
holder = current_holder(app.runtime.engine)
if holder:
    st.warning(f"A sync is already running by {holder[0]} since {holder[1] or 'just now'}.")

disabled_why = None
if not ident.actor.can_sync:
    disabled_why = f"Only admins can sync. {ident.reason}"
elif not confirmed:
    disabled_why = (
        "Type the number of models to mark unavailable first."
        if mass
        else "Confirm the models to mark unavailable first."
    )
if disabled_why:
    st.caption(f":material/block: {disabled_why}")
clicked = st.button(
    "Sync now",
    type="primary",
    disabled=disabled_why is not None,
    help=disabled_why,
    icon=":material/sync:",
    key="sync_run",
)

if clicked:
    with st.status("Syncing…", expanded=True) as status:
        st.write(f"Fetching the catalogue from {app.runtime.source.model_info_url}")
        st.write("Comparing with the database and writing in one transaction")
        try:
            result = service.run(
                options,
                trigger="manual",
                actor=ident.actor,
                expected_fingerprint=expected,
                reviewed_at=reviewed_at,
                confirm_unavailable=confirm_count,
                reason=reason or None,
            )
        except SyncInProgressError as exc:
            status.update(label="A sync is already running", state="error")
            st.error(str(exc))
            st.stop()
        except PlanExpiredError as exc:  # nothing started: the review is too old
            status.update(label="The reviewed plan has expired", state="error")
            st.error(str(exc))
            st.stop()
        except SyncError as exc:  # permission denied and the like: nothing started
            status.update(label="Sync refused", state="error")
            st.error(str(exc))
            st.stop()
        if result.success:
            status.update(label=f"Sync finished in {result.duration_ms:.0f} ms", state="complete")
        else:
            status.update(label="Sync failed: nothing was written", state="error")
    st.session_state["last_sync_result"] = result.to_dict()
    if result.error_kind != "guard":  # a guard refusal keeps the review: fix the number, retry
        st.session_state.pop(ui.REVIEWED_KEY, None)
        st.session_state.pop("_sync_defaults_from", None)
        st.session_state.pop("sync_confirm", None)
        st.session_state.pop("sync_confirm_count", None)

last = st.session_state.get("last_sync_result")
if last:
    st.subheader("Result of your last sync")
    if last["success"]:
        st.success(
            f"Synced at {ui.fmt_time(last['syncedAt'])}: {last['newModels']} new, "
            f"{last['updatedModels']} updated, {last['unavailableModels']} marked "
            f"unavailable, {last['restoredModels']} restored"
            + (
                f", {last['deletedModels']} deleted (retention)."
                if last.get("deletedModels")
                else "."
            )
        )
    elif last["errorKind"] in ("stale_plan", "plan_expired"):
        st.error(f"{ui.plain(last['errorMessage'])} Open the Diff page to review the current plan.")
    elif last["errorKind"] == "guard":  # a safety guard: its message says what to do
        st.error(f"Sync refused by a safety guard: {ui.plain(last['errorMessage'])}")
    else:
        st.error(f"Sync failed ({last['errorKind']}): {ui.plain(last['errorMessage'])}")
    c = st.columns(5)
    c[0].metric("Total entries", last["totalModels"])
    c[1].metric("New", last["newModels"])
    c[2].metric("Updated", last["updatedModels"])
    c[3].metric("Marked unavailable", last["unavailableModels"])
    c[4].metric("Errors", len(last["errors"]))
    if last["errorDetails"]:
        st.markdown("**Per-model errors** (these models were skipped; the rest synced)")
        st.dataframe(pd.DataFrame(last["errorDetails"]), hide_index=True, width="stretch")
