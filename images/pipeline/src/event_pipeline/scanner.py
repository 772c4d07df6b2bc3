"""The scan of a JSON Lines batch: validate every line, keep per-user totals.

The file is split into byte ranges at newlines and scanned by one forked process per core
(``Scan.start``), while the parent connects to the database; each keeps only per-user totals,
so memory grows with users, not events. Rejected lines go to a small spill file per range.
Standard input (``-``) is streamed by the parent alone. A line is valid when
``rules.validate_line`` says so; the fast paths (the C extension _fastscan, else blocks.py)
accept exactly a subset of those lines, with the same values, and hand every other line to it.
"""

from __future__ import annotations

import gc
import io
import itertools
import marshal
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext, suppress
from datetime import datetime
from typing import BinaryIO

from event_pipeline.model import available_cpus, copy_text, excerpt
from event_pipeline.rules import (
    MAX_LINE_BYTES,
    UTF8_BOM,
    Rejected,
    good_id,
    too_long,
    validate_line,
)

try:  # the C fast path for canonical lines (_fastscan.c); without it, pure Python (msgspec)
    from event_pipeline import _fastscan as _fastscan  # the tests read which path is in use
except ImportError:  # pragma: no cover - an install without a compiler
    _fastscan = None  # type: ignore[assignment]

# 64 KiB: the buffers of a block (its decode text, its events) stay below glibc malloc's mmap
# threshold, so they are reused instead of mapped and faulted in afresh for every block.
BLOCK_BYTES = 1 << 16
MIN_BYTES_PER_WORKER = 4 << 20  # below this, forking costs more than it saves
MAX_WORKERS = 8
SAMPLE_REJECTS = 5


def total_block(
    body: bytes, totals: dict[str, list[int]], known: set[str], max_line: int
) -> int | None:
    """The pure-Python path's block fast path (blocks.py, msgspec: imported on first use)."""
    from event_pipeline import blocks

    return blocks.total_block(body, totals, known, max_line)


class InputError(Exception):
    """The input file cannot be read (missing, a directory, unreadable, vanished)."""


class RangeResult:
    """What scanning one byte range found; line numbers in the spill file are range-local."""

    FIELDS = ("lines", "valid", "rejected", "duration_sum", "totals", "spill", "samples")

    def __init__(self) -> None:
        self.lines = 0
        self.valid = 0
        self.rejected = 0
        self.duration_sum = 0
        self.totals: dict[str, list[int]] = {}
        self.spill: str | None = None
        self.samples: list[tuple[int, str]] = []

    def dumps(self) -> bytes:
        """For the pipe from a scanner process: marshal, built in (no pickle import)."""
        return marshal.dumps(tuple(getattr(self, name) for name in self.FIELDS))

    @classmethod
    def loads(cls, data: bytes) -> RangeResult:
        result = cls()
        for name, value in zip(cls.FIELDS, marshal.loads(data), strict=True):  # noqa: S302 - our child's
            setattr(result, name, value)
        return result


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


def add_totals(into: dict[str, list[int]], more: Mapping[str, Sequence[int]]) -> None:
    """Add per-user (total, count) pairs to ``into``."""
    for user, (total, count) in more.items():
        entry = into.get(user)
        if entry is None:
            into[user] = [total, count]
        else:
            entry[0] += total
            entry[1] += count


def scan_range(
    path: str, start: int, end: int, index: int, spill_dir: str, stream: BinaryIO | None = None
) -> RangeResult:
    """Validate and total the lines in ``[start, end)``; ``start`` is at a line start.

    With ``stream`` (stdin), read it from its current position to its end instead."""
    # The scan makes no reference cycles, so the cyclic garbage collector, which would run
    # every few hundred container allocations (slow-path dicts, new users), is off meanwhile.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan_range(path, start, end, index, spill_dir, stream)
    finally:
        if gc_was_enabled:
            gc.enable()


def _scan_range(
    path: str, start: int, end: int, index: int, spill_dir: str, stream: BinaryIO | None = None
) -> RangeResult:
    result = RangeResult()
    rejects = _Rejects(spill_dir, index, result)
    totals = result.totals
    fast = None if _fastscan is None else _fastscan.Totals()
    if fast is None:  # the pure-Python path's line by line
        from event_pipeline.blocks import KNOWN_IDS_MAX
        from event_pipeline.decoding import DECODE_ERRORS as decode_errors
        from event_pipeline.decoding import decode_event as decode
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
    with open(path, "rb", buffering=0) if stream is None else nullcontext(stream) as fh:
        if stream is None:
            fh.seek(start)
        remaining = end - start
        first = start == 0
        while remaining > 0:
            block = fh.read(min(BLOCK_BYTES, remaining))
            if not block:
                if stream is not None:  # the end of stdin
                    break
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
                rejects.add(lines, too_long(skipping + cut), skip_head)
                skipping = 0
                block = block[cut + 1 :]
            if carry:
                block = carry + block
            cut = block.rfind(b"\n")
            carry = block[cut + 1 :]  # all of it if there is no newline
            if len(carry) > max_line:
                skipping, skip_head, carry = len(carry), carry[:1024], b""
            if cut < 0:
                continue
            if fast is not None:
                # C takes the canonical valid lines of block[:cut]; every other line goes to
                # validate_line (slow_path).
                count, others = fast.feed(block, cut)
                for at, line in others:
                    slow_path(lines + 1 + at, line)
                lines += count
                continue
            body = block[:cut]
            # Fast path: the whole block in one msgspec call (blocks.py), else line by line.
            done = total_block(body, totals, known, max_line)
            if done is not None:
                lines += done
                continue
            parts = body.split(b"\n")
            if max(map(len, parts)) > max_line:  # rare: this block takes the slow path
                for number, line in enumerate(parts, lines + 1):
                    slow_path(number, line)
                lines += len(parts)
                continue
            for number, line in enumerate(parts, lines + 1):
                # Line by line: rules.validate_line's first half, inlined. msgspec checks types
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
            rejects.add(lines, too_long(skipping), skip_head)
        elif carry:  # last line without a trailing newline
            lines += 1
            slow_path(lines, carry)
    rejects.close()
    if fast is not None:
        add_totals(totals, fast.to_dict())
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


