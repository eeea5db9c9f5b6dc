"""What every page shares: the cached runtime, the role, the banners and a few formatters.

One module so no page copies them. The runtime comes from :func:`sync_core.api.get_app_runtime`
(start-up runs once per process, in the server's lifespan or on the first page run when there
is no server, as under AppTest); ``st.cache_resource`` keeps the page reruns from even taking its
lock. The role decides what a page offers; ``SyncService.run`` refuses viewers by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from sync_core.api import AppRuntime, Identity, get_app_runtime, resolve_identity
from sync_core.config import Settings
from sync_core.errors import SyncError
from sync_core.plan import (
    DELETE,
    INSERT,
    MARK_UNAVAILABLE,
    RESTORE,
    SKIP,
    UNCHANGED,
    UPDATE,
    PlanAction,
    SyncPlan,
)
from sync_core.policy import ModelPolicy, approval_key
from sync_core.schema import MODEL_WRITE_COLUMNS

#: Plan actions in the words the pages use.
ACTION_LABELS = {
    INSERT: "new",
    UPDATE: "changed",
    UNCHANGED: "unchanged",
    MARK_UNAVAILABLE: "to mark unavailable",
    RESTORE: "restored",
    SKIP: "skipped",
    DELETE: "to delete (retention)",
}
REVIEWED_KEY = "reviewed_plan"  # session_state: the plan reviewed on the Diff page
#: What REVIEWED_KEY holds: fingerprint, force_update, mark_unavailable, only (sorted model ids
#: or None), reviewed_at (aware UTC datetime; the engine refuses it after ``plan_ttl_s``).


def fmt_minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''}"


@st.cache_resource(show_spinner="Connecting to the database and running start-up…")
def _cached_runtime(_settings: Settings, key: int) -> AppRuntime:
    """Keyed by the settings' hash so a changed environment (tests) gets its own runtime."""
    return get_app_runtime(_settings)


def app_runtime() -> AppRuntime:
    """The process's runtime; a configuration or database error stops the page with its message."""
    try:
        settings = Settings.from_env()
        return _cached_runtime(settings, hash(settings))
    except SyncError as exc:
        st.error(f"Configuration problem: {exc}")
        st.stop()
    except Exception as exc:  # the database is down or cannot be migrated
        st.error(f"Start-up failed ({type(exc).__name__}): {str(exc).splitlines()[0][:300]}")
        st.stop()
    raise AssertionError("unreachable")


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def identity(app: AppRuntime) -> Identity:
    """Who this session is; the login button when [auth] is configured and nobody is logged in."""
    configured = _auth_configured()
    user: Mapping[str, Any] = st.user.to_dict() if configured else {}
    ident = resolve_identity(app.settings, auth_configured=configured, user=user)
    if configured:
        with st.sidebar:
            if ident.logged_in:
                st.caption(f"Signed in as {ident.actor.name} ({ident.actor.role})")
                st.button("Log out", on_click=st.logout)
            else:
                st.button("Log in", on_click=st.login, type="primary")
    return ident


def banners(app: AppRuntime, ident: Identity) -> None:
    """Mock/demo mode and read-only mode are said on every page, never silently."""
    settings = app.settings
    if settings.is_demo:
        st.info(
            "**Demo mode**: embedded SQLite and the bundled mock LiteLLM catalogue. "
            "Set LITELLM_API_URL and DATABASE_URL to manage a real deployment.",
            icon=":material/science:",
        )
    elif settings.mock_mode:
        st.info(
            "**Mock mode**: the catalogue is the bundled mock, not a live LiteLLM "
            "(no LITELLM_API_URL is set).",
            icon=":material/science:",
        )
    if not ident.actor.can_sync:
        st.warning(f"**Read-only**: {ident.reason}", icon=":material/lock:")
    if app.startup and app.startup.sync_error:
        st.warning(f"The start-up sync did not complete: {app.startup.sync_error}")


def page_context() -> tuple[AppRuntime, Identity]:
    """The runtime and the identity for a page (set by ``app.py`` before the page runs)."""
    app = app_runtime()
    return app, st.session_state.get("_identity") or identity(app)


# --- formatters ---------------------------------------------------------------------------------


