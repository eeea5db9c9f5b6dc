"""Reading the current catalogue and writing a plan, set-based, on PostgreSQL and SQLite.

The number of statements per sync does not depend on the number of models, and on PostgreSQL
no statement carries the rows as one big parameter: they stream in with ``COPY``.

- PostgreSQL: new rows are ``COPY``-ed straight into ``models``; rewritten rows are ``COPY``-ed
  into a temporary table (dropped at commit) and applied by one ``UPDATE ... FROM``. A sync
  that maps LiteLLM's answer streams its rows into such a table while it maps and writes from
  there instead (``row_stage``, with this module's statements and row format).
- SQLite (in-process, no round trips): one prepared ``INSERT`` / ``UPDATE`` run by
  ``executemany`` (a single statement to SQLAlchemy, bound by SQLite's C loop).
- Reading runs one ``SELECT`` on the driver cursor (plain tuples, no ORM row objects) with the
  metadata as text, parsed once with orjson.

Statements sent on the driver cursor are announced to SQLAlchemy's ``before_cursor_execute`` /
``after_cursor_execute`` listeners like any other, and driver errors are raised as SQLAlchemy
``DBAPIError`` subclasses, so callers see the same statements and the same errors as before.
The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import sqlalchemy as sa

from .bulk import gc_paused
from .db import is_postgres
from .mapping import COST_QUANTUM, ModelRow, canonical_json
from .plan import INSERT, MARK_UNAVAILABLE, RESTORE, UPDATE, SyncPlan
from .schema import MODEL_WRITE_COLUMNS, models

if TYPE_CHECKING:
    from .row_stage import RowStage

T = TypeVar("T")

# --- the driver cursor, seen by SQLAlchemy --------------------------------------------------------


@contextlib.contextmanager
def driver_cursor(conn: sa.Connection, statement: str, binary: bool = False) -> Iterator[Any]:
    """A DB-API cursor of the connection's transaction, for one ``statement`` (``binary``:
    psycopg's binary protocol, results as stored, PostgreSQL only).

    Listeners see the statement as if SQLAlchemy had run it, and a driver error becomes the
    SQLAlchemy exception SQLAlchemy itself would have raised.
    """
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:  # pragma: no cover - a closed connection
        raise sa.exc.ResourceClosedError("This Connection is closed")
    cursor = dbapi.cursor(binary=True) if binary else dbapi.cursor()
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, statement, (), None, False)
        try:
            yield cursor
        except conn.dialect.loaded_dbapi.Error as exc:
            raise as_sqlalchemy_error(conn, statement, exc) from exc
        conn.dispatch.after_cursor_execute(conn, cursor, statement, (), None, False)
    finally:
        cursor.close()


def as_sqlalchemy_error(conn: sa.Connection, statement: str, exc: Exception) -> sa.exc.DBAPIError:
    """The SQLAlchemy exception SQLAlchemy itself would raise for a driver error."""
    return sa.exc.DBAPIError.instance(
        statement, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect)


def driver_run(conn: sa.Connection, statement: str, work: Callable[[Any], T], *,
               binary: bool = False) -> T:
    """``work`` with a driver cursor of the connection's transaction (see ``driver_cursor``)."""
    with driver_cursor(conn, statement, binary) as cursor:
        return work(cursor)



# --- reading -----------------------------------------------------------------------------------