def _scanner_main(path: str, start: int, end: int, index: int, spill_dir: str) -> bytes:
    """What a scanner process sends: ``ok`` and its result, or why it failed."""
    try:
        return b"ok" + scan_range(path, start, end, index, spill_dir).dumps()
    except InputError as exc:
        return b"in" + str(exc).encode()
    except OSError as exc:
        return b"in" + f"cannot read {path}: {exc.strerror or exc}".encode()
    except BaseException as exc:  # report, never die silently
        import traceback

        return b"er" + f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}".encode()


class _Scanner:
    """A forked process scanning one range; it writes its outcome to a pipe and exits."""

    def __init__(self, index: int, path: str, start: int, end: int, spill_dir: str) -> None:
        self.index = index
        read_fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            status = 1
            try:
                os.close(read_fd)
                message = _scanner_main(path, start, end, index, spill_dir)
                with open(write_fd, "wb") as pipe:
                    pipe.write(message)
                status = 0
            finally:
                os._exit(status)  # no atexit handlers, no flush of the parent's buffers
        os.close(write_fd)
        self.pipe: BinaryIO | None = open(read_fd, "rb")  # noqa: SIM115 - closed in reap

    def result(self) -> RangeResult:
        assert self.pipe is not None
        message = self.pipe.read()
        status = self.reap()
        kind, payload = message[:2], message[2:]
        if kind == b"ok":
            return RangeResult.loads(payload)
        if kind == b"in":
            raise InputError(payload.decode())
        if kind == b"er":
            raise RuntimeError(f"scanner process {self.index} failed: {payload.decode()}")
        raise RuntimeError(f"scanner process {self.index} died ({status})")

    def reap(self, kill: bool = False) -> str:
        """Wait for the process (killed first with ``kill``); how it ended."""
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None
        if self.pid == 0:
            return "reaped"
        if kill:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _, wait_status = os.waitpid(self.pid, 0)
        self.pid = 0
        code = os.waitstatus_to_exitcode(wait_status)
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"


class ScanResult:
    def __init__(
        self,
        size: int,
        lines: int,
        valid: int,
        rejected: int,
        duration_sum: int,
        totals: dict[str, list[int]],
        ranges: list[tuple[int, RangeResult]],  # (first line number - 1, result)
        workers: int,
    ) -> None:
        self.size = size
        self.lines = lines
        self.valid = valid
        self.rejected = rejected
        self.duration_sum = duration_sum
        self.totals = totals
        self.ranges = ranges
        self.workers = workers

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


class _CountingStdin(io.RawIOBase):
    """Standard input (fd 0, unbuffered), counting the bytes read."""

    def __init__(self) -> None:
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = os.readv(0, [buffer])
        self.count += n
        return n


class Scan:
    """A scan in two halves: ``start`` forks one scanner process per range, so they run while
    the parent connects to the database; ``finish`` collects their results and merges them.

    A file of one range, and the path ``-`` (standard input, streamed), are scanned by the
    parent itself in ``finish``."""

    def __init__(self, path: str, workers: int, spill_dir: str) -> None:
        self.path = path
        self.workers = workers
        self.spill_dir = spill_dir
        self.size = 0
        self.ranges: list[tuple[int, int]] = []
        self.children: list[_Scanner] = []
        self.stdin: _CountingStdin | None = None

    def start(self) -> Scan:
        path = self.path
        if path == "-":
            self.stdin = _CountingStdin()
            self.ranges = [(0, sys.maxsize)]
            return self
        try:
            with open(path, "rb") as fh:
                self.size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        parts = max(1, min(self.workers, self.size // MIN_BYTES_PER_WORKER))
        self.ranges = split_ranges(path, self.size, parts) if self.size else []
        # Forked, so nothing is imported again; the parent's own work meanwhile (connecting,
        # the schema) is on a core the scanners share, which balances it across the cores.
        # A single range (a small file) is scanned by the parent itself, in finish.
        if len(self.ranges) > 1:
            for index, (start, end) in enumerate(self.ranges):
                self.children.append(_Scanner(index, path, start, end, self.spill_dir))
        return self

    def abort(self) -> None:
        """Stop the scanners that are still running (an early exit, an error)."""
        for child in self.children:
            child.reap(kill=True)
        self.children = []

    def finish(self) -> ScanResult:
        results: list[RangeResult | None] = [None] * len(self.ranges)
        try:
            if self.ranges and not self.children:
                start, end = self.ranges[0]
                stream = None if self.stdin is None else io.BufferedReader(self.stdin, BLOCK_BYTES)
                try:
                    results[0] = scan_range(self.path, start, end, 0, self.spill_dir, stream)
                except OSError as exc:
                    raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
                if self.stdin is not None:
                    self.size = self.stdin.count
            for child in self.children:
                results[child.index] = child.result()
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
            add_totals(merged, result.totals)
            result.totals = {}
        # In user order: the digest sorts them anyway, and the COPY of rows in index order
        # makes PostgreSQL's index inserts (primary key, user_id) cheaper.
        merged = dict(sorted(merged.items()))
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
