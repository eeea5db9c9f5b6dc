"""The admin half of the HTTP API: the plan, policies, approvals, restore, the scheduler switch.

Same rules as the sync route (``api``): a Bearer ``SYNC_API_TOKEN`` compared in constant time,
429 after repeated failures, 64 KiB bodies, and every change goes through the engine's own
admin checks and audit rows. Handlers take the runtime and the request's data and return an
:class:`~sync_core.api.ApiResponse`; ``app.py`` only adapts Starlette requests to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from .api import (
    API_ACTOR,
    MAX_BODY_BYTES,
    ApiResponse,
    _error,
    authenticate,
)
from .control import approve, read_policies, set_policy
from .errors import StalePlanError, SyncError, SyncInProgressError
from .plan_render import plan_to_dict
from .policy import PROTECTABLE_FIELDS, ModelPolicy
from .runtime import Runtime
from .scheduler import set_paused

Handler = Callable[[Runtime, dict[str, Any]], ApiResponse]


def _body(raw: bytes) -> dict[str, Any] | ApiResponse:
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"The body is limited to {MAX_BODY_BYTES} bytes.")
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "bad_request", "The body is not JSON.")
    if not isinstance(data, dict):
        return _error(400, "bad_request", "The body must be a JSON object.")
    return data


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool | ApiResponse:
    value = data.get(key, default)
    if not isinstance(value, bool):
        return _error(400, "bad_request", f"{key} must be true or false.")
    return value


def guarded(handler: Handler) -> Callable[..., ApiResponse]:
    """Authenticate (throttled), parse the JSON body, map engine refusals to statuses."""

    def run(runtime: Runtime, *, authorization: str | None, body: bytes = b"",
            ip_address: str | None = None, **params: Any) -> ApiResponse:
        denied = authenticate(runtime.settings, authorization, ip_address)
        if denied is not None:
            return denied
        data = _body(body)
        if isinstance(data, ApiResponse):
            return data
        try:
            return handler(runtime, {**data, **params})
        except SyncInProgressError as exc:
            return _error(409, exc.kind, str(exc), holder=exc.holder, since=exc.since)
        except StalePlanError as exc:
            return _error(409, exc.kind, str(exc))
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        except SyncError as exc:
            if exc.kind == "snapshot_not_found":
                return _error(404, exc.kind, str(exc))
            return _error(502 if exc.kind in ("connection", "timeout", "server", "data",
                                              "authentication", "circuit_open") else 500,
                          exc.kind, str(exc))

    return run


@guarded
def handle_plan(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``GET /api/v1/models/sync/plan``: what a sync would change now (``diff --json``)."""
    force = _flag(data, "forceUpdate", False)
    mark = _flag(data, "markUnavailable", True)
    for value in (force, mark):
        if isinstance(value, ApiResponse):
            return value
    computed_at = datetime.now(UTC)
    plan = runtime.service.preview(runtime.service.options(force_update=force,
                                                           mark_unavailable=mark), fresh=True)
    return ApiResponse(200, {**plan_to_dict(plan), "computedAt": computed_at.isoformat()})


@guarded
def handle_policies(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``GET /api/v1/models/policies``: pinned models and protected fields."""
    with runtime.engine.connect() as conn:
        policies = read_policies(conn)
    return ApiResponse(200, {m: p.as_dict() for m, p in sorted(policies.items())})


@guarded
def handle_set_policy(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``PUT /api/v1/models/{model_id}/policy`` with ``{"pinned": bool,
    "protectedFields": [field, ...]}`` (both optional: unspecified keeps the current value)."""
    model_id = data["model_id"]
    with runtime.engine.connect() as conn:
        current = read_policies(conn).get(model_id, ModelPolicy())
    pinned = _flag(data, "pinned", current.pinned)
    if isinstance(pinned, ApiResponse):
        return pinned
    fields = data.get("protectedFields", sorted(current.protected_fields))
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        return _error(400, "bad_request", "protectedFields must be a list of field names: "
                      + ", ".join(PROTECTABLE_FIELDS))
    policy = ModelPolicy(pinned, frozenset(fields))
    set_policy(runtime.engine, model_id, policy, API_ACTOR)
    return ApiResponse(200, {"model_id": model_id, **policy.as_dict()})


@guarded
def handle_approve(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``POST /api/v1/models/sync/approve`` with ``{"models": [...]}`` (optional): approve the
    suspicious changes LiteLLM has now, so scheduled syncs apply them."""
    models = data.get("models")
    if models is not None and (not isinstance(models, list)
                               or not all(isinstance(m, str) for m in models)):
        return _error(400, "bad_request", "models must be a list of model ids.")
    plan = runtime.service.preview(runtime.service.options(), fresh=True)
    keys = plan.approval_keys(models)
    if keys:
        approve(runtime.engine, [k for _, _, k in keys], API_ACTOR)
    return ApiResponse(200, {"approved": [{"model_id": m, "field": f} for m, f, _ in keys]})


@guarded
def handle_restore(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``POST /api/v1/models/sync/restore`` with ``{"syncId": id, "apply": bool,
    "expectFingerprint": fp, "confirmUnavailable": n}``: the restore plan, or its result."""
    sync_id = data.get("syncId")
    if not isinstance(sync_id, str) or not sync_id:
        return _error(400, "bad_request", "syncId (a sync's audit id) is required.")
    apply = _flag(data, "apply", False)
    if isinstance(apply, ApiResponse):
        return apply
    service = runtime.restore_service(sync_id)
    options = service.options()
    if not apply:
        return ApiResponse(200, plan_to_dict(service.preview(options)))
    confirm = data.get("confirmUnavailable")
    if confirm is not None and (type(confirm) is not int or confirm < 0):
        return _error(400, "bad_request", "confirmUnavailable must be a whole number.")
    result = service.run(options, trigger="api", actor=API_ACTOR,
                         expected_fingerprint=data.get("expectFingerprint"),
                         confirm_unavailable=confirm,
                         reason=f"restore the catalogue as it stood after sync {sync_id}")
    return ApiResponse(200 if result.success else 409 if result.error_kind in (
        "guard", "stale_plan") else 502, result.to_dict())


@guarded
def handle_pause(runtime: Runtime, data: dict[str, Any]) -> ApiResponse:
    """``POST /api/v1/scheduler/pause`` with ``{"paused": bool}``: the switch every replica
    reads."""
    paused = _flag(data, "paused", True)
    if isinstance(paused, ApiResponse):
        return paused
    set_paused(runtime.service, paused, API_ACTOR)
    return ApiResponse(200, {"paused": paused})