def to_cost(value: Any) -> Decimal | None:
    """A stored price as an exact DECIMAL(12,10) value, whatever the driver returned."""
    if value is None:
        return None
    number = (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else str(value))
    )
    return number.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _features(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = orjson.loads(value)
    return tuple(str(v) for v in value)


_READ_SQL = """SELECT id, name, provider, description, context_length, input_cost_per_token,
    output_cost_per_token, supports_vision, supports_function_calling,
    supports_parallel_function_calling, supports_tool_choice, supports_streaming, features,
    availability, {metadata} FROM models"""
_PG_READ = _READ_SQL.format(metadata="CAST(metadata AS text)")
_SQLITE_READ = _READ_SQL.format(metadata="CAST(metadata AS text)")


def _metadata(text: str | bytes | None) -> tuple[dict[str, Any], bytes]:
    """The stored metadata as a dict and as the canonical JSON the plan compares."""
    if not text:
        return {}, b"{}"
    value = orjson.loads(text)
    if not isinstance(value, dict):
        value = {"value": value}
    return value, canonical_json(value)


def available_metadata(conn: sa.Connection) -> list[tuple[str, bytes]]:
    """Every available row's id and stored metadata (canonical JSON, as the plan compares it),
    in id order: what a whole snapshot holds."""
    sql = ("SELECT id, CAST(metadata AS text) FROM models "
           "WHERE coalesce(availability, 'available') = 'available' ORDER BY id")

    def fetch(cursor: Any) -> list[tuple[str, bytes]]:
        cursor.execute(sql)
        return [(model_id, _metadata(text)[1]) for model_id, text in cursor.fetchall()]

    return driver_run(conn, sql, fetch)


def read_current_rows(conn: sa.Connection,
                      only: Collection[str] | None = None) -> dict[str, ModelRow]:
    """Every ``models`` row as the plan compares it, or the ones whose id is in ``only``
    (one SELECT either way)."""
    postgres = is_postgres(conn)
    sql = _PG_READ if postgres else _SQLITE_READ
    params: tuple[Any, ...] = ()
    if only is not None:
        sql += " WHERE id = ANY(%s)" if postgres else " WHERE id IN (SELECT value FROM json_each(?))"
        params = (list(only),) if postgres else (orjson.dumps(list(only)).decode(),)

    def fetch(cursor: Any) -> list[tuple[Any, ...]]:
        cursor.execute(sql, params)
        return cursor.fetchall()

    rows: dict[str, ModelRow] = {}
    with gc_paused():
        _build_rows(driver_run(conn, sql, fetch), rows)
    return rows


#: SQLite's triggers that stamp row versions and count writes (migrations 0008 and 0009).
SQLITE_WRITE_TRIGGERS = tuple(f"{table}_{event}_{kind}" for table, kind in (
    ("models", "versioned"), ("model_sync_policies", "counted"))
    for event in ("insert", "update", "delete"))
#: SQL that is true when every one of them is in place (a table rebuilt by hand loses them).
SQLITE_TRIGGERS_IN_PLACE = (
    "(SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ("
    + ", ".join(f"'{name}'" for name in SQLITE_WRITE_TRIGGERS)
    + f")) = {len(SQLITE_WRITE_TRIGGERS)}")


def row_versions(conn: sa.Connection,
                 only: Collection[str] | None = None) -> dict[str, str | None]:
    """Each row's version, by id (or of the rows whose id is in ``only``): moved by any write of
    the row, never back to one an earlier sync could have recorded; None for a row whose version
    cannot be vouched for (it is read). PostgreSQL: ``xmin``, the transaction that last wrote it.
    SQLite: the write count stamped by triggers (migration 0009); none while one is missing."""
    postgres = is_postgres(conn)
    sql = ("SELECT id, xmin::text FROM models AS m" if postgres else
           f"SELECT m.id, CASE WHEN {SQLITE_TRIGGERS_IN_PLACE} THEN CAST(v.version AS TEXT) END "
           "FROM models AS m LEFT JOIN model_row_versions AS v ON v.id = m.id")
    params: tuple[Any, ...] = ()
    if only is not None:
        sql += (" WHERE m.id = ANY(%s)" if postgres
                else " WHERE m.id IN (SELECT value FROM json_each(?))")
        params = (list(only),) if postgres else (orjson.dumps(list(only)).decode(),)

    def fetch(cursor: Any) -> dict[str, str | None]:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())

    return driver_run(conn, sql, fetch)


def written_versions(conn: sa.Connection, ids: Collection[str]) -> dict[str, str | None]:
    """The versions of rows this transaction wrote, by id. PostgreSQL: its own transaction id,
    which no other transaction can give a row; SQLite: the stamps its writes left (read back)."""
    if is_postgres(conn):
        ours = str(conn.execute(sa.text("SELECT txid_current() % 4294967296")).scalar_one())
        return dict.fromkeys(ids, ours)
    stamped = row_versions(conn, only=ids)
    return {i: stamped.get(i) for i in ids}


