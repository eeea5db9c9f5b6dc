"""The HTTP API's logic and the one runtime per server process that it shares with the pages.

The route handlers in ``app.py`` only adapt Starlette requests to these functions: each takes
the runtime and the request's data and returns an :class:`ApiResponse` (status + JSON body), so
the whole API is testable without a server and without streamlit. The API authenticates itself
(custom routes get no login and no XSRF check): a Bearer ``SYNC_API_TOKEN`` compared in
constant time, and no token configured means the sync route is closed, never open.

:func:`get_app_runtime` builds the runtime and runs the start-up sequence once per process and
configuration; the server's lifespan calls it at start, the pages' ``st.cache_resource`` calls
it when they run without a server (AppTest), and both get the same object.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from cachetools import TTLCache

from .access import ADMIN, VIEWER, Actor
from .catalogue_queries import catalogue_kpis
from .config import Settings
from .errors import SyncError, SyncInProgressError
from .health import check_health
from .runtime import Runtime, build_runtime
from .scheduler import Scheduler, scheduler_for
from .startup import StartupReport, run_startup
from .sync import SyncService

log = logging.getLogger("sync_core.api")

API_ACTOR = Actor("api", ADMIN)
SYNC_BODY_KEYS = {"forceUpdate": False, "markUnavailable": True}
#: Failed-sync error kinds → HTTP status (anything else failing is a 500).
_FAILURE_STATUS = {
    "upstream": 502,
    "upstream_transient": 502,
    "upstream_permanent": 502,
    "connection": 502,
    "timeout": 502,
    "server": 502,
    "authentication": 502,
    "data": 502,
    "circuit_open": 502,
    "database": 503,
    "guard": 409,
    "stale_plan": 409,
}


# --- one runtime per process --------------------------------------------------------------------


@dataclass
class AppRuntime:
    """The runtime plus what its start-up did, for the pages' banners and the health page."""

    runtime: Runtime
    startup: StartupReport | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    scheduler: Scheduler | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def service(self) -> SyncService:
        return self.runtime.service


_lock = threading.Lock()
_runtimes: dict[Settings, AppRuntime] = {}


def build_app_runtime(settings: Settings) -> Runtime:
    """The engine's runtime (its syncs feed the metrics and the per-model history)."""
    return build_runtime(settings)


def start_scheduler(entry: AppRuntime) -> Scheduler | None:
    """Scheduled syncs in this server process when LITELLM_AUTO_SYNC is on (once per entry)."""
    if not entry.settings.auto_sync:
        return None
    if entry.scheduler is None:
        entry.scheduler = scheduler_for(entry.service, entry.settings)
        entry.scheduler.start()
    return entry.scheduler


def get_app_runtime(settings: Settings | None = None, *, startup: bool = True) -> AppRuntime:
    """The process's runtime for these settings, migrating and syncing the first time only."""
    settings = settings or Settings.from_env()
    with _lock:
        existing = _runtimes.get(settings)
        if existing is not None:
            return existing
        runtime = build_app_runtime(settings)
        try:
            report = run_startup(runtime) if startup else None
        except Exception:
            runtime.close()
            raise
        entry = AppRuntime(runtime, report)
        _runtimes[settings] = entry
        return entry


def reset_runtimes() -> None:
    """Dispose every runtime of this process (server shutdown, and between tests)."""
    with _lock:
        for entry in _runtimes.values():
            if entry.scheduler is not None:
                entry.scheduler.stop()
            entry.runtime.close()
        _runtimes.clear()


# --- roles -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who is looking at the dashboard, and why they have the role they have."""

    actor: Actor
    reason: str
    logged_in: bool = False


def _split(raw: str | None) -> set[str]:
    return {part.strip().lower() for part in (raw or "").split(",") if part.strip()}


