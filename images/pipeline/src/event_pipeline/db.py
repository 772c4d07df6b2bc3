"""PostgreSQL side of the aggregator: connection with retries, schema, exactly-once loads.

Exactly once, in effect: a batch is one transaction that starts with
``INSERT INTO batches ... ON CONFLICT (batch_id) DO NOTHING``. The primary key makes a second
loader of the same batch wait on the first one's uncommitted row: if the first commits, the
second's insert does nothing and it compares what it would have loaded with what is recorded
(the content digest, see digest.py): the same is "already loaded", anything else is refused;
if the first dies, its transaction is rolled back and the second loads the batch. Nothing is
visible before COMMIT, so a crash at any point leaves no part of a batch.

Sharded batches: each shard is staged in its own transaction (``batch_shards`` keeps what it
was staged from, ``staged_*`` its rows), idempotently per (batch, shard); the commit moves all
shards into the batch tables in one transaction and deletes the staged rows, keeping the
``batch_shards`` records so a late re-run of a shard can still be told the same or different.
Stages hold a shared advisory lock on the batch id and the commit an exclusive one, so a
commit never sees a shard half-staged.
"""

from __future__ import annotations

import enum
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]

from event_pipeline.digest import shards_digest
from event_pipeline.model import copy_text

# pg_advisory_lock key for schema creation: concurrent CREATE ... IF NOT EXISTS can still
# fail with a unique violation in the catalogs, so creators take turns.
SCHEMA_LOCK_KEY = 0x45_56_45_4E_54_53  # "EVENTS"
# pg_advisory_xact_lock(BATCH_LOCK_CLASS, hashtext(batch_id)): stages shared, commit exclusive.
BATCH_LOCK_CLASS = 0x45_56_42_54  # "EVBT"
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
-- What a batch was loaded from (NULL in rows of older versions) and, when it was committed
-- from shards, how many (NULL: loaded whole).
ALTER TABLE batches ADD COLUMN IF NOT EXISTS content_digest text;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS shards integer CHECK (shards > 0);
CREATE TABLE IF NOT EXISTS batch_shards (
    batch_id text NOT NULL CHECK (batch_id <> ''),
    shard integer NOT NULL CHECK (shard >= 0),
    shards integer NOT NULL CHECK (shard < shards),
    staged_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    source_bytes bigint NOT NULL,
    total_lines bigint NOT NULL,
    valid_events bigint NOT NULL,
    rejected_count bigint NOT NULL,
    users bigint NOT NULL,
    total_session_duration numeric NOT NULL,
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


class _Stderr:
    """Where connect() reports waiting: one line when it starts, on a terminal one progress
    line rewritten in place, one line at the end (given up, or connected after a wait)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._progress = False

    def line(self, message: str) -> None:
        self.done()
        print(message, file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{message}")
            sys.stderr.flush()
            self._progress = True

    def done(self) -> None:
        if self._progress:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._progress = False


def connect(
    timeout: float, how_to_change: str, prog: str = "aggregate-events"
) -> psycopg2.extensions.connection:
    """Connect from the libpq environment, retrying with backoff for up to ``timeout`` s.

    Says so once when waiting starts (where, how long, ``how_to_change``: what sets it), keeps
    one progress line on a terminal, and the caller prints the one line of a give-up."""
    out = _Stderr()
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            conn = psycopg2.connect(
                "",
                connect_timeout=max(2, min(10, int(remaining) + 1)),
                application_name=prog,
            )
        except psycopg2.OperationalError as exc:
            reason = first_line(exc)
            fatal = any(marker in reason for marker in _FATAL_MARKERS)
            elapsed = time.monotonic() - started
            if fatal or time.monotonic() + delay > deadline:
                out.done()
                tried = f"{attempt} attempt{'s' if attempt > 1 else ''} in {elapsed:.0f}s"
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {where()} ({tried}): {reason}"
                ) from None
            if attempt == 1:
                out.line(
                    f"{prog}: PostgreSQL at {where()} not ready ({reason}); waiting up to "
                    f"{timeout:g}s ({how_to_change} sets how long)"
                )
            else:
                out.progress(
                    f"{prog}: still waiting for PostgreSQL at {where()}: {elapsed:.0f}s of "
                    f"{timeout:g}s, {attempt} attempts ({reason})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            if attempt > 1:
                out.line(
                    f"{prog}: connected to PostgreSQL at {where()} after "
                    f"{time.monotonic() - started:.1f}s"
                )
            return conn


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
    """What one scan found: a batch loaded whole, or one shard."""

    source: str
    source_bytes: int
    total_lines: int
    valid_events: int
    rejected_count: int
    users: int
    total_session_duration: int
    content_digest: str

    def describe(self) -> str:
        return (
            f"{self.valid_events:,} events, {self.users:,} users, total "
            f"{self.total_session_duration:,} s, {self.rejected_count:,} rejected lines, "
            f"digest {self.content_digest[:12]}"
        )


class Outcome(enum.Enum):
    DONE = "done"  # loaded, staged or committed now
    ALREADY = "already"  # done before with the same content: nothing changed
    CONFLICT = "conflict"  # done before with different content (or shards): nothing changed
    MISSING = "missing"  # commit: shards not staged yet; nothing loaded
    EMPTY = "empty"  # commit: the staged shards hold no line; nothing loaded
    REJECTED = "rejected"  # commit: too many rejected lines in the whole batch; nothing loaded


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str = ""  # ALREADY, CONFLICT, MISSING: what is recorded or missing, for people
    lines: int = 0  # commit: the whole batch's figures
    valid: int = 0
    rejected: int = 0
    users: int = 0


# What a batch or shard was loaded from, then its shard count: see _recorded and _same.
SELECT_BATCH = (
    "SELECT content_digest, total_lines, valid_events, rejected_count, total_session_duration,"
    " source, shards FROM batches WHERE batch_id = %s"
)
SELECT_SHARD = (
    "SELECT content_digest, total_lines, valid_events, rejected_count, total_session_duration,"
    " source, shards FROM batch_shards WHERE batch_id = %s AND shard = %s"
)


def _recorded(row: tuple[Any, ...]) -> str:
    digest, lines, valid, rejected, total, source = row
    return (
        f"{valid:,} events, total {int(total):,} s, {rejected:,} rejected of {lines:,} lines, "
        f"digest {(digest or 'not recorded')[:12]}, from {source}"
    )


def _same(row: tuple[Any, ...], summary: BatchSummary) -> bool:
    digest, lines, valid, rejected, total, _source = row
    if digest is not None:
        return bool(digest == summary.content_digest)
    # A row of a version that recorded no digest: its figures are all there is to compare.
    return (lines, valid, rejected, int(total)) == (
        summary.total_lines,
        summary.valid_events,
        summary.rejected_count,
        summary.total_session_duration,
    )


def _copy(cur: Any, table_columns: str, rows: Iterable[str]) -> None:
    cur.copy_expert(
        f"COPY {table_columns} FROM STDIN", _IterReader(_batched_rows(rows)), size=1 << 16
    )


def _batch_lock(cur: Any, batch_id: str, shared: bool) -> None:
    kind = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    cur.execute(f"SELECT {kind}(%s, hashtext(%s))", (BATCH_LOCK_CLASS, batch_id))


def load_batch(
    conn: psycopg2.extensions.connection,
    batch_id: str,
    summary: BatchSummary,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> Result:
    """Load one whole batch in one transaction, unless the id is taken."""
    with conn, conn.cursor() as cur:
        cur.execute(SELECT_BATCH, (batch_id,))
        row = cur.fetchone()
        concurrent = False
        if row is None:
            cur.execute(
                "INSERT INTO batches (batch_id, source, source_bytes, total_lines, valid_events,"
                " rejected_count, users, total_session_duration, content_digest)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
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
                    summary.content_digest,
                ),
            )
            if cur.fetchone() is None:  # a concurrent loader committed it meanwhile
                concurrent = True
                cur.execute(SELECT_BATCH, (batch_id,))
                row = cur.fetchone()
                assert row is not None
        if row is not None:
            conn.rollback()
            by = " by a concurrent run" if concurrent else ""
            if row[-1] is not None:
                return Result(
                    Outcome.CONFLICT,
                    f"already committed{by} from {row[-1]} shards ({_recorded(row[:-1])})",
                )
            if _same(row[:-1], summary):
                return Result(Outcome.ALREADY, f"already loaded{by} with the same content")
            return Result(Outcome.CONFLICT, f"already loaded{by} from {_recorded(row[:-1])}")
        _copy_load(
            cur,
            "batch_user_totals (batch_id, user_id, total_session_duration, event_count)",
            "rejected_lines (batch_id, line_number, reason, excerpt)",
            copy_text(batch_id),
            totals,
            rejected_rows,
        )
        _test_pause()
    return Result(Outcome.DONE)


def _copy_load(
    cur: Any,
    totals_table: str,
    rejected_table: str,
    key: str,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> None:
    """COPY one load's per-user totals and rejected lines; ``key`` holds the leading columns."""
    _copy(
        cur,
        totals_table,
        (
            f"{key}\t{copy_text(user)}\t{total}\t{count}\n"
            for user, (total, count) in totals.items()
        ),
    )
    _copy(cur, rejected_table, (f"{key}\t{row}" for row in rejected_rows))


def stage_shard(
    conn: psycopg2.extensions.connection,
    batch_id: str,
    shard: int,
    shards: int,
    summary: BatchSummary,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> Result:
    """Stage shard ``shard`` of ``shards`` in one transaction, unless it is staged already."""
    with conn, conn.cursor() as cur:
        _batch_lock(cur, batch_id, shared=True)
        cur.execute("SELECT shards FROM batches WHERE batch_id = %s", (batch_id,))
        batch = cur.fetchone()
        cur.execute(
            "SELECT min(shards) FROM batch_shards WHERE batch_id = %s AND shards <> %s",
            (batch_id, shards),
        )
        other = cur.fetchone()
        cur.execute(SELECT_SHARD, (batch_id, shard))
        row = cur.fetchone()
        conflict = None
        if batch is not None and batch[0] is None:
            conflict = "the batch was loaded whole, not from shards"
        elif batch is not None and batch[0] != shards:
            conflict = f"the batch was committed from {batch[0]} shards"
        elif other is not None and other[0] is not None:
            conflict = f"the batch has shards staged as .../{other[0]}"
        elif batch is not None and row is None:  # only if someone deleted the shard's record
            conflict = "the batch was committed without this shard"
        if conflict is not None:
            conn.rollback()
            return Result(Outcome.CONFLICT, conflict)
        concurrent = False
        if row is None:
            cur.execute(
                "INSERT INTO batch_shards (batch_id, shard, shards, source, source_bytes,"
                " total_lines, valid_events, rejected_count, users, total_session_duration,"
                " content_digest) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (batch_id, shard) DO NOTHING RETURNING shard",
                (
                    batch_id,
                    shard,
                    shards,
                    summary.source,
                    summary.source_bytes,
                    summary.total_lines,
                    summary.valid_events,
                    summary.rejected_count,
                    summary.users,
                    summary.total_session_duration,
                    summary.content_digest,
                ),
            )
            if cur.fetchone() is None:  # a concurrent stage of this shard committed meanwhile
                concurrent = True
                cur.execute(SELECT_SHARD, (batch_id, shard))
                row = cur.fetchone()
                assert row is not None
        if row is not None:
            conn.rollback()
            state = "committed" if batch is not None else "staged"
            by = " by a concurrent run" if concurrent else ""
            if row[-1] == shards and _same(row[:-1], summary):
                return Result(Outcome.ALREADY, f"already {state}{by} with the same content")
            return Result(Outcome.CONFLICT, f"already {state}{by} from {_recorded(row[:-1])}")
        _copy_load(
            cur,
            "staged_user_totals (batch_id, shard, user_id, total_session_duration, event_count)",
            "staged_rejected_lines (batch_id, shard, line_number, reason, excerpt)",
            f"{copy_text(batch_id)}\t{shard}",
            totals,
            rejected_rows,
        )
        _test_pause()
    return Result(Outcome.DONE)


def commit_shards(
    conn: psycopg2.extensions.connection,
    batch_id: str,
    shards: int,
    max_rejected_ratio: float,
    allow_empty: bool,
) -> Result:
    """Move the ``shards`` staged shards of a batch into the batch tables, in one transaction.

    Rejected line numbers become batch-wide: shard i's lines follow those of shards < i, which
    is the line number in the unsharded file (``generate-events --shard`` cuts it that way)."""
    with conn, conn.cursor() as cur:
        _batch_lock(cur, batch_id, shared=False)
        cur.execute(SELECT_BATCH, (batch_id,))
        row = cur.fetchone()
        if row is not None:
            conn.rollback()
            if row[-1] == shards:
                return Result(Outcome.ALREADY, f"already committed from {shards} shards")
            how = "loaded whole" if row[-1] is None else f"committed from {row[-1]} shards"
            return Result(Outcome.CONFLICT, f"already {how} ({_recorded(row[:-1])})")
        cur.execute(
            "SELECT shard, shards, total_lines, valid_events, rejected_count,"
            " total_session_duration, content_digest, source, source_bytes"
            " FROM batch_shards WHERE batch_id = %s ORDER BY shard",
            (batch_id,),
        )
        staged = cur.fetchall()
        others = sorted({r[1] for r in staged if r[1] != shards})
        if others:
            conn.rollback()
            counts = ", ".join(f".../{n}" for n in others)
            return Result(Outcome.CONFLICT, f"shards are staged as {counts}, not .../{shards}")
        missing = sorted(set(range(shards)) - {r[0] for r in staged})
        if missing:
            conn.rollback()
            shown = ", ".join(str(i) for i in missing[:20]) + (", ..." if len(missing) > 20 else "")
            return Result(
                Outcome.MISSING,
                f"{len(missing)} of {shards} shards not staged: {shown}",
            )
        lines = sum(r[2] for r in staged)
        valid = sum(r[3] for r in staged)
        rejected = sum(r[4] for r in staged)
        if lines == 0 and not allow_empty:
            conn.rollback()
            return Result(Outcome.EMPTY)
        if lines and rejected / lines > max_rejected_ratio:
            conn.rollback()
            return Result(Outcome.REJECTED, lines=lines, valid=valid, rejected=rejected)
        cur.execute(
            "SELECT count(DISTINCT user_id) FROM staged_user_totals WHERE batch_id = %s",
            (batch_id,),
        )
        users = int(cur.fetchone()[0])
        cur.execute(
            "INSERT INTO batches (batch_id, source, source_bytes, total_lines, valid_events,"
            " rejected_count, users, total_session_duration, content_digest, shards)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            (
                batch_id,
                f"{shards} shards: " + ", ".join(r[7] for r in staged),
                sum(r[8] for r in staged),
                lines,
                valid,
                rejected,
                users,
                sum(int(r[5]) for r in staged),
                shards_digest([r[6] for r in staged]),
                shards,
            ),
        )
        if cur.fetchone() is None:  # a whole load of the same id (no batch lock) won the race
            conn.rollback()
            return Result(Outcome.CONFLICT, "already loaded whole by a concurrent run")
        cur.execute(
            "INSERT INTO batch_user_totals (batch_id, user_id, total_session_duration,"
            " event_count) SELECT batch_id, user_id, sum(total_session_duration)::bigint,"
            " sum(event_count)::bigint FROM staged_user_totals WHERE batch_id = %s"
            " GROUP BY batch_id, user_id",
            (batch_id,),
        )
        cur.execute(
            "INSERT INTO rejected_lines (batch_id, line_number, reason, excerpt)"
            " SELECT r.batch_id, o.before + r.line_number, r.reason, r.excerpt"
            " FROM staged_rejected_lines r JOIN (SELECT shard,"
            "   sum(total_lines) OVER (ORDER BY shard) - total_lines AS before"
            "   FROM batch_shards WHERE batch_id = %s) o USING (shard)"
            " WHERE r.batch_id = %s",
            (batch_id, batch_id),
        )
        cur.execute("DELETE FROM staged_user_totals WHERE batch_id = %s", (batch_id,))
        cur.execute("DELETE FROM staged_rejected_lines WHERE batch_id = %s", (batch_id,))
        _test_pause()
    return Result(Outcome.DONE, lines=lines, valid=valid, rejected=rejected, users=users)


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
