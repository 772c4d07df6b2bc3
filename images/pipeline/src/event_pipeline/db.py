"""The aggregator's loads into PostgreSQL, exactly once: a whole batch, a shard, a commit.

connection.py connects, schema.py makes the tables.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass, fields
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]

from event_pipeline.digest import shards_digest
from event_pipeline.model import copy_text

# pg_advisory_xact_lock(BATCH_LOCK_CLASS, hashtext(batch_id)): stages shared, commit exclusive.
BATCH_LOCK_CLASS = 0x45_56_42_54  # "EVBT"
TEST_PAUSE_ENV = "EVENT_PIPELINE_TEST_PAUSE_BEFORE_COMMIT"


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
# What a batch or shard was loaded from, then its shard count: see _recorded and _same.
_RECORD = (
    "SELECT content_digest, total_lines, valid_events, rejected_count, total_session_duration,"
    " source, shards FROM"
)
SELECT_BATCH = f"{_RECORD} batches WHERE batch_id = %s"
SELECT_SHARD = f"{_RECORD} batch_shards WHERE batch_id = %s AND shard = %s"


def _insert(table: str, keys: tuple[str, ...], conflict: str) -> str:
    """INSERT of a load's record: its key columns, then BatchSummary's fields in order."""
    columns = ", ".join((*keys, *(field.name for field in fields(BatchSummary))))
    values = ", ".join(["%s"] * (len(keys) + len(fields(BatchSummary))))
    # The table and columns are this module's constants, never input.
    sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"  # noqa: S608
    return f"{sql} ON CONFLICT ({conflict}) DO NOTHING RETURNING 1"


@dataclass(frozen=True)
class _Target:
    """Where a load goes: its record's INSERT and SELECT, and the tables its rows are COPYed
    into, whose leading columns are the record's key (the SELECT's parameters)."""

    insert: str
    select: str
    totals: str
    rejected: str


WHOLE = _Target(
    _insert("batches", ("batch_id",), "batch_id"),
    SELECT_BATCH,
    "batch_user_totals (batch_id, user_id, total_session_duration, event_count)",
    "rejected_lines (batch_id, line_number, reason, excerpt)",
)
SHARD = _Target(
    _insert("batch_shards", ("batch_id", "shard", "shards"), "batch_id, shard"),
    SELECT_SHARD,
    "staged_user_totals (batch_id, shard, user_id, total_session_duration, event_count)",
    "staged_rejected_lines (batch_id, shard, line_number, reason, excerpt)",
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


# Judges a record found (before the insert, or committed meanwhile by a concurrent run: then
# ``by`` says so): the same content is ALREADY, anything else CONFLICT.
Judge = Callable[[tuple[Any, ...], str], Result]


def _load(
    conn: psycopg2.extensions.connection,
    cur: Any,
    target: _Target,
    key: tuple[str | int, ...],
    extra: tuple[int, ...],
    found: tuple[Any, ...] | None,
    judge: Judge,
    summary: BatchSummary,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> Result:
    """One load, of a whole batch or of a shard, in the open transaction: insert its record
    (``key``, ``extra``, ``summary``) unless one was ``found``, then COPY its rows. A record
    found, or inserted meanwhile by a concurrent loader (whose uncommitted primary key the
    insert waited on), is judged instead and the transaction rolled back."""
    by = ""
    if found is None:
        cur.execute(target.insert, (*key, *extra, *astuple(summary)))
        if cur.fetchone() is None:
            by = " by a concurrent run"
            cur.execute(target.select, key)
            found = cur.fetchone()
            assert found is not None
    if found is not None:
        conn.rollback()
        return judge(found, by)
    prefix = "\t".join(copy_text(str(part)) for part in key)
    rows = (
        f"{prefix}\t{copy_text(user)}\t{total}\t{count}\n"
        for user, (total, count) in totals.items()
    )
    _copy(cur, target.totals, rows)
    _copy(cur, target.rejected, (f"{prefix}\t{row}" for row in rejected_rows))
    _test_pause()
    return Result(Outcome.DONE)


def load_batch(
    conn: psycopg2.extensions.connection,
    batch_id: str,
    summary: BatchSummary,
    totals: dict[str, list[int]],
    rejected_rows: Iterable[str],
) -> Result:
    """Load one whole batch in one transaction, unless the id is taken."""

    def judge(row: tuple[Any, ...], by: str) -> Result:
        if row[-1] is not None:
            return Result(
                Outcome.CONFLICT,
                f"already committed{by} from {row[-1]} shards ({_recorded(row[:-1])})",
            )
        if _same(row[:-1], summary):
            return Result(Outcome.ALREADY, f"already loaded{by} with the same content")
        return Result(Outcome.CONFLICT, f"already loaded{by} from {_recorded(row[:-1])}")

    with conn, conn.cursor() as cur:
        cur.execute(SELECT_BATCH, (batch_id,))
        found = cur.fetchone()
        return _load(
            conn, cur, WHOLE, (batch_id,), (), found, judge, summary, totals, rejected_rows
        )


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
        found = cur.fetchone()
        conflict = None
        if batch is not None and batch[0] is None:
            conflict = "the batch was loaded whole, not from shards"
        elif batch is not None and batch[0] != shards:
            conflict = f"the batch was committed from {batch[0]} shards"
        elif other is not None and other[0] is not None:
            conflict = f"the batch has shards staged as .../{other[0]}"
        elif batch is not None and found is None:  # only if someone deleted the shard's record
            conflict = "the batch was committed without this shard"
        if conflict is not None:
            conn.rollback()
            return Result(Outcome.CONFLICT, conflict)

        def judge(row: tuple[Any, ...], by: str) -> Result:
            state = "committed" if batch is not None else "staged"
            if row[-1] == shards and _same(row[:-1], summary):
                return Result(Outcome.ALREADY, f"already {state}{by} with the same content")
            return Result(Outcome.CONFLICT, f"already {state}{by} from {_recorded(row[:-1])}")

        return _load(
            conn,
            cur,
            SHARD,
            (batch_id, shard),
            (shards,),
            found,
            judge,
            summary,
            totals,
            rejected_rows,
        )


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
