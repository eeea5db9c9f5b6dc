"""Records the sync keeps for itself between runs: one Zstandard-compressed blob by key.

The record of known entries is megabytes at 10,000 models and is read by every re-sync that
is not skipped and rewritten by every one that changes something. As a JSONB value PostgreSQL
parsed it on each write and printed it on each read (~20 ms and ~17 ms, measured at 10,000
models); as compressed bytes (level 1: 2.1 MB to 1 MB in 5 ms) each costs about 5 ms, and
PostgreSQL is told not to compress them again. On PostgreSQL the blob is read in binary (the
text protocol would send it hex-encoded, twice the size).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import zstandard

from .db import is_postgres, upsert_insert
from .schema import metadata
from .store import driver_run

records = sa.Table(
    "model_sync_records",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

_READ_PG = "SELECT body FROM model_sync_records WHERE key = %s"


def read_record(conn: sa.Connection, key: str) -> bytes | None:
    """The record's bytes, or None when there is none. Raises ``ValueError`` when the stored
    blob does not decompress."""
    if is_postgres(conn):
        def fetch(cursor: object) -> bytes | None:
            cursor.execute(_READ_PG, (key,))  # type: ignore[attr-defined]
            row = cursor.fetchone()  # type: ignore[attr-defined]
            return None if row is None else row[0]

        blob = driver_run(conn, _READ_PG, fetch, binary=True)
    else:
        blob = conn.execute(sa.select(records.c.body).where(records.c.key == key)).scalar()
    if blob is None:
        return None
    try:
        return zstandard.ZstdDecompressor().decompress(bytes(blob))
    except zstandard.ZstdError as exc:
        raise ValueError(f"the record {key!r} does not decompress: {exc}") from None


def write_record(conn: sa.Connection, key: str, body: bytes) -> None:
    """Upsert the record inside the caller's transaction, in one statement."""
    insert = upsert_insert(conn)
    statement = insert(records).values(key=key, updated_at=datetime.now(UTC),
                                       body=zstandard.ZstdCompressor(level=1).compress(body))
    conn.execute(statement.on_conflict_do_update(
        index_elements=[records.c.key],
        set_={name: statement.excluded[name] for name in ("body", "updated_at")}))
