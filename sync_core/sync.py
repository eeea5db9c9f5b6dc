"""The sync service: fetch → map → plan → apply in one transaction → audit.

The only writer of the ``models`` table. Every face (start-up, scheduler, CLI, HTTP API,
dashboard) calls :meth:`SyncService.run`; reviewing without writing is :meth:`SyncService.preview`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import audit, control, fast_path, known_entries, retention
from .access import Actor, require_admin
from .bulk import gc_paused
from .db import is_postgres
from .entry_split import map_answer
from .errors import (
    DatabaseError,
    GuardError,
    PlanExpiredError,
    StalePlanError,
    SyncError,
    SyncSkippedError,
    describe_db_error,
)
from .locking import HeldLock, LockLost, sync_lock
from .mapping import MappedCatalogue, map_catalogue
from .plan import (
    DELETE,
    INSERT,
    MARK_UNAVAILABLE,
    RESTORE,
    SKIP,
    UNCHANGED,
    UPDATE,
    SyncOptions,
    SyncPlan,
    build_plan,
)
from .policy import Selection
from .row_stage import open_stage
from .store import apply_plan, read_current_rows

log = logging.getLogger("sync_core.sync")

TRIGGERS = ("startup", "schedule", "manual", "cli", "api")


class CatalogueSource(Protocol):
    """What the service needs from a LiteLLM client (live or mock)."""

    mode: str
    model_info_url: str

    def fetch_entries(self) -> list[Any]: ...

    def cached_entries(self) -> list[Any]: ...

    def clear_cache(self) -> None: ...


@dataclass
class SyncResult:
    """What a sync did. ``to_dict`` gives LiteMaaS's keys plus ours."""

    success: bool
    trigger: str
    actor: str
    synced_at: datetime
    options: SyncOptions
    total_models: int = 0
    new_models: int = 0
    updated_models: int = 0
    unavailable_models: int = 0
    restored_models: int = 0
    deleted_models: int = 0
    unchanged_models: int = 0
    skipped_models: int = 0
    errors: list[str] = field(default_factory=list)
    error_details: list[dict[str, Any]] = field(default_factory=list)
    error_kind: str | None = None
    error_message: str | None = None
    duration_ms: float = 0.0
    fingerprint: str | None = None
    audit_id: str | None = None
    plan: SyncPlan | None = field(default=None, repr=False)
    #: True when nothing changed since the last sync and the work was skipped (fast_path).
    fast_path: bool = False
    #: The audit id of the sync whose record of known entries this one loaded: rows it planned
    #: without reading them (``KnownRow``) are as that sync left them (``snapshots``).
    recorded_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "totalModels": self.total_models,
            "newModels": self.new_models,
            "updatedModels": self.updated_models,
            "unavailableModels": self.unavailable_models,
            "restoredModels": self.restored_models,
            "deletedModels": self.deleted_models,
            "unchangedModels": self.unchanged_models,
            "skippedModels": self.skipped_models,
            "errors": list(self.errors),
            "errorDetails": list(self.error_details),
            "errorKind": self.error_kind,
            "errorMessage": self.error_message,
            "syncedAt": self.synced_at.isoformat(),
            "durationMs": round(self.duration_ms, 1),
            "trigger": self.trigger,
            "actor": self.actor,
            "options": self.options.as_dict(),
            "fingerprint": self.fingerprint,
            "auditId": self.audit_id,
            "fastPath": self.fast_path,
        }


def _count_plan(result: SyncResult, plan: SyncPlan) -> None:
    summary = plan.summary
    result.new_models = summary[INSERT]
    result.updated_models = summary[UPDATE]
    result.unavailable_models = summary[MARK_UNAVAILABLE]
    result.restored_models = summary[RESTORE]
    result.unchanged_models = summary[UNCHANGED]
    result.skipped_models = summary[SKIP]
    result.fingerprint = plan.fingerprint
    for action in plan.actions:
        if action.action == SKIP and action.reason and action.reason.startswith("data_error"):
            result.errors.append(f"{action.model_id}: {action.reason.removeprefix('data_error: ')}")
            result.error_details.append(
                {"model_id": action.model_id, "kind": "data_error", "reason": action.reason}
            )


def _database_error(exc: sa.exc.SQLAlchemyError, *, reading: bool = False) -> DatabaseError:
    what = "could not read the catalogue" if reading else "nothing was written"
    return DatabaseError(f"Database error, {what} ({describe_db_error(exc)})")


def _fail(result: SyncResult, exc: SyncError) -> None:
    """Nothing was written: report the error and no changes (the plan stays for diagnosis)."""
    result.success = False
    result.error_kind, result.error_message = exc.kind, str(exc)
    result.new_models = result.updated_models = result.unavailable_models = 0
    result.restored_models = result.deleted_models = 0


