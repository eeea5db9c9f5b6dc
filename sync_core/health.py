"""Is the catalogue healthy? LiteLLM reachability, database, counts, last sync, data integrity.

One :func:`check_health` feeds the CLI (``health``), the HTTP API (LiteMaaS's shape) and the
dashboard's health page. Each part fails on its own: a dead LiteLLM still gives database counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import audit
from .errors import SyncError
from .litellm import ProbeResult
from .mapping import SKIP_DUPLICATE, SKIP_WILDCARD, MappedCatalogue, ModelRow, features_for
from .plan import WRITING_ACTIONS, build_plan
from .store import model_counts, read_current_rows
from .sync import SyncService

HEALTHY, WARNING, ERROR = "healthy", "warning", "error"
#: A sync is "late" after this many scheduled intervals without success.
LATE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class IntegrityIssue:
    check: str
    message: str
    model_ids: tuple[str, ...]
    severity: str = WARNING


@dataclass
class HealthReport:
    status: str
    checked_at: datetime
    litellm: ProbeResult | None
    database_ok: bool
    database_error: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    litellm_models: int | None = None
    pending_changes: int | None = None
    pending_summary: Mapping[str, int] = field(default_factory=dict)
    last_sync: Mapping[str, Any] | None = None
    last_success_at: datetime | None = None
    last_success_age_s: float | None = None
    sync_timeliness: str = "unknown"  # on_time, late, error, never
    integrity: list[IntegrityIssue] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """LiteMaaS's ``GET /api/v1/models/health`` shape, plus details."""
        return {
            "status": self.status,
            "lastSync": self.last_success_at.isoformat() if self.last_success_at else None,
            "modelsCount": self.counts.get("total", 0),
            "litellmConnected": bool(self.litellm and self.litellm.reachable),
            "issues": list(self.issues),
            "details": {
                "checkedAt": self.checked_at.isoformat(),
                "database": {"ok": self.database_ok, "error": self.database_error},
                "litellm": asdict(self.litellm) if self.litellm else None,
                "counts": dict(self.counts),
                "litellmModels": self.litellm_models,
                "pendingChanges": self.pending_changes,
                "pendingSummary": dict(self.pending_summary),
                "lastSuccessAgeSeconds": self.last_success_age_s,
                "syncTimeliness": self.sync_timeliness,
                "integrity": [asdict(i) for i in self.integrity],
            },
        }


def integrity_checks(
    rows: Iterable[ModelRow], catalogue: MappedCatalogue | None
) -> list[IntegrityIssue]:
    """Data problems an admin should fix, each with the offending models."""
    rows = list(rows)
    found: list[IntegrityIssue] = []

    def add(check: str, message: str, ids: Iterable[str], severity: str = WARNING) -> None:
        ids = tuple(sorted(ids))
        if ids:
            found.append(IntegrityIssue(check, f"{message} ({len(ids)})", ids, severity))

    available = [r for r in rows if r.availability == "available"]
    add(
        "unknown_provider",
        "Models with an unknown provider",
        (r.id for r in rows if r.provider in ("", "unknown")),
    )
    add(
        "missing_price",
        "Available models without an input or output price",
        (
            r.id
            for r in available
            if r.input_cost_per_token is None or r.output_cost_per_token is None
        ),
    )
    add(
        "negative_price",
        "Models with a negative price",
        (
            r.id
            for r in rows
            if any(
                c is not None and c < 0 for c in (r.input_cost_per_token, r.output_cost_per_token)
            )
        ),
        ERROR,
    )
    add(
        "features_mismatch",
        "Models whose features disagree with their capability flags",
        (
            r.id
            for r in rows
            if r.features
            != features_for(
                r.supports_function_calling, r.supports_parallel_function_calling, r.supports_vision
            )
        ),
    )
    add(
        "invalid_availability",
        "Models with an availability other than available/unavailable",
        (r.id for r in rows if r.availability not in ("available", "unavailable")),
        ERROR,
    )
    if catalogue is not None:
        add(
            "upstream_duplicates",
            "Model names served by several LiteLLM deployments",
            {s.model_id for s in catalogue.skips if s.kind == SKIP_DUPLICATE},
        )
        add(
            "upstream_wildcards",
            "Wildcard routes in LiteLLM (not synced)",
            {s.model_id for s in catalogue.skips if s.kind == SKIP_WILDCARD},
        )
        add(
            "upstream_data_errors",
            "LiteLLM entries that cannot be stored",
            {s.model_id for s in catalogue.errors},
            ERROR,
        )
    return found


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_health(
    service: SyncService, *, sync_interval_s: float | None = None, now: datetime | None = None
) -> HealthReport:
    """Probe everything; never raises for a failing part, reports it instead."""
    now = now or datetime.now(UTC)
    probe = service.source.probe() if hasattr(service.source, "probe") else None
    report = HealthReport(status=HEALTHY, checked_at=now, litellm=probe, database_ok=True)
    rows: dict[str, ModelRow] = {}
    try:
        with service.engine.connect() as conn:
            rows = read_current_rows(conn)
            report.counts = model_counts(conn)
        last = audit.last_sync(service.engine)
        last_ok = audit.last_sync(service.engine, successful=True)
    except sa.exc.SQLAlchemyError as exc:
        report.database_ok = False
        report.database_error = f"{type(getattr(exc, 'orig', None) or exc).__name__}: database unreachable or not migrated"
        last = last_ok = None
    report.last_sync = last
    if last_ok:
        report.last_success_at = _parse_time(last_ok["created_at"])
        report.last_success_age_s = (now - report.last_success_at).total_seconds()

    catalogue: MappedCatalogue | None = None
    if probe is None or probe.reachable:
        try:
            catalogue = service.catalogue()
            report.litellm_models = len(catalogue.rows)
        except SyncError as exc:
            report.issues.append(f"LiteLLM catalogue unavailable: {exc}")
    if catalogue is not None and report.database_ok:
        plan = build_plan(catalogue, rows, service.options())
        report.pending_summary = {k: v for k, v in plan.summary.items() if k in WRITING_ACTIONS}
        report.pending_changes = sum(report.pending_summary.values())
    report.integrity = integrity_checks(rows.values(), catalogue)

    # timeliness of the last successful sync
    if last is None:
        report.sync_timeliness = "never"
    elif not last.get("success"):
        report.sync_timeliness = "error"
    elif (
        sync_interval_s
        and report.last_success_age_s is not None
        and (report.last_success_age_s > LATE_AFTER_INTERVALS * sync_interval_s)
    ):
        report.sync_timeliness = "late"
    else:
        report.sync_timeliness = "on_time"

    errors: list[str] = []
    warnings: list[str] = []
    if not report.database_ok:
        errors.append(f"Database: {report.database_error}")
    if probe is not None and not probe.reachable:
        errors.append(f"LiteLLM unreachable: {probe.error}")
    if report.sync_timeliness == "error":
        warnings.append(f"Last sync failed: {last.get('error_message') if last else ''}")
    elif report.sync_timeliness == "late":
        warnings.append(f"Last successful sync was {report.last_success_age_s:.0f} s ago")
    elif report.sync_timeliness == "never":
        warnings.append("No sync has run yet")
    if report.pending_changes:
        warnings.append(f"{report.pending_changes} changes pending in LiteLLM")
    for issue in report.integrity:
        (errors if issue.severity == ERROR else warnings).append(issue.message)
    report.issues = errors + warnings + report.issues
    report.status = ERROR if errors else WARNING if warnings or report.issues else HEALTHY
    return report