def resolve_identity(
    settings: Settings,
    *,
    auth_configured: bool,
    user: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Identity:
    """Role from the login (``ADMIN_EMAILS`` / ``ADMIN_GROUPS``), or from the mode without one.

    This decides what the page offers; :func:`sync_core.access.require_admin` is what refuses.
    """
    admin_emails = settings.admin_emails if environ is None else _split(environ.get("ADMIN_EMAILS"))
    admin_groups = settings.admin_groups if environ is None else _split(environ.get("ADMIN_GROUPS"))
    if auth_configured:
        user = user or {}
        email = str(user.get("email") or "").lower()
        if not user.get("is_logged_in") or not email:
            return Identity(Actor("anonymous", VIEWER), "Log in to sync.")
        groups = user.get("groups") or []
        groups = {str(g).lower() for g in (groups if isinstance(groups, list) else [groups])}
        if email in admin_emails or groups & admin_groups:
            return Identity(
                Actor(email, ADMIN),
                "Admin by the ADMIN_EMAILS / ADMIN_GROUPS list.",
                logged_in=True,
            )
        return Identity(
            Actor(email, VIEWER),
            f"{email} is not in ADMIN_EMAILS or ADMIN_GROUPS, so this session is read-only.",
            logged_in=True,
        )
    if settings.is_development:
        return Identity(
            Actor("local-admin", ADMIN),
            "No login is configured; development/demo mode makes everyone admin.",
        )
    return Identity(
        Actor("viewer", VIEWER),
        "No login is configured ([auth] in .streamlit/secrets.toml), and in "
        "production an anonymous visitor is read-only.",
    )


# --- HTTP handlers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]


def _error(status: int, error: str, message: str, **extra: Any) -> ApiResponse:
    return ApiResponse(status, {"success": False, "error": error, "message": message, **extra})


#: The sync route's body is two booleans: anything bigger than this is refused unread.
MAX_BODY_BYTES = 64 * 1024
#: Failed token checks per client address before 429, and how long they are remembered.
MAX_AUTH_FAILURES = 10
AUTH_FAILURE_WINDOW_S = 60
_failures: TTLCache[str, int] = TTLCache(maxsize=10_000, ttl=AUTH_FAILURE_WINDOW_S)
_failures_lock = threading.Lock()


def check_token(settings: Settings, authorization: str | None) -> ApiResponse | None:
    """None when the Bearer token is right; the 401 answer otherwise."""
    expected = settings.sync_api_token.reveal() if settings.sync_api_token else ""
    if not expected:
        return _error(
            401,
            "sync_api_disabled",
            "The sync API is disabled: SYNC_API_TOKEN is not set on the server.",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        return _error(401, "unauthorized", "Missing or invalid Bearer token.")
    return None


def authenticate(settings: Settings, authorization: str | None,
                 ip_address: str | None) -> ApiResponse | None:
    """None when the caller may go on; 429 after repeated failures from its address, else the
    token check's 401."""
    client = ip_address  # the server always knows it; direct callers (tests) may not
    if client is not None and _failures.get(client, 0) >= MAX_AUTH_FAILURES:
        return _error(429, "too_many_failures", "Too many failed attempts; try again later.",
                      retryAfter=AUTH_FAILURE_WINDOW_S)
    denied = check_token(settings, authorization)
    if denied is not None and client is not None:
        with _failures_lock:
            _failures[client] = _failures.get(client, 0) + 1
    return denied


def parse_sync_body(body: bytes) -> dict[str, Any] | ApiResponse:
    """``{"forceUpdate": bool, "markUnavailable": bool, "confirmUnavailable": int}``, all
    optional; anything else is 400."""
    if not body.strip():
        return dict(SYNC_BODY_KEYS)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "bad_request", "The body is not JSON.")
    if not isinstance(data, dict):
        return _error(400, "bad_request", "The body must be a JSON object.")
    unknown = sorted(set(data) - set(SYNC_BODY_KEYS) - {"confirmUnavailable"})
    if unknown:
        return _error(400, "bad_request", f"Unknown keys {unknown}; accepted: forceUpdate, "
                      "markUnavailable, confirmUnavailable.")
    options: dict[str, Any] = dict(SYNC_BODY_KEYS)
    for key, value in data.items():
        if key == "confirmUnavailable":
            if type(value) is not int or value < 0:
                return _error(400, "bad_request", "confirmUnavailable must be a whole number.")
        elif not isinstance(value, bool):
            return _error(400, "bad_request", f"{key} must be true or false.")
        options[key] = value
    return options


def handle_sync(
    runtime: Runtime,
    *,
    authorization: str | None,
    body: bytes,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> ApiResponse:
    """``POST /api/v1/models/sync``: throttle, authenticate, validate, sync (blocking: call
    from a thread)."""
    denied = authenticate(runtime.settings, authorization, ip_address)
    if denied is not None:
        return denied
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"The body is limited to {MAX_BODY_BYTES} bytes.")
    parsed = parse_sync_body(body)
    if isinstance(parsed, ApiResponse):
        return parsed
    options = runtime.service.options(
        force_update=parsed["forceUpdate"], mark_unavailable=parsed["markUnavailable"]
    )
    try:
        result = runtime.service.run(
            options,
            trigger="api",
            actor=API_ACTOR,
            confirm_unavailable=parsed.get("confirmUnavailable"),
            ip_address=ip_address,
            user_agent=(user_agent or "")[:500],
        )
    except SyncInProgressError as exc:
        return _error(409, "sync_in_progress", str(exc), holder=exc.holder, since=exc.since)
    except SyncError as exc:
        return _error(500, exc.kind, str(exc))
    status = 200 if result.success else _FAILURE_STATUS.get(result.error_kind or "", 500)
    return ApiResponse(status, result.to_dict())


def _interval(settings: Settings) -> float | None:
    return float(settings.sync_interval_seconds) if settings.auto_sync else None


def handle_health(runtime: Runtime) -> ApiResponse:
    """``GET /api/v1/models/health``: LiteMaaS's shape; 200 even when unhealthy (see status)."""
    report = check_health(runtime.service, sync_interval_s=_interval(runtime.settings))
    if report.pending_changes is not None and runtime.metrics is not None:
        runtime.metrics.observe_pending(report.pending_changes)
    return ApiResponse(200, report.to_api())


def handle_stats(runtime: Runtime) -> ApiResponse:
    """``GET /api/v1/models/sync/stats``: model counts and the last successful sync (DB only)."""
    kpis = catalogue_kpis(runtime.engine)
    last = kpis["last_sync_at"]
    if isinstance(last, datetime) and last.tzinfo is None:  # SQLite returns naive UTC times
        last = last.replace(tzinfo=UTC)
    return ApiResponse(
        200,
        {
            "totalModels": kpis["total"],
            "availableModels": kpis["available"],
            "unavailableModels": kpis["unavailable"],
            "lastSyncAt": last.isoformat() if isinstance(last, datetime) else last,
        },
    )


def handle_metrics(runtime: Runtime) -> tuple[int, bytes, str]:
    """``GET /metrics``: Prometheus text (no auth, like most exporters; no secrets in it)."""
    from .metrics import CONTENT_TYPE

    if runtime.metrics is None:  # (the API's runtime always has them)
        return 404, b"no metrics in this process\n", "text/plain"
    return 200, runtime.metrics.render(), CONTENT_TYPE


def handle_live() -> ApiResponse:
    """``GET /api/v1/health/live``: the process answers (Kubernetes liveness; no I/O)."""
    return ApiResponse(200, {"status": "ok"})


def handle_ready(runtime: Runtime) -> ApiResponse:
    """``GET /api/v1/health/ready``: database reachable and schema at the latest migration."""
    from . import migrate

    try:
        current = migrate.current_revision(runtime.engine)
    except sa.exc.SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        return ApiResponse(503, {"status": "not_ready", "reason": f"database unreachable ({cause})"})
    head = migrate.head_revision()
    if current != head:
        return ApiResponse(503, {"status": "not_ready",
                                 "reason": f"schema at {current or 'nothing'}, expected {head}"})
    return ApiResponse(200, {"status": "ready", "schema": head})


def dumps(body: Mapping[str, Any]) -> bytes:
    """JSON for the routes (datetimes and decimals included)."""
    return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
