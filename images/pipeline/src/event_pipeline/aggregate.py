"""``aggregate-events``: validate a JSON Lines batch, total it per user, load it exactly once.

The file is split into byte ranges at newlines and scanned by one process per core (the
parent scans the first range itself); each keeps only per-user totals, so memory grows with
users, not events. Rejected lines go to a small spill file per range, then into the batch's
transaction. See db.py for the exactly-once design.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import multiprocessing
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from event_pipeline.model import (
    DECODE_ERRORS,
    MAX_LINE_BYTES,
    UTF8_BOM,
    Rejected,
    available_cpus,
    copy_text,
    decode_event,
    excerpt,
    good_id,
    validate_line,
)

BLOCK_BYTES = 1 << 20
MIN_BYTES_PER_WORKER = 4 << 20  # below this, forking costs more than it saves
MAX_WORKERS = 8
KNOWN_IDS_MAX = 100_000
SAMPLE_REJECTS = 5
DEFAULT_CONNECT_TIMEOUT = 60.0
CONNECT_TIMEOUT_ENV = "AGGREGATE_CONNECT_TIMEOUT"
DEBUG_ENV = "EVENT_PIPELINE_DEBUG"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 3
EXIT_REJECTED = 4
EXIT_DATABASE = 5


class InputError(Exception):
    """The input file cannot be read (missing, a directory, unreadable, vanished)."""


@dataclass
class RangeResult:
    """What scanning one byte range found; line numbers in the spill file are range-local."""

    lines: int = 0
    valid: int = 0
    rejected: int = 0
    duration_sum: int = 0
    totals: dict[str, list[int]] = field(default_factory=dict)
    spill: str | None = None
    samples: list[tuple[int, str]] = field(default_factory=list)


class _Rejects:
    """Writes rejected lines (COPY text rows without the batch id) to a spill file."""

    def __init__(self, spill_dir: str, index: int, result: RangeResult) -> None:
        self._dir = spill_dir
        self._index = index
        self._result = result
        self._fh: BinaryIO | None = None

    def add(self, local_line: int, reason: str, line: bytes) -> None:
        result = self._result
        result.rejected += 1
        if len(result.samples) < SAMPLE_REJECTS:
            result.samples.append((local_line, reason))
        if self._fh is None:
            path = os.path.join(self._dir, f"rejects-{self._index}.tsv")
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
            result.spill = path
        row = f"{local_line}\t{copy_text(reason)}\t{copy_text(excerpt(line))}\n"
        self._fh.write(row.encode("utf-8"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def scan_range(path: str, start: int, end: int, index: int, spill_dir: str) -> RangeResult:
    """Validate and total the lines in ``[start, end)``; ``start`` is at a line start."""
    # The scan makes no reference cycles, so the cyclic garbage collector, which would run
    # every few hundred container allocations (slow-path dicts, new users), is off meanwhile.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan_range(path, start, end, index, spill_dir)
    finally:
        if gc_was_enabled:
            gc.enable()


def _scan_range(path: str, start: int, end: int, index: int, spill_dir: str) -> RangeResult:
    result = RangeResult()
    rejects = _Rejects(spill_dir, index, result)
    totals = result.totals
    decode = decode_event
    decode_errors = DECODE_ERRORS
    fromiso = datetime.fromisoformat
    max_line = MAX_LINE_BYTES
    known: set[str] = set()

    def known_id(value: str) -> bool:
        if not good_id(value):
            return False
        if len(known) < KNOWN_IDS_MAX:  # bounded: adversarial input cannot grow it
            known.add(value)
        return True

    def slow_path(number: int, line: bytes) -> None:
        """Anything the fast path did not accept: validate_line accepts it or says why."""
        if len(line) > max_line:
            rejects.add(number, f"line too long: {len(line)} bytes (max {max_line})", line)
            return
        try:
            user, duration = validate_line(line)
        except Rejected as exc:
            rejects.add(number, str(exc), line)
            return
        entry = totals.get(user)
        if entry is None:
            totals[user] = [duration, 1]
        else:
            entry[0] += duration
            entry[1] += 1

    lines = 0
    carry = b""
    skipping = 0  # > 0 while inside an over-long line: bytes seen so far
    skip_head = b""
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        remaining = end - start
        first = start == 0
        while remaining > 0:
            block = fh.read(min(BLOCK_BYTES, remaining))
            if not block:
                raise InputError(f"{path} shrank while being read")
            remaining -= len(block)
            if first:
                first = False
                if block.startswith(UTF8_BOM):  # a BOM at the very start is tolerated
                    block = block[len(UTF8_BOM) :]
            if skipping:
                cut = block.find(b"\n")
                if cut < 0:
                    skipping += len(block)
                    continue
                lines += 1
                rejects.add(
                    lines, f"line too long: {skipping + cut} bytes (max {max_line})", skip_head
                )
                skipping = 0
                block = block[cut + 1 :]
            if carry:
                block = carry + block
            parts = block.split(b"\n")
            carry = parts.pop()
            if len(carry) > max_line:
                skipping, skip_head, carry = len(carry), carry[:1024], b""
            if not parts:
                continue
            if max(map(len, parts)) > max_line:  # rare: this block takes the slow path
                for number, line in enumerate(parts, lines + 1):
                    slow_path(number, line)
                lines += len(parts)
                continue
            for number, line in enumerate(parts, lines + 1):
                # Fast path: model.validate_line's first half, inlined. msgspec checks types
                # and ranges; a user already in the totals, and an eventType/productId already
                # in `known`, passed good_id before: hashing is cheaper than checking again.
                try:
                    event = decode(line)
                    fromiso(event.timestamp)
                    user = event.userId
                    entry = totals.get(user)
                    if (
                        (entry is not None or good_id(user))
                        and (event.eventType in known or known_id(event.eventType))
                        and (event.productId in known or known_id(event.productId))
                    ):
                        if entry is None:
                            totals[user] = [event.sessionDuration, 1]
                        else:
                            entry[0] += event.sessionDuration
                            entry[1] += 1
                        continue
                except decode_errors:
                    pass
                slow_path(number, line)
            lines += len(parts)
        if skipping:
            lines += 1
            rejects.add(lines, f"line too long: {skipping} bytes (max {max_line})", skip_head)
        elif carry:  # last line without a trailing newline
            lines += 1
            slow_path(lines, carry)
    rejects.close()
    result.lines = lines
    result.valid = sum(entry[1] for entry in totals.values())
    result.duration_sum = sum(entry[0] for entry in totals.values())
    return result


def split_ranges(path: str, size: int, parts: int) -> list[tuple[int, int]]:
    """Cut ``[0, size)`` into up to ``parts`` ranges that each start at a line start."""
    cuts = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            pos = max(size * i // parts, cuts[-1])
            fh.seek(pos - 1 if pos > 0 else 0)
            # Scan forward to the next newline, block by block (a line may be huge).
            at = fh.tell()
            while True:
                block = fh.read(1 << 16)
                if not block:
                    at = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    at += nl + 1
                    break
                at += len(block)
            if at >= size:
                break
            if at > cuts[-1]:
                cuts.append(at)
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def _worker(
    conn: multiprocessing.connection.Connection,
    path: str,
    start: int,
    end: int,
    index: int,
    spill_dir: str,
) -> None:
    try:
        conn.send(("ok", scan_range(path, start, end, index, spill_dir)))
    except InputError as exc:
        conn.send(("input", str(exc)))
    except OSError as exc:
        conn.send(("input", f"cannot read {path}: {exc.strerror or exc}"))
    except BaseException as exc:  # report, never die silently
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


@dataclass
class ScanResult:
    size: int
    lines: int
    valid: int
    rejected: int
    duration_sum: int
    totals: dict[str, list[int]]
    ranges: list[tuple[int, RangeResult]]  # (first line number - 1, result)
    workers: int

    def samples(self) -> list[tuple[int, str]]:
        found = [(offset + n, why) for offset, r in self.ranges for n, why in r.samples]
        return found[:SAMPLE_REJECTS]

    def rejected_rows(self) -> Iterator[str]:
        """COPY rows ``line\\treason\\texcerpt\\n`` with file-global line numbers."""
        for offset, result in self.ranges:
            if result.spill is None:
                continue
            with open(result.spill, encoding="utf-8") as fh:
                for row in fh:
                    local, rest = row.split("\t", 1)
                    yield f"{offset + int(local)}\t{rest}"


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, available_cpus()))


class Scan:
    """A scan in two halves: ``start`` forks the scanners of ranges 1.., so they run while the
    parent connects to the database; ``finish`` scans range 0 in the parent and merges."""

    def __init__(self, path: str, workers: int, spill_dir: str) -> None:
        self.path = path
        self.workers = workers
        self.spill_dir = spill_dir
        self.size = 0
        self.ranges: list[tuple[int, int]] = []
        self.children: list[
            tuple[int, multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]
        ] = []

    def start(self) -> Scan:
        path = self.path
        try:
            with open(path, "rb") as fh:
                self.size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        parts = max(1, min(self.workers, self.size // MIN_BYTES_PER_WORKER))
        self.ranges = split_ranges(path, self.size, parts) if self.size else []
        ctx = multiprocessing.get_context("fork")  # no re-import; children only read the file
        for index, (start, end) in enumerate(self.ranges[1:], start=1):
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker,
                args=(sender, path, start, end, index, self.spill_dir),
                daemon=True,
            )
            proc.start()
            sender.close()
            self.children.append((index, proc, receiver))
        return self

    def abort(self) -> None:
        """Stop the scanners that are still running (an early exit, an error)."""
        for _, child, pipe in self.children:
            if child.is_alive():
                child.kill()
            child.join()
            pipe.close()
        self.children = []

    def finish(self) -> ScanResult:
        results: list[RangeResult | None] = [None] * len(self.ranges)
        try:
            if self.ranges:
                start, end = self.ranges[0]
                try:
                    results[0] = scan_range(self.path, start, end, 0, self.spill_dir)
                except OSError as exc:
                    raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
            for index, child, pipe in self.children:
                try:
                    status, payload = pipe.recv()
                except EOFError:
                    child.join()
                    raise RuntimeError(
                        f"scanner process {index} died (exit code {child.exitcode})"
                    ) from None
                if status == "input":
                    raise InputError(str(payload))
                if status != "ok":
                    raise RuntimeError(f"scanner process {index} failed: {payload}")
                assert isinstance(payload, RangeResult)
                results[index] = payload
        finally:
            self.abort()
        merged: dict[str, list[int]] = {}
        offset_ranges: list[tuple[int, RangeResult]] = []
        lines = valid = rejected = duration_sum = 0
        for result in results:
            assert result is not None
            offset_ranges.append((lines, result))
            lines += result.lines
            valid += result.valid
            rejected += result.rejected
            duration_sum += result.duration_sum
            if not merged:
                merged = result.totals
                continue
            for user, (total, count) in result.totals.items():
                entry = merged.get(user)
                if entry is None:
                    merged[user] = [total, count]
                else:
                    entry[0] += total
                    entry[1] += count
            result.totals = {}
        return ScanResult(
            self.size,
            lines,
            valid,
            rejected,
            duration_sum,
            merged,
            offset_ranges,
            len(self.ranges),
        )


def scan_file(path: str, workers: int, spill_dir: str) -> ScanResult:
    """Validate and total a whole file with up to ``workers`` processes."""
    scan = Scan(path, workers, spill_dir).start()
    try:
        return scan.finish()
    finally:
        scan.abort()


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return number


def _ratio(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _default_connect_timeout() -> float:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        return _seconds(raw)
    except (ValueError, argparse.ArgumentTypeError):
        print(
            f"aggregate-events: ignoring {CONNECT_TIMEOUT_ENV}={raw!r} (not seconds >= 0)",
            file=sys.stderr,
        )
        return DEFAULT_CONNECT_TIMEOUT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aggregate-events",
        description=(
            "Validate a JSON Lines batch of events, total session duration per user and load "
            "it into PostgreSQL exactly once (libpq variables PGHOST, PGPORT, PGUSER, "
            "PGPASSWORD, PGDATABASE)."
        ),
        epilog=(
            "Exit codes: 0 loaded or already loaded, 2 usage, 3 unreadable input, "
            "4 too many rejected lines (nothing loaded), 5 database unreachable or failed."
        ),
    )
    parser.add_argument("--input", required=True, help="JSON Lines file of events")
    parser.add_argument("--batch-id", required=True, help="loading the same id twice is a no-op")
    parser.add_argument(
        "--max-rejected-ratio",
        type=_ratio,
        default=0.01,
        help="fail (and load nothing) above this share of rejected lines (0.01)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=_default_connect_timeout(),
        help=(
            "keep retrying the connection for this many seconds "
            f"(default {DEFAULT_CONNECT_TIMEOUT:g}, or ${CONNECT_TIMEOUT_ENV})"
        ),
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=default_workers(), help="scanner processes"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and total only; no database"
    )
    args = parser.parse_args(argv)
    if not args.batch_id.strip() or "\x00" in args.batch_id:
        parser.error("--batch-id must be non-empty and printable")
    return args


def _say(message: str) -> None:
    print(f"aggregate-events: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    source = os.path.abspath(args.input)
    # Check the input before anything else: a missing file must not wait for a database.
    try:
        with open(args.input, "rb") as fh:
            source_bytes = os.fstat(fh.fileno()).st_size
            fh.read(1)  # opening is not reading (EIO, a directory, a device)
    except OSError as exc:
        raise InputError(f"cannot read {args.input}: {exc.strerror or exc}") from None
    if os.path.isdir(args.input):
        raise InputError(f"cannot read {args.input}: is a directory")

    spill_dir = tempfile.mkdtemp(prefix="aggregate-events-")
    scanner = Scan(args.input, args.workers, spill_dir)
    try:
        # The scanners start first and read while this process connects (and maybe waits
        # for the server); an already loaded batch stops them at once.
        scanner.start()
        conn = None
        if not args.dry_run:
            from event_pipeline import db  # after the fork: the scanners never load libpq

            conn = db.connect(args.connect_timeout)
            db.ensure_schema(conn)
            if db.batch_exists(conn, args.batch_id):
                scanner.abort()
                print(f"batch {args.batch_id}: already loaded; nothing changed")
                conn.close()
                return EXIT_OK
        scan = scanner.finish()
        scanned = time.perf_counter()
        ratio = scan.rejected / scan.lines if scan.lines else 0.0
        for line, reason in scan.samples():
            _say(f"line {line}: rejected: {reason}")
        if scan.rejected > len(scan.samples()):
            _say(f"... {scan.rejected - len(scan.samples()):,} more rejected lines")
        if ratio > args.max_rejected_ratio:
            _say(
                f"batch {args.batch_id}: {scan.rejected:,} of {scan.lines:,} lines rejected "
                f"({ratio:.2%} > --max-rejected-ratio {args.max_rejected_ratio:.2%}); "
                "nothing loaded"
            )
            return EXIT_REJECTED
        rate = scan.lines / max(scanned - started, 1e-9)
        described = (
            f"{scan.valid:,} events, {len(scan.totals):,} users, {scan.rejected:,} rejected of "
            f"{scan.lines:,} lines"
        )
        if args.dry_run:
            print(
                f"batch {args.batch_id}: dry run: {described}; scanned in "
                f"{scanned - started:.2f}s ({rate:,.0f} lines/s, {scan.workers} processes)"
            )
            return EXIT_OK
        assert conn is not None
        from event_pipeline import db

        summary = db.BatchSummary(
            source=source,
            source_bytes=source_bytes,
            total_lines=scan.lines,
            valid_events=scan.valid,
            rejected_count=scan.rejected,
            users=len(scan.totals),
            total_session_duration=scan.duration_sum,
        )
        loaded = db.load_batch(conn, args.batch_id, summary, scan.totals, scan.rejected_rows())
        conn.close()
        elapsed = time.perf_counter() - started
        if not loaded:
            print(f"batch {args.batch_id}: already loaded by a concurrent run; nothing changed")
            return EXIT_OK
        print(
            f"batch {args.batch_id}: loaded {described} in {elapsed:.2f}s "
            f"({scan.lines / max(elapsed, 1e-9):,.0f} lines/s, {scan.workers} processes)"
        )
        return EXIT_OK
    finally:
        scanner.abort()
        shutil.rmtree(spill_dir, ignore_errors=True)


def _database_error(exc: BaseException) -> bool:
    driver = sys.modules.get("psycopg2")  # imported only when the run used the database
    return driver is not None and isinstance(exc, driver.Error)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        _say(str(exc))
        return EXIT_INPUT
    except KeyboardInterrupt:
        _say("interrupted; nothing loaded")
        return 130
    except Exception as exc:
        from event_pipeline.db import DatabaseUnavailable, first_line

        if isinstance(exc, DatabaseUnavailable):
            _say(str(exc))
            return EXIT_DATABASE
        if _database_error(exc):
            _say(f"database error, batch {args.batch_id} not loaded: {first_line(exc)}")
            return EXIT_DATABASE
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        _say(f"internal error, batch {args.batch_id} not loaded: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
