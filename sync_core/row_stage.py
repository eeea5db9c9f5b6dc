"""Mapped rows streamed into the sync's transaction while the rest are still being mapped.

PostgreSQL does most of a bulk write's work on its own CPU: of a 0.23 s ``COPY`` of 10,000 rows
straight into ``models``, 0.18 s is the server parsing the rows (their JSON metadata above all)
and storing them, while the sync waits. On PostgreSQL a sync therefore ``COPY``-s each row into a
temporary table of its transaction as soon as it is mapped: the server's share runs beside the
mapping instead of after it. The plan is then made exactly as before, and its inserts and
rewrites are written from the table by one set-based statement each (0.07 s at 10,000). Rows
the plan wrote differently from how they were mapped (merges, held fields) or never mapped
(entries the last sync recorded) are ``COPY``-ed in then; a staged row whose target keeps the
database's description has that description put in its place. The table is dropped at commit
and, like everything else, rolled back with a failed sync.

That ``COPY`` stays open while the sync maps, so ``statement_timeout`` (a guard against runaway
statements, not against a long mapping) is lifted for it alone and put back after it. Under
``repeatable read`` or ``serializable`` (``default_transaction_isolation``) nothing is staged:
the transaction's snapshot would be taken at the first staged row, before the mapping, instead
of after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from .mapping import ModelRow
from .plan import PlanAction
from .store import (
    PG_STAGE_COLUMNS,
    PG_UPDATE,
    WRITE_COLUMNS,
    as_sqlalchemy_error,
    driver_cursor,
    driver_run,
    pg_record,
)

_INSERT = f"""
INSERT INTO models ({WRITE_COLUMNS}, created_at, updated_at)
SELECT {WRITE_COLUMNS}, now(), now() FROM {{stage}} WHERE ord = ANY(%(ords)s::integer[])"""


def open_stage(conn: sa.Connection) -> RowStage | None:
    """A stage for the PostgreSQL transaction ``conn`` has just begun, or None where rows must
    not be staged (isolation above read committed). Reads the settings with ``SHOW``, which
    takes no snapshot."""
    isolation, timeout = driver_run(conn, _SHOW_SETTINGS, _show_settings)
    if isolation not in ("read committed", "read uncommitted"):  # (the same in PostgreSQL)
        return None
    return RowStage(conn, lifted_timeout=None if timeout == "0" else timeout)


_SHOW_SETTINGS = "SHOW transaction_isolation; SHOW statement_timeout"


def _show_settings(cursor: Any) -> tuple[str, str]:
    cursor.execute(_SHOW_SETTINGS)  # (one round trip: two results)
    isolation = cursor.fetchone()[0]
    cursor.nextset()
    return isolation, cursor.fetchone()[0]


_REPLACE_DESCRIPTIONS = """
UPDATE {stage} AS s SET description = d.description
FROM unnest(%(ords)s::integer[], %(descriptions)s::text[]) AS d(ord, description)
WHERE s.ord = d.ord"""


class RowStage:
    """A temporary table that mapped rows are ``COPY``-ed into one by one (PostgreSQL only).

    Enter it for the rest of the transaction (an error on the way out aborts an open ``COPY``,
    which would otherwise keep the connection's lock from the rollback); map inside
    :meth:`mapping` with :meth:`add` as the row callback. The table is made at the first row,
    so a sync that maps nothing sends nothing."""

    def __init__(self, conn: sa.Connection, lifted_timeout: str | None = None) -> None:
        self._conn = conn
        self._table = f"_litemaas_stage_{uuid.uuid4().hex[:12]}"
        self._copy_statement = f"COPY {self._table} (ord, {WRITE_COLUMNS}) FROM STDIN"
        self._rows: list[ModelRow] = []
        self._ordinal: dict[int, int] = {}  # id() of a staged row (kept alive in _rows) → ord
        self._created = False
        self._streaming: contextlib.ExitStack | None = None
        self._copy: Any = None
        #: ``statement_timeout`` to put back once the mapping's COPY ends (None: none is set)
        self._timeout = lifted_timeout
        self._mapping = self._lifted = False

    def __enter__(self) -> RowStage:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._end_copy(exc)

    @contextlib.contextmanager
    def mapping(self) -> Iterator[RowStage]:
        """The mapping: its ``COPY`` may stay open as long as it takes (no statement timeout);
        it ends with the mapping, or is aborted when the mapping fails."""
        self._mapping = True
        try:
            with self._copying():
                yield self
        finally:
            self._mapping = False

    def add(self, row: ModelRow) -> None:
        """Stage one mapped row: it travels to the server now, in the open ``COPY``."""
        if self._copy is None:
            self._begin_copy()
        ordinal = len(self._rows)
        self._ordinal[id(row)] = ordinal
        self._rows.append(row)
        try:
            self._copy.write_row((ordinal, *pg_record(row)))
        except self._conn.dialect.loaded_dbapi.Error as error:
            raise as_sqlalchemy_error(self._conn, self._copy_statement, error) from error

    def insert(self, rows: Sequence[ModelRow]) -> int:
        """Insert ``rows`` (new models) into ``models`` from the stage; the count inserted."""
        return self._from_stage(_INSERT, self._ordinals(rows))

    def rewrite(self, actions: Sequence[PlanAction]) -> int:
        """Rewrite the models of ``actions`` (updates, restores) as their targets, from the
        stage; the count rewritten. The description stays the database's where it has one,
        as ``store.update_rows`` writes it. A target that differs from its staged row by the
        description alone (an admin's, kept) has the staged description replaced by its own,
        in one statement; any other difference stages the target itself."""
        ordinals: list[int] = []
        replaced: tuple[list[int], list[str | None]] = ([], [])
        with self._copying():  # (targets staged as themselves)
            for action in actions:
                target, desired = action.target, action.desired
                ordinal = self._ordinal.get(id(desired))
                if ordinal is None or not _same_but_description(target, desired):
                    ordinals.append(self._append(target))
                    continue
                ordinals.append(ordinal)
                if target.description != desired.description:
                    replaced[0].append(ordinal)
                    replaced[1].append(target.description)
        if replaced[0]:
            self._conn.exec_driver_sql(
                _REPLACE_DESCRIPTIONS.format(stage=self._table),
                {"ords": replaced[0], "descriptions": replaced[1]})
        return self._from_stage(PG_UPDATE + " AND r.ord = ANY(%(ords)s::integer[])", ordinals)

    # --- the table and its COPY ---------------------------------------------------------------

    def _ordinals(self, rows: Sequence[ModelRow]) -> list[int]:
        with self._copying():  # (rows not staged yet)
            found = [self._ordinal.get(id(row)) for row in rows]
            return [self._append(row) if o is None else o
                    for o, row in zip(found, rows, strict=True)]

    @contextlib.contextmanager
    def _copying(self) -> Iterator[None]:
        """Rows may be staged inside: their ``COPY`` ends when it does (before any statement
        that writes from the stage), or is aborted when an error ends it."""
        try:
            yield
        except BaseException as exc:
            self._end_copy(exc)
            raise
        self._end_copy(None)

    def _append(self, row: ModelRow) -> int:
        ordinal = len(self._rows)
        self.add(row)
        return ordinal

    def _begin_copy(self) -> None:
        if not self._created:
            self._conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self._table} (ord integer, {PG_STAGE_COLUMNS}) "
                "ON COMMIT DROP")
            self._created = True
        if self._mapping and self._timeout is not None:
            self._conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            self._lifted = True
        streaming = contextlib.ExitStack()
        cursor = streaming.enter_context(driver_cursor(self._conn, self._copy_statement))
        self._copy = streaming.enter_context(cursor.copy(self._copy_statement))
        self._streaming = streaming

    def _end_copy(self, exc: BaseException | None) -> None:
        """Finish the open ``COPY``, or abort it when ``exc`` stopped the sync. The server is
        told only that the sync stopped: its log is not this process's redacted one."""
        streaming, self._streaming, self._copy = self._streaming, None, None
        if streaming is not None:
            if exc is None:
                streaming.__exit__(None, None, None)
            else:
                stopped = _SyncStopped("the sync stopped")
                streaming.__exit__(_SyncStopped, stopped, None)
        if self._lifted:  # (after a failure the rollback puts it back)
            self._lifted = False
            if exc is None:
                self._conn.execute(
                    sa.text("SELECT set_config('statement_timeout', :value, true)"),
                    {"value": self._timeout})

    def _from_stage(self, statement: str, ordinals: list[int]) -> int:
        if not ordinals:
            return 0
        sql = statement.format(stage=self._table)
        return self._conn.exec_driver_sql(sql, {"ords": ordinals}).rowcount


class _SyncStopped(Exception):
    """What an aborted ``COPY`` tells the server (the real error is raised here)."""


def _same_but_description(target: Any, desired: Any) -> bool:
    """Whether the staged copy of ``desired`` (a mapped row) becomes ``target`` by replacing
    its description at most."""
    if not isinstance(desired, ModelRow) or not isinstance(target, ModelRow):
        return False
    return target is desired or target == dataclasses.replace(
        desired, description=target.description)
