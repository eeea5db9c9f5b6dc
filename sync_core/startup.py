"""The start-up sequence: migrate, then an initial sync; a failed sync does not stop start-up.

Demo mode (nothing configured) seeds an empty database from an older snapshot of the mock
catalogue instead of syncing, so a newcomer's first visit has a real diff to review.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from . import migrate
from .access import Actor
from .config import Settings
from .errors import ConfigError, SyncError, describe_db_error
from .mock_litellm import MockLiteLLMClient
from .runtime import Runtime
from .store import model_counts
from .sync import SyncResult

log = logging.getLogger("sync_core.startup")
STARTUP_ACTOR = Actor("startup", "admin")


@dataclass
class StartupReport:
    revision: str | None
    sync: SyncResult | None
    sync_error: str | None = None
    demo_seeded: bool = False


def _seed_demo(runtime: Runtime) -> SyncResult:
    seeder = runtime.service_for(MockLiteLLMClient("previous"))
    return seeder.run(
        trigger="startup",
        actor=Actor("demo-seed", "admin"),
        reason="demo mode: seeded from an older snapshot of the mock catalogue",
    )


def run_startup(runtime: Runtime, *, initial_sync: bool = True) -> StartupReport:
    """Migrate (errors propagate: a broken database stops start-up), then sync (errors logged)."""
    revision = migrate.upgrade(runtime.engine)
    log.info("database schema at revision %s", revision)
    report = StartupReport(revision=revision, sync=None)
    if not initial_sync:
        return report
    try:
        if runtime.settings.is_demo:
            with runtime.engine.connect() as conn:
                empty = model_counts(conn)["total"] == 0
            if empty:
                report.sync = _seed_demo(runtime)
                report.demo_seeded = True
                log.info("demo mode: database seeded from the previous mock snapshot")
                return report
        options = runtime.service.options(force_update=False, mark_unavailable=True)
        report.sync = runtime.service.run(options, trigger="startup", actor=STARTUP_ACTOR)
        if not report.sync.success:
            report.sync_error = report.sync.error_message
            log.warning("start-up sync failed; serving anyway: %s", report.sync.error_message)
    except SyncError as exc:  # e.g. another replica is syncing right now
        report.sync_error = str(exc)
        log.warning("start-up sync skipped: %s", exc)
    return report


def describe_failure(exc: BaseException, settings: Settings | None) -> str:
    """One line saying what stopped start-up and how to fix it (never a secret)."""
    if isinstance(exc, ConfigError):
        return f"Configuration error: {exc}"
    if isinstance(exc, sa.exc.SQLAlchemyError):
        where = settings.display_database_url() if settings else "DATABASE_URL"
        return (f"Database not usable at {where}: {describe_db_error(exc)}. "
                "Check DATABASE_URL and that the server is up; start-up stopped.")
    return f"Start-up failed: {type(exc).__name__}: {exc}"
