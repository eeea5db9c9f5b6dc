"""``litemaas-sync doctor``: the pre-deployment checklist as pass / warn / fail checks.

Each check says what is wrong and how to fix it in one line. The dashboard's health page shows
the same checks. Nothing here writes to the database or to LiteLLM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import requests
import sqlalchemy as sa

from . import migrate
from .db import is_postgres
from .errors import SyncError, describe_db_error
from .litellm import LiteLLMClient
from .runtime import Runtime
from .store import SQLITE_WRITE_TRIGGERS

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_configuration(runtime: Runtime) -> list[Check]:
    settings = runtime.settings
    checks = [Check("configuration", PASS, "environment variables parsed and valid")]
    if settings.mock_mode:
        checks.append(
            Check(
                "litellm url",
                WARN,
                "LITELLM_API_URL is not set: mock mode serves "
                "the bundled demo catalogue; set it for a real deployment",
            )
        )
    elif not settings.litellm_api_key:
        checks.append(
            Check(
                "litellm key",
                WARN,
                "LITELLM_API_KEY is not set; a proxy with a master key will refuse /model/info",
            )
        )
    else:
        checks.append(Check("litellm url", PASS, f"LITELLM_API_URL={settings.litellm_url}"))
    if settings.is_production and settings.is_sqlite:
        checks.append(
            Check(
                "database url",
                WARN,
                "NODE_ENV=production on SQLite; set "
                "DATABASE_URL=postgresql://… to the LiteMaaS database",
            )
        )
    if not settings.sync_api_token:
        checks.append(
            Check(
                "api token",
                WARN,
                "SYNC_API_TOKEN is not set: POST /api/v1/models/sync refuses every call",
            )
        )
    return checks


def check_database(runtime: Runtime) -> list[Check]:
    url = runtime.settings.display_database_url()
    try:
        with runtime.engine.connect() as conn:
            conn.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar()
            max_connections = (
                int(conn.execute(sa.text("SHOW max_connections")).scalar())
                if is_postgres(conn)
                else None
            )
    except sa.exc.SQLAlchemyError as exc:
        return [
            Check(
                "database",
                FAIL,
                f"cannot connect to {url}: {describe_db_error(exc)}; "
                "check DATABASE_URL and that the server is up",
            )
        ]
    checks = [Check("database", PASS, f"connected to {url}")]
    current, head = migrate.current_revision(runtime.engine), migrate.head_revision()
    if current == head:
        checks.append(Check("migrations", PASS, f"schema at revision {head}"))
    else:
        checks.append(
            Check(
                "migrations",
                FAIL,
                f"schema at {current or 'nothing'}, code expects "
                f"{head}; run `litemaas-sync migrate`",
            )
        )
    if current == head and not is_postgres(runtime.engine):
        checks.append(_sqlite_triggers(runtime))
    if is_postgres(runtime.engine):
        checks.append(_temporary_tables(runtime))
    if max_connections is not None:
        pool = runtime.settings.db_max_connections
        if pool > max_connections - 3:
            checks.append(
                Check(
                    "pool size",
                    FAIL,
                    f"DB_MAX_CONNECTIONS={pool} exceeds the "
                    f"server's max_connections={max_connections}",
                )
            )
        elif pool * 2 > max_connections:
            checks.append(
                Check(
                    "pool size",
                    WARN,
                    f"DB_MAX_CONNECTIONS={pool} per replica uses "
                    f"over half of max_connections={max_connections}; two replicas "
                    "could exhaust it",
                )
            )
        else:
            checks.append(
                Check(
                    "pool size",
                    PASS,
                    f"DB_MAX_CONNECTIONS={pool} of max_connections={max_connections}",
                )
            )
    return checks


def _temporary_tables(runtime: Runtime) -> Check:
    """A sync stages rows in a temporary table of its transaction (``row_stage``; rewrites in
    ``store``): a role without the ``TEMPORARY`` privilege cannot sync from LiteLLM."""
    with runtime.engine.connect() as conn:
        allowed = conn.execute(sa.text(
            "SELECT has_database_privilege(current_database(), 'TEMPORARY')")).scalar()
    if not allowed:
        return Check("temporary tables", FAIL, "the role may not create temporary tables, "
                     "which a sync stages its rows in; GRANT TEMPORARY ON DATABASE … TO it")
    return Check("temporary tables", PASS, "the role may create the sync's temporary tables")


def _sqlite_triggers(runtime: Runtime) -> Check:
    """SQLite's write-counting triggers (migrations 0008, 0009): a ``models`` table rebuilt by
    hand loses them, and then every re-sync reads every row and none takes the fast path."""
    with runtime.engine.connect() as conn:
        present = set(conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    missing = [name for name in SQLITE_WRITE_TRIGGERS if name not in present]
    if missing:
        return Check("write triggers", WARN, f"missing {', '.join(missing)} (was a table "
                     "rebuilt?): every re-sync reads every row and never takes the fast path")
    return Check("write triggers", PASS, "rows are versioned and writes counted")


def check_litellm(runtime: Runtime, clock: Callable[[], float] = time.perf_counter) -> list[Check]:
    source = runtime.source
    if not isinstance(source, LiteLLMClient):
        return [Check("litellm", WARN, "mock mode: no LiteLLM contacted")]
    started = clock()
    try:
        entries = source.fetch_entries()
    except SyncError as exc:
        return [Check("litellm", FAIL, f"{exc.kind}: {exc}")]
    latency = (clock() - started) * 1000
    status = PASS if latency < 5000 else WARN
    return [
        Check(
            "litellm",
            status,
            f"/model/info answered with {len(entries)} entries in "
            f"{latency:.0f} ms (the key was accepted)",
        )
    ]


def check_endpoints(base_url: str | None, timeout: float = 5.0) -> list[Check]:
    """The running service's probes and /metrics, when its URL is given."""
    if not base_url:
        return [
            Check(
                "endpoints",
                WARN,
                "not checked: pass --url http://host:8501 to check "
                "the health probes and /metrics of a running dashboard",
            )
        ]
    checks = []
    for name, path in (
        ("readiness probe", "/api/v1/health/ready"),
        ("liveness probe", "/api/v1/health/live"),
        ("health api", "/api/v1/models/health"),
        ("metrics", "/metrics"),
    ):
        url = base_url.rstrip("/") + path
        try:
            response = requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            checks.append(Check(name, FAIL, f"{url}: {type(exc).__name__}"))
            continue
        ok = response.status_code == 200 and (
            path != "/metrics" or b"litemaas_" in response.content
        )
        checks.append(Check(name, PASS if ok else FAIL, f"{url}: HTTP {response.status_code}"))
    return checks


def run_doctor(runtime: Runtime, *, base_url: str | None = None) -> list[Check]:
    checks = check_configuration(runtime)
    database = check_database(runtime)
    checks += database
    checks += check_litellm(runtime)
    checks += check_endpoints(base_url)
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0
