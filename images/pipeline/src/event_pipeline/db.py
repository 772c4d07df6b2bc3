"""PostgreSQL side of the aggregator: connection with retries, schema, exactly-once load.

Exactly once, in effect: a batch is one transaction that starts with
``INSERT INTO batches ... ON CONFLICT (batch_id) DO NOTHING``. The primary key makes a second
loader of the same batch wait on the first one's uncommitted row: if the first commits, the
second's insert does nothing and it reports "already loaded"; if the first dies, its
transaction is rolled back and the second loads the batch. Nothing is visible before COMMIT,
so a crash at any point leaves no part of a batch.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]

from event_pipeline.model import copy_text

# pg_advisory_xact_lock key for schema creation: concurrent CREATE ... IF NOT EXISTS can still
# fail with a unique violation in the catalogs, so creators take turns.
SCHEMA_LOCK_KEY = 0x45_56_45_4E_54_53  # "EVENTS"
TEST_PAUSE_ENV = "EVENT_PIPELINE_TEST_PAUSE_BEFORE_COMMIT"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id text PRIMARY KEY CHECK (batch_id <> ''),
    loaded_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    source_bytes bigint NOT NULL,
    total_lines bigint NOT NULL,
    valid_events bigint NOT NULL,
    rejected_count bigint NOT NULL,
    users bigint NOT NULL,
    total_session_duration numeric NOT NULL
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

SCHEMA_OBJECTS = ("batches", "batch_user_totals", "rejected_lines", "user_totals")


class DatabaseUnavailable(Exception):
    """The server could not be reached (or refused us) within the retry budget."""


def where() -> str:
    """Where libpq will connect, for messages (never includes the password)."""
    host = os.environ.get("PGHOST") or "local socket"
    port = os.environ.get("PGPORT") or "5432"
    db = os.environ.get("PGDATABASE") or os.environ.get("PGUSER") or "(default)"
    return f"{host}:{port}/{db}"


# Errors that waiting will not fix: fail at once instead of retrying until the deadline.
_FATAL_MARKERS = (
    "authentication failed",
    "password",
    "no pg_hba.conf entry",
    "role ",
    "invalid connection option",
    "invalid port",
    "invalid integer value",
)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def connect(
    timeout: float,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> psycopg2.extensions.connection:
    """Connect from the libpq environment, retrying with backoff for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            return psycopg2.connect(
                "",
                connect_timeout=max(2, min(10, int(remaining) + 1)),
                application_name="aggregate-events",
            )
        except psycopg2.OperationalError as exc:
            reason = first_line(exc)
            fatal = any(marker in reason for marker in _FATAL_MARKERS)
            if fatal or time.monotonic() + delay > deadline:
                tried = f"{attempt} attempt{'s' if attempt > 1 else ''} in {timeout:g}s"
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {where()} ({tried}): {reason}"
                ) from None
            log(
                f"aggregate-events: PostgreSQL at {where()} not ready ({reason}); "
                f"retrying in {delay:.2f}s"
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def ensure_schema(conn: psycopg2.extensions.connection) -> None:
    """Create tables and the view if missing; safe when many loaders start at once."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT " + ", ".join(f"to_regclass('{name}')" for name in SCHEMA_OBJECTS))
        row = cur.fetchone()
        if row is not None and all(row):
            return  # the usual case: no lock, no DDL
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        cur.execute(SCHEMA_SQL)
        cur.execute("SELECT to_regclass('user_totals')")
        row = cur.fetchone()
        if row is None or row[0] is None:
            cur.execute(VIEW_SQL)


def batch_exists(conn: psycopg2.extensions.connection, batch_id: str) -> bool:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM batches WHERE batch_id = %s", (batch_id,))
        return cur.fetchone() is not None


class _IterReader:
    """A minimal file object over an iterator of byte strings, for ``copy_expert``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - copy_expert uses read
        return self.read(size)


def _batched_rows(rows: Iterable[str], per_chunk: int = 4096) -> Iterator[bytes]:
    buffer: list[str] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= per_chunk:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
    if buffer:
        yield "".join(buffer).encode("utf-8")


@dataclass(frozen=True)
class BatchSummary:
    source: str
    source_bytes: int
    total_lines: int
    valid_events: int
    rejected_count: int
    users: int
    total_session_duration: int


def load_batch(
    conn: psycopg2.extensions.connection,
    batch_id: str,
    summary: BatchSummary,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> bool:
    """Load one batch in one transaction. Return False if it was already loaded."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO batches (batch_id, source, source_bytes, total_lines, valid_events,"
            " rejected_count, users, total_session_duration)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            (
                batch_id,
                summary.source,
                summary.source_bytes,
                summary.total_lines,
                summary.valid_events,
                summary.rejected_count,
                summary.users,
                summary.total_session_duration,
            ),
        )
        if cur.fetchone() is None:
            conn.rollback()
            return False
        bid = copy_text(batch_id)
        user_rows = (
            f"{bid}\t{copy_text(user)}\t{total}\t{count}\n"
            for user, (total, count) in totals.items()
        )
        cur.copy_expert(
            "COPY batch_user_totals (batch_id, user_id, total_session_duration, event_count)"
            " FROM STDIN",
            _IterReader(_batched_rows(user_rows)),
            size=1 << 16,
        )
        cur.copy_expert(
            "COPY rejected_lines (batch_id, line_number, reason, excerpt) FROM STDIN",
            _IterReader(_batched_rows(f"{bid}\t{row}" for row in rejected_rows)),
            size=1 << 16,
        )
        _test_pause()
    return True


def _test_pause() -> None:
    """Test hook: hold the open transaction so a test can kill -9 the loader inside it."""
    value = os.environ.get(TEST_PAUSE_ENV)
    if value:
        print(
            f"aggregate-events: test hook: pausing {value}s before COMMIT",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(float(value))


def fetch_user_totals(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, total_session_duration FROM user_totals")
        return dict(cur.fetchall())
