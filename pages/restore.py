"""Restore: put the catalogue back as it stood after an earlier sync, as a reviewed plan.

Every sync that changed the catalogue keeps a snapshot of it (``sync_core.snapshots``). Restoring
one is an ordinary sync whose source is the snapshot instead of LiteLLM: the page shows its plan,
the admin applies exactly that plan (its fingerprint and the time it was first shown go to the
engine, which refuses a plan that changed or expired), guarded and audited like any other sync.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from pages import ui
from sync_core.control import SCHEDULER_PAUSED, get_control
from sync_core.errors import SyncError
from sync_core.locking import current_holder
from sync_core.plan import ACTIONS, UNCHANGED
from sync_core.snapshots import list_snapshots

REVIEW_KEY = "_restore_review"  # the plan shown by the previous run: what a click applies
RESULT_KEY = "restore_result"

app, ident = ui.page_context()
engine = app.runtime.engine
st.title("Restore")
st.subheader("Restore an earlier catalogue")
st.caption(
    "Every sync that changed the catalogue keeps a snapshot of the models it left available "
    "(the most recent ones are kept). Restoring a snapshot is a sync whose source is the "
    "snapshot instead of LiteLLM: planned and shown here, guarded, applied in one transaction "
    "and written to the audit log."
)


def show_result() -> None:
    last: dict[str, Any] | None = st.session_state.get(RESULT_KEY)
    if not last:
        return
    st.subheader("Result of your last restore")
    if last["success"]:
        st.success(
            f"Restored the catalogue of sync {last['syncId']} at {ui.fmt_time(last['syncedAt'])}: "
            f"{last['newModels']} new, {last['updatedModels']} updated, "
            f"{last['unavailableModels']} marked unavailable, {last['restoredModels']} "
            "made available again."
        )
    elif last["errorKind"] in ("stale_plan", "plan_expired"):
        st.error(f"Restore refused: {ui.plain(last['errorMessage'])} The plan above is the current one.")
    elif last["errorKind"] == "guard":
        st.error(f"Restore refused by a safety guard: {ui.plain(last['errorMessage'])}")
    else:
        st.error(f"Restore failed ({last['errorKind']}): {ui.plain(last['errorMessage'])}")


kept = list_snapshots(engine)
if not kept:
    st.info(
        "No snapshot is kept yet. A snapshot of the catalogue is stored after each sync that "
        "changes it (start-up, scheduled, manual, CLI or API); once a sync has changed "
        "something, its catalogue can be restored here.",
        icon=":material/inventory_2:",
    )
    show_result()
    st.stop()

by_id = {s["sync_audit_id"]: s for s in kept}
latest = kept[0]["sync_audit_id"]


def label(sync_id: str) -> str:
    snap = by_id[sync_id]
    count = snap["model_count"]
    return (
        f"{ui.fmt_time(ui.as_utc(snap['created_at']))} UTC · sync {sync_id} · "
        f"{count} model{'' if count == 1 else 's'}" + (" · latest" if sync_id == latest else "")
    )


pick_col, mark_col = st.columns([3, 1], vertical_alignment="bottom")
pick = pick_col.selectbox(
    f"Snapshot ({len(kept)} kept, newest first)",
    list(by_id),
    index=None,
    format_func=label,
    placeholder="Choose the sync whose catalogue to restore",
    key="restore_pick",
)
mark_unavailable = mark_col.toggle(
    "markUnavailable",
    value=True,
    key="restore_mark",
    help="Mark models that are not in the snapshot as unavailable (never deleted). "
    "Off: they are left as they are.",
)
if pick is None:
    st.info("Choose a snapshot to see what restoring it would change.", icon=":material/restore:")
    show_result()
    st.stop()

try:
    service = app.runtime.restore_service(pick)
    options = service.options(mark_unavailable=mark_unavailable)
    plan = service.preview(options)
except SyncError as exc:  # pruned since the list was read, or the database failed
    st.error(f"Cannot plan this restore: {exc}")
    show_result()
    st.stop()

st.markdown(f"**What restoring the catalogue of sync `{pick}` would change**")
ui.plan_metrics(plan)
for warning in plan.warnings:
    st.warning(warning)
table = ui.plan_table(plan, [a for a in ACTIONS if a != UNCHANGED], always_noted=True)
if plan.has_changes:
    notes = ["held back", "suspicious", "conflicts"]  # shown when some model has one
    st.dataframe(
        table.drop(columns=[c for c in notes if not table[c].astype(bool).any()]),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 400),
    )
else:
    st.success("The database already matches this snapshot: restoring it would change nothing.")

# What a click applies is the plan this run shows; the previous run's plan if it is the same
# snapshot and options (the engine refuses it when the database changed in between).
previous = st.session_state.get(REVIEW_KEY)
key = [pick, mark_unavailable]
if previous is None or previous["key"] != key or previous["fingerprint"] != plan.fingerprint:
    st.session_state[REVIEW_KEY] = {
        "key": key,
        "fingerprint": plan.fingerprint,
        "reviewed_at": datetime.now(UTC),
    }
if previous is None or previous["key"] != key:
    previous = st.session_state[REVIEW_KEY]

needed = service.confirmation_needed(plan)
confirm_count: int | None = None
if needed is not None:
    st.warning(
        f"This restore marks {needed} of the {service.available_count(plan)} available models "
        f"unavailable, more than {service.max_unavailable_share:.0%}. Type the number of models "
        "to mark unavailable to confirm.",
        icon=":material/warning:",
    )
    typed = st.text_input(
        f"Number of models to mark unavailable ({needed})",
        key="restore_confirm_count",
        max_chars=9,
        placeholder="type the number",
        disabled=not ident.actor.can_sync,
    ).strip()
    confirm_count = int(typed) if typed.isdigit() else None

reason = st.text_input(
    "Reason (optional, stored in the audit log)",
    key="restore_reason",
    max_chars=400,
    disabled=not ident.actor.can_sync,
)

scheduler = get_control(engine, SCHEDULER_PAUSED, {}) or {}
after = (
    "Scheduled syncs are on and **not paused**: the next one undoes this restore. Pause them "
    "on the **Health** page first to keep it."
    if app.settings.auto_sync and not scheduler.get("paused")
    else "Scheduled syncs are paused (Health page)."
    if app.settings.auto_sync
    else "Scheduled syncs are off; a manual, CLI or API sync still moves it."
)
st.info(
    "The next sync from LiteLLM will move the catalogue again unless scheduled syncs are "
    f"paused (Health page). {after}",
    icon=":material/schedule:",
)
holder = current_holder(engine)
if holder:
    st.warning(f"A sync is already running by {holder[0]} since {holder[1] or 'just now'}.")

disabled_why = None
if not ident.actor.can_sync:
    disabled_why = f"Only admins can restore. {ident.reason}"
elif not plan.has_changes:
    disabled_why = "Nothing to restore: the database already matches this snapshot."
elif needed is not None and confirm_count is None:
    disabled_why = "Type the number of models to mark unavailable first."
if disabled_why:
    st.caption(f":material/block: {disabled_why}")
clicked = st.button(
    "Restore",
    type="primary",
    disabled=disabled_why is not None,
    help=disabled_why,
    icon=":material/restore:",
    key="restore_run",
)

if clicked:
    with st.status(f"Restoring the catalogue of sync {pick}…", expanded=True) as status:
        st.write("Comparing the snapshot with the database and writing in one transaction")
        try:
            result = service.run(
                options,
                trigger="manual",
                actor=ident.actor,
                expected_fingerprint=previous["fingerprint"],
                reviewed_at=previous["reviewed_at"],
                confirm_unavailable=confirm_count,
                reason=f"restore the catalogue as it stood after sync {pick}"
                + (f": {reason.strip()}" if reason.strip() else ""),
            )
            outcome = {"syncId": pick, **result.to_dict()}
        except SyncError as exc:  # nothing started: expired review, lock held, not an admin
            outcome = {
                "syncId": pick,
                "success": False,
                "errorKind": exc.kind,
                "errorMessage": str(exc),
            }
        if outcome["success"]:
            status.update(label=f"Restored in {outcome['durationMs']:.0f} ms", state="complete")
        else:
            status.update(label="Restore refused or failed: nothing was written", state="error")
    st.session_state[RESULT_KEY] = outcome
    if outcome["success"]:
        st.session_state.pop(REVIEW_KEY, None)
        st.session_state.pop("restore_reason", None)
        st.session_state.pop("restore_confirm_count", None)
        st.rerun()  # show the catalogue as it now is: this snapshot's plan is empty
    if outcome["errorKind"] != "guard":  # a guard keeps the review: fix the number, retry
        st.session_state[REVIEW_KEY] = {
            "key": key,
            "fingerprint": plan.fingerprint,
            "reviewed_at": datetime.now(UTC),
        }

show_result()
