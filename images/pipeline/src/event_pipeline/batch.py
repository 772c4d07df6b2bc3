"""One run of ``aggregate-events``: scan a batch (or shard) and load (or stage) it exactly
once, or commit a sharded batch; each returns the run's exit code and says what happened.

See scanner.py for the scan, db.py for the exactly-once design and digest.py for how a re-run
is told from different data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from event_pipeline import cli
from event_pipeline.digest import content_digest
from event_pipeline.scanner import InputError, Scan

if TYPE_CHECKING:
    from event_pipeline import db

CONNECT_TIMEOUT_ENV = "AGGREGATE_CONNECT_TIMEOUT"
CONNECT_TIMEOUT_HOW = f"--connect-timeout or ${CONNECT_TIMEOUT_ENV}"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 3
EXIT_REJECTED = 4
EXIT_DATABASE = 5  # retryable: the only code the workflow retries
EXIT_CONFLICT = 6
EXIT_MISSING = 7


def say(message: str) -> None:
    print(f"aggregate-events: {message}", file=sys.stderr, flush=True)


def _check_input(args: argparse.Namespace) -> None:
    """Fail on unusable input before anything else: it must not wait for a database."""
    if args.input == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(
                "--input -: standard input is a terminal; pipe events in "
                "(generate-events ... --output - | aggregate-events --input - ...)"
            )
        return
    try:
        with open(args.input, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.read(1)  # opening is not reading (EIO, a directory, a device)
    except OSError as exc:
        raise InputError(f"cannot read {args.input}: {exc.strerror or exc}") from None
    if os.path.isdir(args.input):
        raise InputError(f"cannot read {args.input}: is a directory")
    if size == 0 and not args.allow_empty:
        raise InputError(_empty_message(args, args.input))


def _empty_message(args: argparse.Namespace, what: str) -> str:
    return (
        f"{what} is empty (no lines); nothing loaded and batch {args.batch_id} left unused "
        "(--allow-empty loads it as an empty batch)"
    )


def _conflict(what: str, result: db.Result, summary: db.BatchSummary | None) -> int:
    mine = f"; this input: {summary.describe()}" if summary is not None else ""
    say(
        f"{what}: refused: {result.message}{mine}; nothing changed (different data needs a "
        "new --batch-id)"
    )
    return EXIT_CONFLICT


def _label(args: argparse.Namespace) -> str:
    if args.shard is None:
        return f"batch {args.batch_id}"
    return f"batch {args.batch_id} shard {args.shard[0]}/{args.shard[1]}"


def run(args: argparse.Namespace) -> int:
    if args.commit:
        return commit(args)
    started = time.perf_counter()
    label = _label(args)
    _check_input(args)
    spill_dir = tempfile.mkdtemp(prefix="aggregate-events-")
    scanner = Scan(args.input, 1 if args.input == "-" else args.workers, spill_dir)
    try:
        # The scanners start first and read while this process connects (and maybe waits
        # for the server).
        scanner.start()
        conn = None
        if not args.dry_run:
            # after the fork: the scanners never load libpq
            from event_pipeline import connection, schema

            conn = connection.connect(args.connect_timeout, CONNECT_TIMEOUT_HOW)
            schema.ensure_schema(conn)
        scan = scanner.finish()
        scanned = time.perf_counter()
        if scan.lines == 0 and not args.allow_empty:
            raise InputError(
                _empty_message(args, "standard input" if args.input == "-" else args.input)
            )
        where = "" if args.shard is None else f"shard {args.shard[0]}/{args.shard[1]} "
        for line, reason in scan.samples():
            say(f"{where}line {line}: rejected: {reason}")
        if scan.rejected > len(scan.samples()):
            say(f"... {scan.rejected - len(scan.samples()):,} more rejected lines")
        ratio = scan.rejected / scan.lines if scan.lines else 0.0
        processes = cli.plural(scan.workers, "process", "processes")
        described = (
            f"{cli.plural(scan.valid, 'event')}, {cli.plural(len(scan.totals), 'user')}, "
            f"{scan.rejected:,} rejected of {cli.plural(scan.lines, 'line')}"
        )
        if args.dry_run:
            rate = scan.lines / max(scanned - started, 1e-9)
            print(
                f"{label}: dry run: {described}; scanned in {scanned - started:.2f}s "
                f"({rate:,.0f} lines/s, {processes})"
            )
            return EXIT_OK
        assert conn is not None
        from event_pipeline import db

        summary = db.BatchSummary(
            source="stdin" if args.input == "-" else os.path.abspath(args.input),
            source_bytes=scan.size,
            total_lines=scan.lines,
            valid_events=scan.valid,
            rejected_count=scan.rejected,
            users=len(scan.totals),
            total_session_duration=scan.duration_sum,
            content_digest=content_digest(scan.totals, scan.rejected_rows()),
        )
        if args.shard is None:
            # Above the ratio nothing is loaded; a batch loaded before is still compared.
            if ratio > args.max_rejected_ratio and not db.batch_exists(conn, args.batch_id):
                return _too_many_rejected(label, scan.rejected, scan.lines, args)
            result = db.load_batch(conn, args.batch_id, summary, scan.totals, scan.rejected_rows())
            done = "loaded"
        else:
            index, shards = args.shard
            result = db.stage_shard(
                conn, args.batch_id, index, shards, summary, scan.totals, scan.rejected_rows()
            )
            done = "staged"
        conn.close()
        elapsed = time.perf_counter() - started
        if result.outcome is db.Outcome.CONFLICT:
            return _conflict(label, result, summary)
        if result.outcome is db.Outcome.ALREADY:
            print(f"{label}: {result.message}; nothing changed")
            return EXIT_OK
        print(
            f"{label}: {done} {described} in {elapsed:.2f}s "
            f"({scan.lines / max(elapsed, 1e-9):,.0f} lines/s, {processes})"
        )
        return EXIT_OK
    finally:
        scanner.abort()
        shutil.rmtree(spill_dir, ignore_errors=True)


def _too_many_rejected(label: str, rejected: int, lines: int, args: argparse.Namespace) -> int:
    say(
        f"{label}: {rejected:,} of {lines:,} lines rejected ({rejected / lines:.2%} > "
        f"--max-rejected-ratio {args.max_rejected_ratio:.2%}); nothing loaded"
    )
    return EXIT_REJECTED


def commit(args: argparse.Namespace) -> int:
    from event_pipeline import connection, db, schema

    started = time.perf_counter()
    label = f"batch {args.batch_id}"
    conn = connection.connect(args.connect_timeout, CONNECT_TIMEOUT_HOW)
    try:
        schema.ensure_schema(conn)
        result = db.commit_shards(
            conn, args.batch_id, args.shards, args.max_rejected_ratio, args.allow_empty
        )
    finally:
        conn.close()
    outcome = result.outcome
    if outcome is db.Outcome.CONFLICT:
        return _conflict(f"{label}: commit of {args.shards} shards", result, None)
    if outcome is db.Outcome.MISSING:
        say(
            f"{label}: commit refused: {result.message}; nothing loaded (stage them with "
            f"--shard I/{args.shards}, then commit again)"
        )
        return EXIT_MISSING
    if outcome is db.Outcome.EMPTY:
        say(
            f"{label}: the {cli.plural(args.shards, 'staged shard')} hold no lines; nothing "
            "loaded (--allow-empty commits an empty batch)"
        )
        return EXIT_INPUT
    if outcome is db.Outcome.REJECTED:
        return _too_many_rejected(label, result.rejected, result.lines, args)
    if outcome is db.Outcome.ALREADY:
        print(f"{label}: {result.message}; nothing changed")
        return EXIT_OK
    print(
        f"{label}: committed {cli.plural(args.shards, 'shard')}: "
        f"{cli.plural(result.valid, 'event')}, {cli.plural(result.users, 'user')}, "
        f"{result.rejected:,} rejected of {cli.plural(result.lines, 'line')} in "
        f"{time.perf_counter() - started:.2f}s"
    )
    return EXIT_OK