def _build_rows(records: list[tuple[Any, ...]], rows: dict[str, ModelRow]) -> None:
    for (
        model_id,
        name,
        provider,
        description,
        context_length,
        cost_in,
        cost_out,
        vision,
        function_calling,
        parallel,
        tool_choice,
        streaming,
        features,
        availability,
        metadata_text,
    ) in records:
        metadata, metadata_json = _metadata(metadata_text)
        rows[model_id] = ModelRow(
            id=model_id,
            name=name,
            provider=provider,
            description=description,
            context_length=context_length,
            input_cost_per_token=to_cost(cost_in),
            output_cost_per_token=to_cost(cost_out),
            supports_vision=bool(vision),
            supports_function_calling=bool(function_calling),
            supports_parallel_function_calling=bool(parallel),
            supports_tool_choice=bool(tool_choice),
            supports_streaming=bool(streaming) if streaming is not None else True,
            features=_features(features),
            availability=availability or "available",
            metadata=metadata,
            metadata_json=metadata_json,
        )


# --- writing -----------------------------------------------------------------------------------

WRITE_COLUMNS = ", ".join(MODEL_WRITE_COLUMNS)


#: ``features`` tuples as PostgreSQL array literals: a catalogue has a handful of distinct
#: ones, and psycopg's list dumper cost ~3 µs a row (0.03 s at 10,000).
_ARRAY_LITERALS: dict[tuple[str, ...], str] = {}


def _pg_text_array(values: tuple[str, ...]) -> str:
    """A ``text[]`` literal (every element quoted, so any text is safe) for COPY's text
    format, which escapes it further as it does any text."""
    literal = _ARRAY_LITERALS.get(values)
    if literal is None:
        quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        literal = "{" + ",".join(quoted) + "}"
        if len(_ARRAY_LITERALS) < 256:
            _ARRAY_LITERALS[values] = literal
    return literal


def pg_record(r: ModelRow) -> tuple[Any, ...]:
    """One row for COPY (text format): psycopg formats decimals and booleans."""
    return (
        r.id,
        r.name,
        r.provider,
        r.description,
        r.context_length,
        r.input_cost_per_token,
        r.output_cost_per_token,
        r.supports_vision,
        r.supports_function_calling,
        r.supports_parallel_function_calling,
        r.supports_tool_choice,
        r.supports_streaming,
        _pg_text_array(tuple(r.features)),
        r.availability,
        r.metadata_json.decode(),  # the canonical JSON as it is: never re-encoded
    )


def _sqlite_record(r: ModelRow) -> tuple[Any, ...]:
    return (
        r.id,
        r.name,
        r.provider,
        r.description,
        r.context_length,
        None if r.input_cost_per_token is None else str(r.input_cost_per_token),
        None if r.output_cost_per_token is None else str(r.output_cost_per_token),
        r.supports_vision,
        r.supports_function_calling,
        r.supports_parallel_function_calling,
        r.supports_tool_choice,
        r.supports_streaming,
        orjson.dumps(r.features).decode(),
        r.availability,
        r.metadata_json.decode(),
    )


def _pg_copy(
    conn: sa.Connection, table: str, columns: str, records: Iterable[tuple[Any, ...]]
) -> int:
    statement = f"COPY {table} ({columns}) FROM STDIN"

    def copy(cursor: Any) -> int:
        count = 0
        with cursor.copy(statement) as stream:
            for record in records:
                stream.write_row(record)
                count += 1
        return count

    return driver_run(conn, statement, copy)


PG_STAGE_COLUMNS = """id text, name text, provider text, description text,
    context_length integer, input_cost_per_token numeric, output_cost_per_token numeric,
    supports_vision boolean, supports_function_calling boolean,
    supports_parallel_function_calling boolean, supports_tool_choice boolean,
    supports_streaming boolean, features text[], availability text, metadata jsonb"""

PG_UPDATE = """
UPDATE models AS m SET name = r.name, provider = r.provider,
    description = COALESCE(m.description, r.description), context_length = r.context_length,
    input_cost_per_token = r.input_cost_per_token, output_cost_per_token = r.output_cost_per_token,
    supports_vision = r.supports_vision, supports_function_calling = r.supports_function_calling,
    supports_parallel_function_calling = r.supports_parallel_function_calling,
    supports_tool_choice = r.supports_tool_choice, supports_streaming = r.supports_streaming,
    features = r.features, availability = r.availability, metadata = r.metadata,
    updated_at = now()
FROM {stage} AS r
WHERE m.id = r.id"""

_PG_SET_AVAILABILITY = """
UPDATE models SET availability = :availability, updated_at = now()
WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))"""

_SQLITE_INSERT = f"""
INSERT INTO models ({WRITE_COLUMNS}, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"""