def fmt_time(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def as_utc(value: Any) -> datetime | None:
    """Audit and model times as aware UTC datetimes (SQLite hands them back naive)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fmt_age(value: Any) -> str:
    """ "3 min ago": what an admin wants from a last-sync tile."""
    moment = as_utc(value)
    if moment is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def short(value: Any, limit: int = 60) -> str:
    text = "—" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


PLAN_COLUMNS = [
    "model",
    "action",
    "changed fields",
    "held back",
    "suspicious",
    "conflicts",
    "reason",
]


def plan_table(
    plan: SyncPlan,
    actions: Iterable[str] | None = None,
    *,
    approved: frozenset[str] = frozenset(),
    always_noted: bool = False,
) -> pd.DataFrame:
    """One row per model of the plan: its action, the changed fields, what the sync holds back
    (protected or suspicious), the suspicious changes and merge conflicts, and the reason.

    ``always_noted`` lists models with held changes or conflicts whatever their action (a model
    whose only difference is a protected field is "unchanged" but worth seeing)."""
    wanted = set(actions) if actions is not None else None
    rows = [
        {
            "model": a.model_id,
            "action": ACTION_LABELS[a.action],
            "changed fields": ", ".join(a.changes),
            "held back": held_text(a),
            "suspicious": suspicious_text(a, approved),
            "conflicts": ", ".join(a.conflicts),
            "reason": a.reason or "",
        }
        for a in plan.actions
        if wanted is None or a.action in wanted or (always_noted and (a.held or a.conflicts))
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """Text for a Markdown-rendering element (subheader, markdown, error) shown as plain text:
    model names and upstream messages may carry Markdown, HTML, emoji codes or LaTeX."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def plan_metrics(plan: SyncPlan, actions: Iterable[str] | None = None) -> None:
    """One metric per plan action, in the pages' words ("New", "Changed", …); retention's
    deletions only when retention is configured (the plan then counts them)."""
    summary = plan.summary
    shown = list(actions or (INSERT, UPDATE, UNCHANGED, MARK_UNAVAILABLE, RESTORE, SKIP))
    if DELETE in summary and DELETE not in shown:
        shown.append(DELETE)
    for col, action in zip(st.columns(len(shown)), shown, strict=True):
        col.metric(ACTION_LABELS[action].capitalize(), summary.get(action, 0))


def held_text(action: PlanAction) -> str:
    """ "input_cost_per_token (protected)": the changes this sync leaves out, and why."""
    return ", ".join(f"{name} ({_held_why(why)})" for name, why in action.held.items())


def _held_why(why: str) -> str:
    return "protected" if why.startswith("protected") else "suspicious, not approved"


def suspicious_text(action: PlanAction, approved: frozenset[str] = frozenset()) -> str:
    """ "⚠ context_length" per flag; approved ones say so (scheduled syncs then apply them)."""
    return ", ".join(
        f"⚠ {name}" + (" (approved)" if suspicious_key(action, name) in approved else "")
        for name in action.flags
    )


def suspicious_key(action: PlanAction, name: str) -> str:
    """The approval key of one flagged change: this field of this model taking the new value.

    Valid for plans that do not hold suspicious changes (the Diff page's): their target carries
    LiteLLM's new value."""
    target = action.target if action.target is not None else action.desired
    return approval_key(action.model_id, name, getattr(target, name) if target else None)


def policy_badges(policy: ModelPolicy | None) -> str:
    """ "📌 pinned · 🔒 2 protected": a model's admin policy in a table cell."""
    if policy is None:
        return ""
    parts = []
    if policy.pinned:
        parts.append("📌 pinned")
    if policy.protected_fields:
        parts.append(f"🔒 {', '.join(sorted(policy.protected_fields))}")
    return " · ".join(parts)


SIDE_COLUMNS = ["field", "database", "LiteLLM", "changed"]


def side_by_side(plan: SyncPlan, model_id: str, *, changed_only: bool) -> pd.DataFrame:
    """field | database | LiteLLM for one model; ``changed`` marks the fields a sync rewrites.

    When the model has held changes, suspicious changes or merge conflicts, a ``note`` column
    says which field and why; held and conflicting fields are listed in "changed only" too
    (LiteLLM differs from the database there, although the sync keeps the database's value)."""
    action = next((a for a in plan.actions if a.model_id == model_id), None)
    if action is None:
        return pd.DataFrame(columns=SIDE_COLUMNS)
    notes = {
        **{n: f"⚠ suspicious: {why}" for n, why in action.flags.items()},
        **{
            n: "conflict: changed in the database and in LiteLLM; database kept"
            for n in action.conflicts
        },
        **{n: f"held: {why}" for n, why in action.held.items()},
    }
    current, desired = action.current, action.desired
    fields = [*MODEL_WRITE_COLUMNS[1:]]  # every written column but the id, in table order
    rows = []
    for name in fields:
        old = getattr(current, name) if current is not None else None
        new = getattr(desired, name) if desired is not None else None
        changed = name in action.changes or current is None  # a new model: every field is
        if changed_only and not changed and name not in notes:
            continue
        row = {
            "field": name,
            "database": _cell(old, current is None),
            "LiteLLM": _cell(new, desired is None),
            "changed": changed,
        }
        if notes:
            row["note"] = notes.get(name, "")
        rows.append(row)
    return pd.DataFrame(rows, columns=SIDE_COLUMNS + (["note"] if notes else []))


def _cell(value: Any, absent: bool) -> str:
    if absent:
        return "(absent)"
    if isinstance(value, tuple):
        return ", ".join(value) or "—"
    if isinstance(value, Mapping):
        return short(dict(value), 120)
    if isinstance(value, Decimal):  # a per-token price: exact, and per 1M tokens beside it
        return f"{format(value.normalize(), 'f')} (${float(value) * 1_000_000:.4g} / 1M tokens)"
    return "—" if value is None else str(value)


def highlight_changed(frame: pd.DataFrame) -> Any:
    """A Styler that paints changed rows amber and held or conflicting rows red, so the
    difference is seen before it is read."""

    def paint(row: pd.Series) -> list[str]:
        note = str(row.get("note") or "")
        if note.startswith(("held", "conflict")):
            colour = "background-color: rgba(244, 67, 54, 0.22)"
        elif row.get("changed"):
            colour = "background-color: rgba(255, 193, 7, 0.25)"
        else:
            colour = ""
        return [colour] * len(row)

    return frame.style.apply(paint, axis=1)


def empty_chart(message: str) -> None:
    st.info(message, icon=":material/bar_chart:")
