"""One error tree for the product.

The CLI maps these to exit codes, the HTTP routes to status codes and the pages to messages,
so every message here is written for an admin and never contains a secret.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the product raises on purpose."""

    #: Short machine-readable class name, used in audit rows, metrics and API answers.
    kind = "error"


class ConfigError(SyncError):
    """A setting is missing or malformed; the message names the variable and the accepted form."""

    kind = "configuration"


class UpstreamError(SyncError):
    """LiteLLM could not give us a catalogue."""

    kind = "upstream"

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class UpstreamTransientError(UpstreamError):
    """Worth retrying: the network or LiteLLM itself failed (connection, timeout, 5xx)."""

    kind = "upstream_transient"


class LiteLLMConnectionError(UpstreamTransientError):
    kind = "connection"


class LiteLLMTimeoutError(UpstreamTransientError):
    kind = "timeout"


class LiteLLMServerError(UpstreamTransientError):
    """LiteLLM answered 5xx."""

    kind = "server"


class UpstreamPermanentError(UpstreamError):
    """Not worth retrying: our request or LiteLLM's answer is wrong."""

    kind = "upstream_permanent"


class LiteLLMAuthError(UpstreamPermanentError):
    """400/401/403 on /model/info: the key is missing or wrong (LiteLLM answers 400 without a DB)."""

    kind = "authentication"


class LiteLLMDataError(UpstreamPermanentError):
    """The answer is not a model catalogue (bad JSON, wrong shape, model list not loaded)."""

    kind = "data"


class CircuitOpenError(UpstreamError):
    """Too many consecutive failures: we stop calling LiteLLM for a while."""

    kind = "circuit_open"


class StalePlanError(SyncError):
    """LiteLLM or the database changed since the plan was reviewed."""

    kind = "stale_plan"


class PlanExpiredError(StalePlanError):
    kind = "plan_expired"


class SyncInProgressError(SyncError):
    """Another sync holds the lock; carries who holds it and since when when known."""

    kind = "sync_in_progress"

    def __init__(self, message: str, *, holder: str | None = None, since: str | None = None):
        super().__init__(message)
        self.holder = holder
        self.since = since


class SyncSkippedError(SyncError):
    """A sync that was no longer wanted once it held the lock (a scheduled tick another replica
    already handled); nothing ran and nothing is audited."""

    kind = "skipped"


class PermissionDeniedError(SyncError):
    """The actor's role does not allow this action."""

    kind = "permission_denied"


class GuardError(SyncError):
    """A safety guard refused the sync (for example, marking the whole catalogue unavailable)."""

    kind = "guard"


class DatabaseError(SyncError):
    """The database failed; the sync's transaction was rolled back."""

    kind = "database"


def describe_db_error(exc: BaseException) -> str:
    """``Type: first line`` of a database error's cause: short, and free of SQL parameters."""
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).splitlines() or [""])[0][:300]
    return f"{type(cause).__name__}: {first_line}"
