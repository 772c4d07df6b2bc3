"""The aggregator's schema: its tables and view, created idempotently on first use.

docs/pipeline.md "Schema" shows it; db.py loads into it.
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions  # type: ignore[import-untyped]

# pg_advisory_lock key for schema creation: concurrent CREATE ... IF NOT EXISTS can still
# fail with a unique violation in the catalogs, so creators take turns.
SCHEMA_LOCK_KEY = 0x45_56_45_4E_54_53  # "EVENTS"

# What one scan found (db.BatchSummary, but for its digest): of a batch, and of a shard.
_SUMMARY = """
    source text NOT NULL,
    source_bytes bigint NOT NULL,
    total_lines bigint NOT NULL,
    valid_events bigint NOT NULL,
    rejected_count bigint NOT NULL,
    users bigint NOT NULL,
    total_session_duration numeric NOT NULL"""

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS batches (
    batch_id text PRIMARY KEY CHECK (batch_id <> ''),
    loaded_at timestamptz NOT NULL DEFAULT now(),{_SUMMARY}
);
CREATE TABLE IF NOT EXISTS batch_user_totals (
    batch_id text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    user_id text NOT NULL,
    total_session_duration bigint NOT NULL CHECK (total_session_duration >= 0),
    event_count bigint NOT NULL CHECK (event_count > 0),
    PRIMARY KEY (batch_id, user_id)
);
CREATE INDEX IF NOT EXISTS batch_user_totals_user_id_idx ON batch_user_totals (user_id);
CREATE TABLE IF NOT EXISTS rejected_lines (
    batch_id text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    line_number bigint NOT NULL CHECK (line_number > 0),
    reason text NOT NULL,
    excerpt text NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, line_number)
);
-- What a batch was loaded from (NULL in rows of older versions) and, when it was committed
-- from shards, how many (NULL: loaded whole).
ALTER TABLE batches ADD COLUMN IF NOT EXISTS content_digest text;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS shards integer CHECK (shards > 0);
CREATE TABLE IF NOT EXISTS batch_shards (
    batch_id text NOT NULL CHECK (batch_id <> ''),
    shard integer NOT NULL CHECK (shard >= 0),
    shards integer NOT NULL CHECK (shard < shards),
    staged_at timestamptz NOT NULL DEFAULT now(),{_SUMMARY},
    content_digest text NOT NULL,
    PRIMARY KEY (batch_id, shard)
);
CREATE TABLE IF NOT EXISTS staged_user_totals (
    batch_id text NOT NULL,
    shard integer NOT NULL,
    user_id text NOT NULL,
    total_session_duration bigint NOT NULL CHECK (total_session_duration >= 0),
    event_count bigint NOT NULL CHECK (event_count > 0),
    PRIMARY KEY (batch_id, shard, user_id),
    FOREIGN KEY (batch_id, shard) REFERENCES batch_shards ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS staged_rejected_lines (
    batch_id text NOT NULL,
    shard integer NOT NULL,
    line_number bigint NOT NULL CHECK (line_number > 0),
    reason text NOT NULL,
    excerpt text NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, shard, line_number),
    FOREIGN KEY (batch_id, shard) REFERENCES batch_shards ON DELETE CASCADE
);
"""

# sum(bigint) is numeric in PostgreSQL, so the sum itself never overflows; the view saturates
# at the bigint maximum instead of failing every query once a user's all-time total passes it.
VIEW_SQL = """
CREATE VIEW user_totals AS
SELECT user_id,
       LEAST(sum(total_session_duration), 9223372036854775807)::bigint
           AS total_session_duration
FROM batch_user_totals
GROUP BY user_id
"""

SCHEMA_OBJECTS = (
    "batches",
    "batch_user_totals",
    "rejected_lines",
    "user_totals",
    "batch_shards",
    "staged_user_totals",
    "staged_rejected_lines",
)
NEW_BATCH_COLUMNS = ("content_digest", "shards")
COLUMNS_SQL = (
    "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('batches')"
    " AND attname = ANY(%s) AND NOT attisdropped"
)


def _schema_present(cur: Any) -> bool:
    cur.execute("SELECT " + ", ".join(f"to_regclass('{name}')" for name in SCHEMA_OBJECTS))
    row = cur.fetchone()
    cur.execute(COLUMNS_SQL, (list(NEW_BATCH_COLUMNS),))
    columns = cur.fetchone()
    return row is not None and all(row) and columns == (len(NEW_BATCH_COLUMNS),)


def ensure_schema(conn: psycopg2.extensions.connection) -> None:
    """Create tables and the view if missing; safe when many loaders start at once.

    Creators take turns under a session advisory lock, and each checks again in a transaction
    begun after it got the lock (one begun before would still see its own stale catalog
    cache): DDL on a schema another loader just made would take table locks (ALTER TABLE:
    exclusive) that deadlock with that loader's own load."""
    with conn, conn.cursor() as cur:
        if _schema_present(cur):
            return  # the usual case: no lock, no DDL
        cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))  # beyond this transaction
    try:
        with conn, conn.cursor() as cur:
            if _schema_present(cur):
                return  # made by a concurrent loader meanwhile
            cur.execute(SCHEMA_SQL)
            cur.execute("SELECT to_regclass('user_totals')")
            row = cur.fetchone()
            if row is None or row[0] is None:
                cur.execute(VIEW_SQL)
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