_SQLITE_UPDATE = """
UPDATE models SET name = ?2, provider = ?3, description = COALESCE(description, ?4),
    context_length = ?5, input_cost_per_token = ?6, output_cost_per_token = ?7,
    supports_vision = ?8, supports_function_calling = ?9,
    supports_parallel_function_calling = ?10, supports_tool_choice = ?11,
    supports_streaming = ?12, features = ?13, availability = ?14, metadata = ?15,
    updated_at = CURRENT_TIMESTAMP
WHERE id = ?1"""

_SQLITE_SET_AVAILABILITY = """
UPDATE models SET availability = :availability, updated_at = CURRENT_TIMESTAMP
WHERE id IN (SELECT value FROM json_each(:ids))"""


def _sqlite_many(conn: sa.Connection, statement: str, rows: list[ModelRow]) -> int:
    def run(cursor: Any) -> int:
        cursor.executemany(statement, [_sqlite_record(r) for r in rows])
        return cursor.rowcount

    return driver_run(conn, statement, run)


def _pg_staged(conn: sa.Connection, rows: list[ModelRow], statement: str) -> int:
    """COPY the rows into a temporary table (dropped at commit), then run one set-based
    ``statement`` from it. The rows travel as COPY's stream, never as one big parameter."""
    stage = f"_litemaas_sync_{uuid.uuid4().hex[:12]}"
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {stage} ({PG_STAGE_COLUMNS}) ON COMMIT DROP")
    _pg_copy(conn, stage, WRITE_COLUMNS, (pg_record(r) for r in rows))
    return conn.exec_driver_sql(statement.format(stage=stage)).rowcount


def insert_rows(conn: sa.Connection, rows: list[ModelRow]) -> int:
    """New rows: straight into ``models`` with one COPY on PostgreSQL (a staging table would
    write them twice), stamped with the transaction's time as ``now()`` would."""
    if not rows:
        return 0
    if not is_postgres(conn):
        return _sqlite_many(conn, _SQLITE_INSERT, rows)
    now = conn.exec_driver_sql("SELECT now()").scalar()
    return _pg_copy(conn, "models", f"{WRITE_COLUMNS}, created_at, updated_at",
                    (pg_record(r) + (now, now) for r in rows))


def update_rows(conn: sa.Connection, rows: list[ModelRow]) -> int:
    """Rewrite the synced fields; description only where the database has none."""
    if not rows:
        return 0
    if not is_postgres(conn):
        return _sqlite_many(conn, _SQLITE_UPDATE, rows)
    return _pg_staged(conn, rows, PG_UPDATE)


def set_availability(conn: sa.Connection, ids: list[str], availability: str) -> int:
    if not ids:
        return 0
    sql = _PG_SET_AVAILABILITY if is_postgres(conn) else _SQLITE_SET_AVAILABILITY
    params = {"ids": orjson.dumps(ids).decode(), "availability": availability}
    return conn.execute(sa.text(sql), params).rowcount


def apply_plan(conn: sa.Connection, plan: SyncPlan, stage: RowStage | None = None
               ) -> Mapping[str, int]:
    """Write every change of the plan inside the caller's transaction; return rows touched.
    With a ``stage`` (PostgreSQL: the rows mapped for this plan, already on the server), the
    inserts and rewrites are written from it."""
    with gc_paused():
        return _apply_plan(conn, plan, stage)


def _apply_plan(conn: sa.Connection, plan: SyncPlan, stage: RowStage | None
                ) -> Mapping[str, int]:
    inserts = [a.target for a in plan.by_action(INSERT) if a.target]
    rewrites = [a for a in plan.actions if a.action in (UPDATE, RESTORE) and a.target]
    unavailable = [a.model_id for a in plan.by_action(MARK_UNAVAILABLE)]
    if stage is not None:
        inserted, updated = stage.insert(inserts), stage.rewrite(rewrites)
    else:
        inserted = insert_rows(conn, inserts)
        updated = update_rows(conn, [a.target for a in rewrites])
    return {
        "inserted": inserted,
        "updated": updated,
        "marked_unavailable": set_availability(conn, unavailable, "unavailable"),
    }


def model_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per availability value (unexpected values counted under their own name)."""
    query = sa.select(models.c.availability, sa.func.count()).group_by(models.c.availability)
    counts = {"available": 0, "unavailable": 0}
    for availability, count in conn.execute(query):
        counts[availability or "available"] = counts.get(availability or "available", 0) + count
    counts["total"] = sum(counts.values())
    return counts
