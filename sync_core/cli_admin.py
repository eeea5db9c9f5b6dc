"""Admin commands of ``litemaas-sync``: policies (pin, protect), approvals, restore.

Separate from ``cli`` to keep each module to one concern; ``cli.build_parser`` mounts these.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from .access import Actor
from .control import approve, read_policies, set_policy
from .plan_render import plan_to_dict
from .policy import PROTECTABLE_FIELDS, ModelPolicy
from .runtime import Runtime
from .snapshots import list_snapshots

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def cli_actor() -> Actor:
    """Whoever runs the CLI has shell access to the deployment: an admin."""
    return Actor(f"cli:{getpass.getuser()}", "admin")


def cmd_policy(runtime: Runtime, args: argparse.Namespace, out: Any) -> int:
    with runtime.engine.connect() as conn:
        policies = read_policies(conn)
    if args.policy_command == "list":
        rows = [(m, "yes" if p.pinned else "", ", ".join(sorted(p.protected_fields)))
                for m, p in sorted(policies.items())]
        if args.json:
            out.json({m: p.as_dict() for m, p in sorted(policies.items())})
        else:
            out.table(("model", "pinned", "protected fields"), rows) if rows else print(
                "No model is pinned or protected.")
        return EXIT_OK
    current = policies.get(args.model, ModelPolicy())
    if args.policy_command in ("pin", "unpin"):
        new = ModelPolicy(args.policy_command == "pin", current.protected_fields)
    elif args.policy_command == "protect":
        new = ModelPolicy(current.pinned, current.protected_fields | set(args.fields))
    else:  # unprotect
        remaining = current.protected_fields - set(args.fields) if args.fields else frozenset()
        new = ModelPolicy(current.pinned, frozenset(remaining))
    set_policy(runtime.engine, args.model, new, cli_actor())
    print(f"{args.model}: pinned={new.pinned} protected={sorted(new.protected_fields)}")
    return EXIT_OK


def cmd_approve(runtime: Runtime, args: argparse.Namespace, out: Any) -> int:
    plan = runtime.service.preview(runtime.service.options(), fresh=True)
    keys = plan.approval_keys(args.models or None)
    if keys:
        approve(runtime.engine, [k for _, _, k in keys], cli_actor())
    if args.json:
        out.json({"approved": [{"model_id": m, "field": f} for m, f, _ in keys]})
    else:
        print("\n".join(f"approved {m}.{f}" for m, f, _ in keys) or "No suspicious change.")
    return EXIT_OK


def cmd_restore(runtime: Runtime, args: argparse.Namespace, out: Any) -> int:
    if args.list or not args.sync_id:
        kept = list_snapshots(runtime.engine)
        if args.json:
            out.json(kept)
        else:
            out.table(("sync audit id", "taken at", "models"),
                      [(s["sync_audit_id"], s["created_at"], s["model_count"]) for s in kept])
        return EXIT_OK
    service = runtime.restore_service(args.sync_id)
    options = service.options(mark_unavailable=not args.no_mark_unavailable)
    if not args.apply:
        plan = service.preview(options)
        out.json(plan_to_dict(plan)) if args.json else print(out.render_plan(plan))
        return EXIT_PENDING if plan.has_changes else EXIT_OK
    result = service.run(options, trigger="cli", actor=cli_actor(),
                         expected_fingerprint=args.expect_fingerprint,
                         confirm_unavailable=args.confirm_unavailable,
                         reason=f"restore the catalogue as it stood after sync {args.sync_id}")
    out.result(result, args.json)
    return EXIT_OK if result.success else EXIT_ERROR


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = sub.add_parser("policy", help="pin models and protect fields from syncs")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    listing = actions.add_parser("list", help="pinned models and protected fields")
    listing.add_argument("--json", action="store_true")
    for name, text in (("pin", "never mark this model unavailable"), ("unpin", "undo pin")):
        actions.add_parser(name, help=text).add_argument("model")
    protect = actions.add_parser("protect", help="never overwrite these fields of the model")
    protect.add_argument("model")
    protect.add_argument("fields", nargs="+", choices=PROTECTABLE_FIELDS, metavar="FIELD")
    unprotect = actions.add_parser("unprotect", help="let syncs write these fields again (all "
                                   "when none is given)")
    unprotect.add_argument("model")
    unprotect.add_argument("fields", nargs="*", metavar="FIELD")  # argparse rejects [] with choices

    approve_cmd = sub.add_parser("approve", help="approve the suspicious changes LiteLLM has now "
                                 "so scheduled syncs apply them")
    approve_cmd.add_argument("models", nargs="*", help="only these models (default: all)")
    approve_cmd.add_argument("--json", action="store_true")

    restore = sub.add_parser("restore", help="restore the catalogue as it stood after an earlier "
                             "sync (a plan reviewed like any other)")
    restore.add_argument("sync_id", nargs="?", help="the sync's audit id (see --list)")
    restore.add_argument("--list", action="store_true", help="the snapshots kept")
    restore.add_argument("--apply", action="store_true", help="apply it (default: show the plan)")
    restore.add_argument("--expect-fingerprint", metavar="FP")
    restore.add_argument("--confirm-unavailable", type=int, metavar="N")
    restore.add_argument("--no-mark-unavailable", action="store_true")
    restore.add_argument("--json", action="store_true")


COMMANDS = {"policy": cmd_policy, "approve": cmd_approve, "restore": cmd_restore}
