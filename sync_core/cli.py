"""``litemaas-sync``: migrate, diff, sync, health. A thin face: options in, core call, render out.

Exit codes: ``diff`` 0 in sync, 2 changes pending, 1 error; ``sync`` 0 success, 1 failure;
``health`` 0 healthy or warning, 1 error; every command 1 on a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from . import __version__, migrate
from .cli_admin import COMMANDS as ADMIN_COMMANDS
from .cli_admin import add_commands as add_admin_commands
from .cli_admin import cli_actor
from .config import SETTINGS, Settings
from .errors import ConfigError, SyncError, describe_db_error
from .health import check_health
from .logs import configure_logging
from .plan import UNCHANGED, SyncPlan
from .plan_render import plan_to_dict
from .runtime import Runtime, build_runtime
from .sync import SyncResult

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2
#: Set to a list by :mod:`sync_core.launch` for a one-shot process: sync results are kept in
#: it rather than freed object by object just before the process exits (0.04 s at 10,000).
KEEP_UNTIL_EXIT: list[Any] | None = None


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode() + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(value: Any, limit: int = 40) -> str:
    text = "{…}" if isinstance(value, dict) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_plan(plan: SyncPlan) -> str:
    summary = ", ".join(f"{k}={v}" for k, v in plan.summary.items())
    rows = []
    for action in plan.actions:
        if action.action == UNCHANGED:
            continue
        changes = "; ".join(
            f"{f}: {_short(c.old)} → {_short(c.new)}" for f, c in action.changes.items()
        )
        rows.append((action.model_id, action.action, changes or action.reason or ""))
    body = _table(("model", "action", "changes"), rows) if rows else "Nothing to change."
    warnings = "".join(f"\nWARNING: {w}" for w in plan.warnings)
    return f"{body}\n\nSummary: {summary}\nFingerprint: {plan.fingerprint}{warnings}"


def _options(runtime: Runtime, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return runtime.service.options(
        force_update=args.force_update,
        mark_unavailable=not args.no_mark_unavailable,
        allow_empty_catalogue=getattr(args, "allow_empty_catalogue", False),
        only=args.only or None,
    )


def cmd_migrate(runtime: Runtime, args: argparse.Namespace) -> int:
    revision = migrate.upgrade(runtime.engine)
    print(f"Schema at revision {revision} ({runtime.settings.display_database_url()})")
    return EXIT_OK


def cmd_diff(runtime: Runtime, args: argparse.Namespace) -> int:
    computed_at = datetime.now(UTC)
    plan = runtime.service.preview(_options(runtime, args), fresh=True)
    if args.json:
        document = plan_to_dict(plan, include_unchanged=args.all)
        document["computedAt"] = computed_at.isoformat()  # pass to sync --reviewed-at
        _print_json(document)
    else:
        print(render_plan(plan))
    return EXIT_PENDING if plan.has_changes else EXIT_OK


def print_result(result: SyncResult, as_json: bool) -> None:
    if as_json:
        _print_json(result.to_dict())
        return
    data = result.to_dict()
    keys = ("success", "totalModels", "newModels", "updatedModels", "unavailableModels",
            "restoredModels", "deletedModels", "unchangedModels", "skippedModels", "durationMs",
            "syncedAt")
    print(_table(("field", "value"), [(k, data[k]) for k in keys]))
    for error in result.errors:
        print(f"error: {error}")
    if result.error_message:
        print(f"Sync failed: {result.error_message}", file=sys.stderr)


class Output:
    """How admin commands (cli_admin) render: the same table and JSON as the rest."""

    json = staticmethod(_print_json)
    render_plan = staticmethod(render_plan)
    result = staticmethod(print_result)

    @staticmethod
    def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        print(_table(headers, rows))


def cmd_sync(runtime: Runtime, args: argparse.Namespace) -> int:
    options = _options(runtime, args)
    try:
        result = runtime.service.run(
            options,
            trigger="cli",
            actor=cli_actor(),
            expected_fingerprint=args.expect_fingerprint,
            reviewed_at=args.reviewed_at,
            confirm_unavailable=args.confirm_unavailable,
            reason=args.reason,
        )
    except SyncError as exc:  # refused before it started (already running, expired review)
        if not args.json:
            raise
        result = SyncResult(False, "cli", cli_actor().name, datetime.now(UTC), options,
                            error_kind=exc.kind, error_message=str(exc))
    print_result(result, args.json)
    if KEEP_UNTIL_EXIT is not None:
        KEEP_UNTIL_EXIT.append(result)
    return EXIT_OK if result.success else EXIT_ERROR


def cmd_health(runtime: Runtime, args: argparse.Namespace) -> int:
    interval = runtime.settings.sync_interval_seconds if runtime.settings.auto_sync else None
    report = check_health(runtime.service, sync_interval_s=interval)
    if args.json:
        _print_json(report.to_api())
    else:
        probe = report.litellm
        rows = [
            ("status", report.status),
            (
                "litellm",
                "reachable"
                if probe and probe.reachable
                else f"unreachable ({probe.error if probe else '?'})",
            ),
            (
                "litellm latency ms",
                f"{probe.latency_ms:.0f}" if probe and probe.latency_ms is not None else "—",
            ),
            ("circuit breaker", probe.breaker_state if probe else "—"),
            ("database", "ok" if report.database_ok else report.database_error),
            ("models (db)", report.counts.get("total", 0)),
            (
                "available / unavailable",
                f"{report.counts.get('available', 0)} / {report.counts.get('unavailable', 0)}",
            ),
            (
                "models (litellm)",
                report.litellm_models if report.litellm_models is not None else "—",
            ),
            (
                "pending changes",
                report.pending_changes if report.pending_changes is not None else "—",
            ),
            (
                "last successful sync",
                report.last_success_at.isoformat() if report.last_success_at else "never",
            ),
            ("sync timeliness", report.sync_timeliness),
        ]
        print(_table(("check", "value"), rows))
        for issue in report.issues:
            print(f"- {issue}")
    return EXIT_ERROR if report.status == "error" else EXIT_OK


def cmd_worker(runtime: Runtime, args: argparse.Namespace) -> int:
    from .scheduler import scheduler_for

    scheduler = scheduler_for(runtime.service, runtime.settings)
    if args.interval:
        scheduler.interval_s, scheduler.cron = args.interval, None
    if args.once:
        result = scheduler.run_once()
        print(
            f"skipped: {scheduler.last_skip_reason}"
            if result is None
            else f"sync {'succeeded' if result.success else 'failed'}: {result.to_dict()['errorMessage'] or ''}"
        )
        return EXIT_OK if result is None or result.success else EXIT_ERROR
    try:
        scheduler.run_forever()
    except KeyboardInterrupt:
        scheduler.stop()
    return EXIT_OK


def cmd_doctor(runtime: Runtime, args: argparse.Namespace) -> int:
    from .doctor import exit_code, run_doctor

    checks = run_doctor(runtime, base_url=args.url)
    if args.json:
        _print_json({"ok": exit_code(checks) == 0, "checks": [c.as_dict() for c in checks]})
    else:
        print(_table(("check", "status", "detail"), [(c.name, c.status.upper(), c.detail)
                                                     for c in checks]))
    return exit_code(checks)


def _iso_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(f"  {s.env:<30} {s.help}" for s in SETTINGS)
    parser = argparse.ArgumentParser(
        prog="litemaas-sync",
        description="Keep the LiteMaaS models table in step with a LiteLLM proxy.",
        epilog=f"Configuration (environment variables):\n{settings_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create or upgrade the schema (adopts a LiteMaaS database)")

    def sync_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--force-update",
            action="store_true",
            help="rewrite every present model even when unchanged",
        )
        p.add_argument(
            "--no-mark-unavailable",
            action="store_true",
            help="leave models LiteLLM no longer serves as they are",
        )
        p.add_argument(
            "--allow-empty-catalogue",
            action="store_true",
            help="let an empty LiteLLM catalogue mark every model unavailable",
        )
        p.add_argument("--only", action="append", metavar="MODEL",
                       help="touch only this model (repeat for several)")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    diff = sub.add_parser(
        "diff", help="show what a sync would change (exit 2 when changes are pending)"
    )
    sync_options(diff)
    diff.add_argument("--all", action="store_true", help="include unchanged models in --json")

    sync = sub.add_parser("sync", help="sync now, in one transaction")
    sync_options(sync)
    sync.add_argument(
        "--expect-fingerprint",
        metavar="FP",
        help="apply only if the plan still has this fingerprint (from diff --json)",
    )
    sync.add_argument("--reviewed-at", type=_iso_time, metavar="ISO",
                      help="when the plan was reviewed (diff --json's computedAt): refused once "
                      "older than LITELLM_PLAN_TTL")
    sync.add_argument("--confirm-unavailable", type=int, metavar="N",
                      help="confirm marking N models unavailable (needed above "
                      "LITELLM_MAX_UNAVAILABLE_SHARE)")
    sync.add_argument("--reason", help="why, stored in the audit row")
    add_admin_commands(sub)

    worker = sub.add_parser(
        "worker", help="run scheduled syncs in the foreground (separate process)"
    )
    worker.add_argument("--interval", type=int, help="seconds (default: LITELLM_SYNC_INTERVAL)")
    worker.add_argument("--once", action="store_true", help="one tick, then exit")

    doctor = sub.add_parser("doctor", help="pre-deployment checklist (exit 1 when a check fails)")
    doctor.add_argument("--url", help="base URL of a running dashboard to check its probes")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    health = sub.add_parser("health", help="LiteLLM, database, counts, last sync, integrity")
    health.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


COMMANDS = {
    "migrate": cmd_migrate,
    "diff": cmd_diff,
    "sync": cmd_sync,
    "health": cmd_health,
    "worker": cmd_worker,
    "doctor": cmd_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    if settings.mock_mode:
        print(
            "Mock mode: no LITELLM_API_URL set; using the bundled demo catalogue.", file=sys.stderr
        )
    runtime = build_runtime(settings, with_metrics=False)  # (nothing scrapes a command)
    try:
        if args.command not in ("migrate", "doctor") and not migrate.is_up_to_date(runtime.engine):
            print(
                "The database schema is not up to date; run `litemaas-sync migrate` first.",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if args.command in ADMIN_COMMANDS:
            return ADMIN_COMMANDS[args.command](runtime, args, Output)
        return COMMANDS[args.command](runtime, args)
    except SyncError as exc:
        print(f"Error ({exc.kind}): {exc}", file=sys.stderr)
        return EXIT_ERROR
    except sa.exc.SQLAlchemyError as exc:  # one clear line, no traceback
        print(f"Database error ({runtime.settings.display_database_url()}): "
              f"{describe_db_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        runtime.close()
