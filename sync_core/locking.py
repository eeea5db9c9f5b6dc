"""One sync at a time, across threads, processes and replicas.

PostgreSQL: a session-level advisory lock on a connection of its own. The holder is labelled via
``application_name``, so a refused caller learns who holds it and since when from
``pg_stat_activity``, and a crashed holder frees the lock with its connection.

SQLite: an exclusive ``flock`` on a file beside the database (the OS frees it when the process
dies); the sync's data transaction then takes SQLite's own write lock with ``BEGIN IMMEDIATE``.
Both refuse at once instead of queueing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import is_postgres, sqlite_path
from .errors import SyncInProgressError

#: (classid, objid) of the advisory lock: "LMSS", 1.
LOCK_KEY = (0x4C4D5353, 1)
_APP_PREFIX = "litemaas-sync lock:"
_memory_lock = threading.Lock()  # in-memory SQLite databases live in one process


def _busy(holder: str | None, since: str | None) -> SyncInProgressError:
    who = f" by {holder}" if holder else ""
    when = f" since {since}" if since else ""
    return SyncInProgressError(
        f"A sync is already running{who}{when}; try again when it ends.", holder=holder, since=since
    )


def current_holder(engine: Engine) -> tuple[str, str] | None:
    """Who holds the sync lock and since when (ISO time), or None when it is free."""
    if is_postgres(engine):
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT a.application_name, a.query_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.classid = :c AND l.objid = :o "
                    # advisory locks are per database; pg_locks shows the whole cluster
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) LIMIT 1"
                ),
                {"c": LOCK_KEY[0], "o": LOCK_KEY[1]},
            ).first()
        if row is None:
            return None
        label = (row[0] or "").removeprefix(_APP_PREFIX) or "another process"
        return label, row[1].isoformat() if row[1] else ""
    path = _lock_file(engine)
    if path is None:
        return ("this process", "") if _memory_lock.locked() else None
    # Read, never lock: even a shared lock taken just to look would make a real sync's
    # exclusive attempt fail. The holder writes this file and empties it on release.
    try:
        with open(path, "rb") as handle:
            info = _read_info(handle.read())
    except OSError:
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None  # free, or its holder died (the OS released the lock with it)
    return str(info.get("holder") or "another process"), str(info.get("since") or "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_info(raw: bytes) -> dict[str, str]:
    try:
        info = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def _lock_file(engine: Engine) -> str | None:
    path = sqlite_path(str(engine.url))
    return None if path is None else f"{path}.sync-lock"


class LockLost(Exception):
    """The sync lock's PostgreSQL session ended while the sync ran (terminated, network)."""


class HeldLock:
    """What :func:`sync_lock` yields: :meth:`verify` before committing proves it is still held.

    A PostgreSQL session lock dies with its connection (``pg_terminate_backend``, a network cut,
    an idle timeout); the sync itself runs on another connection and would not notice, so it
    must not commit once that happened: another sync may already hold the lock.
    """

    def __init__(self, conn: sa.Connection | None = None):
        self._conn = conn

    def verify(self) -> None:
        if self._conn is None:  # SQLite: the file lock lives as long as this process
            return
        try:
            held = self._conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :c AND objid = :o AND pid = pg_backend_pid()"
                ),
                {"c": LOCK_KEY[0], "o": LOCK_KEY[1]},
            ).scalar()
        except sa.exc.SQLAlchemyError as exc:
            raise LockLost(type(getattr(exc, "orig", None) or exc).__name__) from None
        if not held:
            raise LockLost("the advisory lock is no longer held")


@contextlib.contextmanager
def sync_lock(engine: Engine, holder: str) -> Iterator[HeldLock]:
    """Hold the sync lock for the block, or raise :class:`SyncInProgressError` at once."""
    if is_postgres(engine):
        with _postgres_lock(engine, holder) as held:
            yield held
        return
    path = _lock_file(engine)
    if path is None:
        if not _memory_lock.acquire(blocking=False):
            raise _busy("this process", None)
        try:
            yield HeldLock()
        finally:
            _memory_lock.release()
        return
    with _file_lock(path, holder):
        yield HeldLock()


@contextlib.contextmanager
def _postgres_lock(engine: Engine, holder: str) -> Iterator[HeldLock]:
    label = (_APP_PREFIX + holder)[:63]
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(sa.text("SELECT set_config('application_name', :n, false)"), {"n": label})
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": LOCK_KEY[0], "o": LOCK_KEY[1]}
        ).scalar()
        if not got:
            conn.execute(sa.text("RESET application_name"))
            info = current_holder(engine)
            raise _busy(*(info or (None, None)))
        try:
            yield HeldLock(conn)
        finally:
            with contextlib.suppress(Exception):
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:c, :o)"),
                    {"c": LOCK_KEY[0], "o": LOCK_KEY[1]},
                )
                conn.execute(sa.text("RESET application_name"))


@contextlib.contextmanager
def _file_lock(path: str, holder: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(os.pread(fd, 4096, 0))
            raise _busy(info.get("holder"), info.get("since")) from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps({"holder": holder, "since": since, "pid": os.getpid()}), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