class SyncService:
    """Owns the engine and the LiteLLM source; safe to share between threads."""

    def __init__(
        self,
        engine: Engine,
        source: CatalogueSource,
        *,
        conflict_resolution: str = "litellm_wins",
        clock: Callable[[], float] = time.perf_counter,
        on_finished: Callable[[SyncResult], None] | None = None,
        selection: Selection | None = None,
        retention_days: int | None = None,
        max_unavailable_share: float = 0.5,
        plan_ttl_s: float = 900.0,
    ):
        self.engine = engine
        self.source = source
        self.conflict_resolution = conflict_resolution
        self.selection = selection or Selection()
        self.retention_days = retention_days
        self.max_unavailable_share = max_unavailable_share
        self.plan_ttl_s = plan_ttl_s
        self._clock = clock
        self._on_finished = on_finished

    def options(
        self,
        *,
        force_update: bool = False,
        mark_unavailable: bool = True,
        allow_empty_catalogue: bool = False,
        only: Iterable[str] | None = None,
        hold_suspicious: bool = False,
    ) -> SyncOptions:
        """Options with the configured policy filled in: conflict resolution, selection,
        retention and, for syncs that hold suspicious changes, the admins' approvals."""
        selection = self.selection
        if only is not None:
            selection = dataclasses.replace(selection, only=frozenset(only))
        return SyncOptions(
            force_update=force_update,
            mark_unavailable=mark_unavailable,
            conflict_resolution=self.conflict_resolution,
            allow_empty_catalogue=allow_empty_catalogue,
            selection=selection,
            hold_suspicious=hold_suspicious,
            approvals=control.approvals(self.engine) if hold_suspicious else frozenset(),
            retention_days=self.retention_days,
        )

    def _plan(self, conn: sa.Connection, catalogue: MappedCatalogue,
              options: SyncOptions, current: Mapping[str, Any] | None = None) -> SyncPlan:
        """The plan against the database as ``conn`` sees it (``current``: its rows, when already
        read), with the admins' policies."""
        since = None
        if options.retention_days is not None:
            blockers = retention.referenced_by(conn)
            if blockers:
                log.warning("retention is on but %s reference models: nothing is deleted",
                            ", ".join(blockers))
            else:
                since = retention.unavailable_since(conn)
        current = read_current_rows(conn) if current is None else current
        return build_plan(catalogue, current, options,
                          policies=control.read_policies(conn), unavailable_since=since,
                          now=datetime.now(UTC))

    # --- reading ------------------------------------------------------------------------------

    def catalogue(self, *, fresh: bool = False) -> MappedCatalogue:
        entries = self.source.fetch_entries() if fresh else self.source.cached_entries()
        with gc_paused():
            return map_catalogue(entries)

    def current_rows(self) -> Mapping[str, Any]:
        try:
            with self.engine.connect() as conn:
                return read_current_rows(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(exc, reading=True) from None

    def preview(self, options: SyncOptions | None = None, *, fresh: bool = False) -> SyncPlan:
        """The plan a sync would apply now; writes nothing. Page views use the cached catalogue."""
        catalogue = self.catalogue(fresh=fresh)
        try:
            with self.engine.connect() as conn:
                return self._plan(conn, catalogue, options or self.options())
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(exc, reading=True) from None

    # --- writing ------------------------------------------------------------------------------

    def run(
        self,
        options: SyncOptions | None = None,
        *,
        trigger: str,
        actor: Actor,
        expected_fingerprint: str | None = None,
        reviewed_at: datetime | None = None,
        confirm_unavailable: int | None = None,
        reason: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        still_wanted: Callable[[], str | None] | None = None,
    ) -> SyncResult:
        """Sync now. Refuses at once (raises) for viewers, for a reviewed plan older than the
        plan TTL, and while another sync runs; every sync that started returns a result and
        leaves one audit row.

        ``confirm_unavailable`` is the number of models an admin typed to confirm marking more
        than ``max_unavailable_share`` of the available models unavailable."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        require_admin(actor)
        if reviewed_at is not None:
            age = (datetime.now(UTC) - reviewed_at).total_seconds()
            if age > self.plan_ttl_s:
                raise PlanExpiredError(
                    f"The reviewed plan is {age / 60:.0f} minutes old (plans expire after "
                    f"{self.plan_ttl_s / 60:.0f}); review the diff again."
                )
        options = options or self.options()
        started = self._clock()
        result = SyncResult(False, trigger, actor.name, datetime.now(UTC), options)
        audit_id = str(uuid.uuid4())  # (the record of known entries names it: snapshots)
        try:
            lock = sync_lock(self.engine, f"{trigger}:{actor.name}")
            held = lock.__enter__()
        except sa.exc.SQLAlchemyError as exc:  # the database is unreachable: nothing started
            raise _database_error(exc) from None
        if still_wanted is not None:  # decided under the lock: another replica may just have run
            skip = still_wanted()
            if skip is not None:
                lock.__exit__(None, None, None)
                raise SyncSkippedError(skip)
        try:
            log.info("sync started", extra={"trigger": trigger, "actor": actor.name})
            try:
                self._run_locked(result, options, expected_fingerprint, held,
                                 confirm_unavailable, audit_id)
                result.success = True
            except SyncError as exc:
                _fail(result, exc)
            except sa.exc.SQLAlchemyError as exc:
                _fail(result, _database_error(exc))
            except LockLost as exc:
                _fail(
                    result,
                    DatabaseError(
                        f"The sync lost its lock ({exc}); nothing was written, sync again"
                    ),
                )
            except Exception as exc:  # a bug must not skip the audit row or hide the failure
                log.exception("sync failed unexpectedly")
                _fail(
                    result,
                    SyncError(f"Unexpected error, nothing was written ({type(exc).__name__})"),
                )
            result.duration_ms = (self._clock() - started) * 1000
            self._audit(result, reason, ip_address, user_agent, audit_id)
        finally:
            lock.__exit__(None, None, None)
        self._log_outcome(result)
        if self._on_finished is not None:
            try:
                self._on_finished(result)
            except Exception:  # a listener must never fail a sync that already committed
                log.exception("sync listener failed")
        return result

    def _run_locked(
        self,
        result: SyncResult,
        options: SyncOptions,
        expected_fingerprint: str | None,
        held: HeldLock | None = None,
        confirm_unavailable: int | None = None,
        audit_id: str | None = None,
    ) -> None:
        digest = body = None
        known = known_entries.Loaded(0)  # (sources without a body record no entries)
        fetch_body = getattr(self.source, "fetch_body", None)
        if fetch_body is None:  # mock and snapshot sources hand over parsed entries
            catalogue = map_catalogue(self.source.fetch_entries())
        else:
            body = fetch_body()
            with self.engine.connect() as conn:  # one connection for both records
                digest = fast_path.body_digest(body)
                if fast_path.eligible(options, expected_fingerprint) and self._unchanged(
                        conn, result, digest, options):
                    return
                # (a forced sync rewrites every row: it maps them all)
                known = known_entries.load(conn, priors=not options.force_update)
                result.recorded_by = known.audit
        postgres = is_postgres(self.engine)
        with contextlib.ExitStack() as scope:
            connection = self.engine.connect()
            if not postgres:  # (SQLite's write lock is taken as the transaction begins)
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            conn = scope.enter_context(connection)
            stage = None
            if body is not None:
                if postgres:  # mapped rows stream into the sync's transaction (row_stage)
                    transaction = conn.begin()
                    stage = open_stage(conn)
                    if stage is None:  # nothing staged: the transaction begins after mapping
                        transaction.rollback()
                    else:  # (an error aborts the stage's COPY before the rollback)
                        scope.enter_context(transaction)
                        scope.enter_context(stage)
                # entry by entry, each parsed entry dropped once mapped (entry_split); entries
                # the last sync mapped are only recognised (known_entries)
                with stage.mapping() if stage is not None else contextlib.nullcontext():
                    catalogue = map_answer(body, self.source.model_info_url, known.known,
                                           known.seed, stage.add if stage is not None else None)
                del body  # (recognised entries keep it until they are resolved)
            result.total_models = catalogue.entry_count
            # The client's page-view copy of the catalogue is stale now: drop it before the
            # database work allocates its own buffers.
            self.source.clear_cache()
            # tens of thousands of acyclic rows and plan actions: without collector passes over
            # them (bulk.gc_paused), planning and recording cost half as much (not around the
            # fetch: its retries and back-off may take a while, and other threads need the
            # collector)
            scope.enter_context(gc_paused())
            if not conn.in_transaction():
                scope.enter_context(conn.begin())
            resolved = known_entries.resolve(conn, catalogue, options,
                                             trust_versions=expected_fingerprint is None)
            plan = self._plan(conn, resolved.catalogue, options, resolved.current)
            result.plan = plan
            if expected_fingerprint is not None and expected_fingerprint != plan.fingerprint:
                raise StalePlanError(
                    "Stale plan: LiteLLM or the database changed since it was reviewed; "
                    "review the diff again."
                )
            _count_plan(result, plan)
            if plan.warnings and not options.allow_empty_catalogue:
                raise GuardError(plan.warnings[0] + "; refused (an admin can override explicitly)")
            if not options.allow_empty_catalogue:  # the explicit override covers both guards
                self._guard_mass_unavailable(plan, result.trigger, confirm_unavailable)
            apply_plan(conn, plan, stage)
            result.deleted_models = retention.delete_rows(
                conn, [a.model_id for a in plan.by_action(DELETE)])
            known_entries.record(conn, resolved, plan, known, audit_id)
            if digest is not None:
                fast_path.record(conn, digest, options, plan, result.total_models,
                                 result.errors, result.error_details)
            if held is not None:
                held.verify()  # never commit once the lock is gone: another sync may hold it

    def _unchanged(self, conn: sa.Connection, result: SyncResult, digest: str,
                   options: SyncOptions) -> bool:
        """Fill the result from the last sync's record when nothing changed since (fast path)."""
        state = fast_path.recorded(conn, digest, options)
        if state is None:
            return False
        result.total_models = state["entryCount"]
        result.unchanged_models = state["unchanged"]
        result.skipped_models = state["skipped"]
        result.errors = list(state["errors"])
        result.error_details = list(state["errorDetails"])
        result.fast_path = True
        return True

    def available_count(self, plan: SyncPlan) -> int:
        """Models available in the database when the plan was made."""
        return sum(1 for a in plan.actions
                   if a.current is not None and a.current.availability == "available")

    def confirmation_needed(self, plan: SyncPlan) -> int | None:
        """The number an admin must give to apply this plan (it marks more than
        ``max_unavailable_share`` of the available models unavailable), or None."""
        marking = plan.summary[MARK_UNAVAILABLE]
        if marking and marking > self.max_unavailable_share * self.available_count(plan):
            return marking
        return None

    def _guard_mass_unavailable(self, plan: SyncPlan, trigger: str,
                                confirm: int | None) -> None:
        """Marking more than the allowed share of available models unavailable: scheduled syncs
        refuse; anyone else must confirm by giving the exact number."""
        needed = self.confirmation_needed(plan)
        if needed is None:
            return
        share = (f"{needed} of {self.available_count(plan)} available models unavailable "
                 f"(over {self.max_unavailable_share:.0%})")
        if trigger == "schedule":
            raise GuardError(f"This sync would mark {share}; scheduled syncs refuse. "
                             "Review it on the Diff page and sync by hand.")
        if confirm != needed:
            raise GuardError(f"This sync would mark {share}; confirm by giving the number "
                             f"{needed}.")

    def _audit(
        self, result: SyncResult, reason: str | None, ip: str | None, user_agent: str | None,
        audit_id: str | None = None,
    ) -> None:
        metadata = {
            "trigger": result.trigger,
            "actor": result.actor,
            "reason": reason,
            "options": result.options.as_dict(),
            "counts": {
                "total": result.total_models,
                "new": result.new_models,
                "updated": result.updated_models,
                "unavailable": result.unavailable_models,
                "restored": result.restored_models,
                "unchanged": result.unchanged_models,
                "skipped": result.skipped_models,
                "errors": len(result.errors),
            },
            "errors": result.errors[: audit.MAX_AUDITED_ERRORS],
            "errorKind": result.error_kind,
            "durationMs": round(result.duration_ms, 1),
            "fingerprint": result.fingerprint,
            "source": self.source.mode,
            "fastPath": result.fast_path,
        }
        try:
            result.audit_id = audit.write_audit(
                self.engine,
                action=audit.SYNC_ACTION,
                success=result.success,
                error_message=result.error_message,
                metadata=metadata,
                ip_address=ip,
                user_agent=user_agent,
                audit_id=audit_id,
            )
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not write the audit row: %s", type(exc).__name__)

    @staticmethod
    def _log_outcome(result: SyncResult) -> None:
        summary = (
            f"new={result.new_models} updated={result.updated_models} "
            f"unavailable={result.unavailable_models} restored={result.restored_models} "
            f"errors={len(result.errors)} duration_ms={result.duration_ms:.0f}"
        )
        if not result.success:
            log.error("sync failed (%s): %s", result.error_kind, result.error_message)
        elif result.errors:
            log.warning("sync completed with errors: %s", summary)
        else:
            log.info("sync completed: %s", summary)
        if result.plan is not None and log.isEnabledFor(logging.DEBUG):
            for action in result.plan.actions:
                if action.action in (INSERT, UPDATE, RESTORE, MARK_UNAVAILABLE):
                    log.debug(
                        "model %s: %s %s", action.model_id, action.action, ",".join(action.changes)
                    )
