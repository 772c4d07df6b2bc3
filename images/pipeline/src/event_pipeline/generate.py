"""``generate-events``: write a deterministic batch of realistic fake events as JSON Lines.

Speed comes from calling faker only while building small pools (names, products), then
drawing every event from those pools with one ``random.Random(seed)``: the same seed (and the
same package version) gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import array
import gc
import itertools
import math
import os
import random
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

if TYPE_CHECKING:  # imported where it is used: only with --workers > 1
    import multiprocessing.connection
    import multiprocessing.process

from event_pipeline import __version__, cli
from event_pipeline.model import EVENT_TYPES, available_cpus

try:  # make_chunk's loop in C (_fastgen.c), the same bytes; without it, the Python loop
    from event_pipeline import _fastgen as _fastgen  # the tests read which path is in use
except ImportError:  # pragma: no cover - an install without a compiler
    _fastgen = None  # type: ignore[assignment]

CHUNK_EVENTS = 20_000
PROGRESS_MIN_COUNT = 1_000_000
DEFAULT_USERS = 1000
MAX_USERS = 10_000_000
NAME_POOL = 300
# Bits of one random draw per event: gap (ms to the previous event, mean 63.5 ms, so 1M events
# span about 18 hours), duration, product, event type; the rest pick the user.
GAP_BITS = 7
DURATION_BITS = 12
PRODUCT_BITS = 11
EVENT_BITS = 7
EVENT_TABLE = 1 << EVENT_BITS
# Time window of one chunk: 65 ms per event against a mean gap of 63.5 ms.
CHUNK_WINDOW_MS = CHUNK_EVENTS * 65
MAX_DURATION_S = 4 * 3600


class Pools(NamedTuple):
    """Precomputed JSON fragments; events pick from them by index."""

    users: list[str]  # user id per index
    user_table: list[str]  # '"userId":"…",' fragments, repeated by activity weight
    event_table: list[str]  # '"eventType":"…",' fragments, EVENT_TABLE entries by weight
    products: list[str]  # '"productId":"…",' fragments
    durations: list[str]  # '"sessionDuration":N}\n' for log-normal session lengths
    millis: list[str]  # '.mmmZ",' for 0..999
    start_ms: int
    # millis, user_table, event_table, products, durations packed for _fastgen (_packed):
    # arena, spans, arena, spans, ...
    packed: tuple[bytes, ...] = ()


PACK_SPARE = 64  # _fastgen.c's COPY


def _packed(table: list[str]) -> tuple[bytes, bytes]:
    """A pool for _fastgen: each distinct fragment once in an ASCII arena (PACK_SPARE spare
    bytes at its end), and per entry its span, offset << 16 | length, as native uint64s."""
    arena = bytearray()
    spans = array.array("Q")
    where: dict[str, int] = {}
    for text in table:
        span = where.get(text)
        if span is None:
            data = text.encode("ascii")
            span = where[text] = len(arena) << 16 | len(data)
            arena += data
        spans.append(span)
    arena += bytes(PACK_SPARE)
    return bytes(arena), spans.tobytes()


def _prefixes(first: int, last: int) -> tuple[bytes, bytes]:
    """``_packed`` of the timestamp prefixes of seconds ``first..last``, as make_chunk's
    ``strftime(head, gmtime(s))``: strftime once a minute, the seconds' two digits put in."""
    head = '{"timestamp":"%Y-%m-%dT%H:%M:'
    texts = []
    minute = ""
    for t in range(first, last + 1):
        second = t % 60
        if second == 0 or not minute:
            minute = time.strftime(head, time.gmtime(t))
        texts.append(f"{minute}{second:02d}")
    data = "".join(texts).encode("ascii")
    spans = array.array("Q")
    offset = 0
    for text in texts:
        spans.append(offset << 16 | len(text))
        offset += len(text)
    return data + bytes(PACK_SPARE), spans.tobytes()


def _letters(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower()) or "x"


PRODUCT_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def fake_names_and_products(seed: int) -> tuple[list[str], list[str], list[str]]:
    """What ``Faker("en_US")`` seeded with ``seed`` answers to NAME_POOL ``first_name()``, then
    NAME_POOL ``last_name()``, then ``1 << PRODUCT_BITS`` ``bothify("??-#####", letters=
    PRODUCT_LETTERS)`` calls: the same draws from the same ``random.Random(seed)``
    (Faker.seed_instance), without building a Faker (its providers, a weights table per call).
    A name is ``random.choices`` over the provider's weighted names; bothify fills the five
    digits (``randint(0, 9)``), then the two letters (``choice``). tests/pipeline/
    test_generate.py compares this with faker itself."""
    from faker.providers.person.en_US import Provider as Person  # faker's names and weights

    fake = random.Random(seed)  # noqa: S311 - reproducible fake data, not security

    def names(table: dict[str, float]) -> list[str]:
        cum_weights = list(itertools.accumulate(table.values()))
        return fake.choices(tuple(table), cum_weights=cum_weights, k=NAME_POOL)

    firsts, lasts = names(Person.first_names), names(Person.last_names)
    letters = tuple(PRODUCT_LETTERS)
    products = []
    for _ in range(1 << PRODUCT_BITS):
        digits = "".join([str(fake.randint(0, 9)) for _ in range(5)])
        products.append(f"{fake.choice(letters)}{fake.choice(letters)}-{digits}")
    return firsts, lasts, products


def build_pools(seed: int, users: int, start: datetime | None = None) -> Pools:
    """Everything random that is not per event, with faker's names drawn from ``seed``."""
    gc.disable()  # faker's import and the pools make many objects and no reference cycles
    try:
        first_names, last_names, product_ids = fake_names_and_products(seed)
    finally:
        gc.enable()
    rng = random.Random(seed)  # noqa: S311 - reproducible fake data, not security
    firsts = sorted({_letters(name) for name in first_names})
    lasts = sorted({_letters(name) for name in last_names})
    # first.lastN: names have no dot and no digit, so the index keeps ids unique.
    user_ids = [f"{rng.choice(firsts)}.{rng.choice(lasts)}{i}" for i in range(users)]
    # Activity follows a Zipf-like law (a few heavy users); every user gets at least one slot.
    # Every table has a power-of-two size so one 64-bit draw indexes them all (see iter_chunks).
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(users)]
    rng.shuffle(weights)
    size = 1 << max(16, (8 * users - 1).bit_length())
    spare = size - users
    total = sum(weights)
    user_table: list[str] = []
    for uid, weight in zip(user_ids, weights, strict=True):
        user_table.extend([f'"userId":"{uid}",'] * (1 + int(weight / total * spare)))
    user_table.extend(user_table[: size - len(user_table)])
    weight_sum = sum(w for _, w in EVENT_TYPES)
    counts = [w * EVENT_TABLE // weight_sum for _, w in EVENT_TYPES]
    counts[0] += EVENT_TABLE - sum(counts)
    event_table: list[str] = []
    for (name, _), n in zip(EVENT_TYPES, counts, strict=True):
        event_table.extend([f'"eventType":"{name}",'] * n)
    products = [f'"productId":"{product}",' for product in product_ids]
    # Log-normal session lengths: median about 90 s, a long tail capped at 4 hours.
    durations = [
        f'"sessionDuration":{min(MAX_DURATION_S, int(rng.lognormvariate(4.5, 1.2)))}}}\n'
        for _ in range(1 << DURATION_BITS)
    ]
    millis = [f'.{m:03d}Z",' for m in range(1000)]
    if start is None:
        base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        start_ms = int(base) * 1000 + rng.randrange(365 * 86400) * 1000
    else:
        start_ms = int(start.timestamp() * 1000)
    packed: tuple[bytes, ...] = ()
    if _fastgen is not None:
        tables = (millis, user_table, event_table, products, durations)
        packed = tuple(part for table in tables for part in _packed(table))
    return Pools(user_ids, user_table, event_table, products, durations, millis, start_ms, packed)


def make_chunk(pools: Pools, seed: int, index: int, n: int) -> bytes:
    """Events ``index * CHUNK_EVENTS ...`` of the batch: a pure function of its arguments.

    Each chunk has its own random stream and its own time window, so chunks can be made in any
    order by any number of processes and the file is the same bytes.
    """
    rng = random.Random(f"{seed}/{index}")  # noqa: S311 - reproducible fake data
    bits = rng.getrandbits
    users = pools.user_table
    events = pools.event_table
    products = pools.products
    durations = pools.durations
    millis = pools.millis
    user_bits = (len(users) - 1).bit_length()
    draw_bits = GAP_BITS + DURATION_BITS + PRODUCT_BITS + EVENT_BITS + user_bits
    gap_mask = (1 << GAP_BITS) - 1
    d_shift, d_mask = GAP_BITS, (1 << DURATION_BITS) - 1
    p_shift, p_mask = d_shift + DURATION_BITS, (1 << PRODUCT_BITS) - 1
    e_shift, e_mask = p_shift + PRODUCT_BITS, EVENT_TABLE - 1
    u_shift = e_shift + EVENT_BITS
    gmtime = time.gmtime
    strftime = time.strftime
    head = '{"timestamp":"%Y-%m-%dT%H:%M:%S'
    first_ms = pools.start_ms + index * CHUNK_WINDOW_MS
    s, m = divmod(first_ms, 1000)
    # The window leaves ~6 standard deviations of room over the mean gap; should it ever run
    # out, time stops at its last second rather than overlap the next chunk.
    last_s = (first_ms + CHUNK_WINDOW_MS) // 1000 - 1
    if _fastgen is not None and pools.packed:
        # The same numbers: getrandbits(draw_bits) takes two 32-bit outputs per event.
        words = rng.getrandbits(64 * n).to_bytes(8 * n, "little")
        prefixes = _prefixes(s, last_s)
        return _fastgen.make_events(words, n, draw_bits, m, *prefixes, *pools.packed)
    prefix = strftime(head, gmtime(s))
    out: list[str] = []
    append = out.append
    for _ in range(n):
        r = bits(draw_bits)  # one draw per event: cheaper than five random() calls
        m += r & gap_mask  # a gap is < 1000 ms: at most one carry into the seconds
        if m >= 1000:
            m -= 1000
            if s < last_s:
                s += 1
            else:
                m = 999
            prefix = strftime(head, gmtime(s))
        append(
            f"{prefix}{millis[m]}{users[r >> u_shift]}{events[(r >> e_shift) & e_mask]}"
            f"{products[(r >> p_shift) & p_mask]}{durations[(r >> d_shift) & d_mask]}"
        )
    return "".join(out).encode("ascii")


def shard_events(count: int, shard: int, shards: int) -> tuple[int, int]:
    """Events ``[first, last)`` of the whole batch that shard ``shard`` of ``shards`` holds.

    Shards are consecutive slices of the unsharded batch, so shards 0..N-1 concatenated are
    the unsharded file byte for byte, and together they hold exactly ``count`` events.
    """
    return count * shard // shards, count * (shard + 1) // shards


def _chunk_part(first: int, last: int, index: int) -> tuple[int, int]:
    """``(skip, end)``: events ``[skip, end)`` of chunk ``index`` fall in ``[first, last)``."""
    base = index * CHUNK_EVENTS
    return max(0, first - base), min(CHUNK_EVENTS, last - base)


def make_part(pools: Pools, seed: int, index: int, skip: int, end: int) -> bytes:
    """Events ``[skip, end)`` of chunk ``index`` (a chunk's first events never depend on how
    many follow, so the chunk is made up to ``end`` and its first ``skip`` lines dropped)."""
    data = make_chunk(pools, seed, index, end)
    cut = 0
    for _ in range(skip):  # at most the first chunk of a shard
        cut = data.index(b"\n", cut) + 1
    return data[cut:] if cut else data


def _chunk_worker(
    conn: multiprocessing.connection.Connection,
    pools: Pools,
    seed: int,
    events: tuple[int, int],
    indices: range,
) -> None:
    """Make every chunk of ``indices`` in order; a full pipe blocks it until the writer reads."""
    try:
        for index in indices:
            conn.send_bytes(make_part(pools, seed, index, *_chunk_part(*events, index)))
    except BrokenPipeError:  # the writer stopped (an error, an interrupt): nothing to do
        pass
    finally:
        conn.close()


def iter_chunks(
    events: tuple[int, int], seed: int, pools: Pools, workers: int = 1
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(events_in_chunk, bytes)`` of events ``[first, last)`` of the batch, in file
    order, made by up to ``workers`` processes."""
    first, last = events
    if last <= first:
        return
    chunks = range(first // CHUNK_EVENTS, (last - 1) // CHUNK_EVENTS + 1)
    workers = min(workers, len(chunks))
    if workers <= 1:
        for index in chunks:
            skip, end = _chunk_part(first, last, index)
            yield end - skip, make_part(pools, seed, index, skip, end)
        return
    # Worker w makes chunks w, w + workers, ...; the writer reads them round-robin, so the
    # file order holds and each pipe holds at most about one chunk (memory stays flat).
    # Plain processes and pipes, no multiprocessing.Pool: killing a Pool's worker while it
    # holds the task queue's lock can deadlock the pool's shutdown.
    import multiprocessing  # here: most runs make every chunk in this process

    ctx = multiprocessing.get_context("fork")  # the pools reach the workers without pickling
    procs: list[tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]]
    procs = []
    try:
        for w in range(workers):
            receiver, sender = ctx.Pipe(duplex=False)
            worker = ctx.Process(
                target=_chunk_worker,
                args=(sender, pools, seed, events, chunks[w::workers]),
                daemon=True,
            )
            worker.start()
            sender.close()
            procs.append((worker, receiver))
        for n, index in enumerate(chunks):
            proc, receiver = procs[n % workers]
            try:
                data = receiver.recv_bytes()
            except EOFError:
                proc.join()
                raise RuntimeError(
                    f"generator worker {n % workers} died (exit code {proc.exitcode})"
                ) from None
            skip, end = _chunk_part(first, last, index)
            yield end - skip, data
    finally:
        for child, pipe in procs:
            pipe.close()
            if child.is_alive():
                child.kill()
            child.join()


def default_workers() -> int:
    """One with the C loop: a chunk is made faster than another process could pass it through
    a pipe. Without it, one per CPU (up to 4)."""
    if _fastgen is not None:
        return 1
    return max(1, min(4, available_cpus()))


def write_events(
    out: BinaryIO,
    events: tuple[int, int],
    seed: int,
    pools: Pools,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> None:
    written = 0
    for n, data in iter_chunks(events, seed, pools, workers):
        out.write(data)
        written += n
        if progress is not None:
            progress(written)


def _write_output(path: str, writer: Callable[[BinaryIO], None]) -> None:
    """A regular file (or a new one) is replaced atomically; anything else that exists (a
    device such as /dev/null, a FIFO) is written in place, never replaced by a file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if stat.S_ISREG(mode):
        _atomic_write(path, writer)
        return
    with open(path, "wb", buffering=1 << 20) as fh:
        writer(fh)


SYNC_INTERVAL_S = 0.05


def _sync_meanwhile(fd: int, stop: threading.Event, errors: list[OSError]) -> None:
    """``fdatasync`` the file every SYNC_INTERVAL_S while it is written, so the disk writes
    while events are made and the final ``fsync`` waits only for the last part."""
    while not stop.wait(SYNC_INTERVAL_S):
        try:
            os.fdatasync(fd)
        except OSError as exc:  # an error is reported once per open file: keep it for fsync's
            errors.append(exc)
            return


def _atomic_write(path: str, writer: Callable[[BinaryIO], None]) -> None:
    """Write to a temp file in the target's directory, fsync, then rename over the target."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            stop = threading.Event()
            errors: list[OSError] = []
            syncer = threading.Thread(target=_sync_meanwhile, args=(fd, stop, errors), daemon=True)
            syncer.start()
            try:
                writer(fh)
                fh.flush()
            finally:
                stop.set()
                syncer.join()
            os.fsync(fh.fileno())
            if errors:
                raise errors[0]
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the next step may run as another user
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, OSError)


def _progress_printer(count: int, started: float) -> Callable[[int], None]:
    step = max(1, count // 10)
    next_mark = [step]

    def report(written: int) -> None:
        if written >= next_mark[0] and written < count:
            rate = written / max(time.perf_counter() - started, 1e-9)
            print(
                f"generate-events: {written:,}/{count:,} events ({rate:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
            next_mark[0] = (written // step + 1) * step

    return report


def _parse_start(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="generate-events",
        description="Write COUNT fake events as JSON Lines; the same seed gives the same bytes.",
    )
    parser.add_argument(
        "--count", type=cli.integer(0), required=True, help="number of events in the batch"
    )
    parser.add_argument(
        "--seed", type=cli.integer(), required=True, help="random seed (any integer)"
    )
    parser.add_argument("--output", required=True, help="output file (written atomically) or -")
    parser.add_argument(
        "--users",
        type=cli.integer(1, MAX_USERS),
        default=DEFAULT_USERS,
        help=f"user pool size ({DEFAULT_USERS})",
    )
    parser.add_argument(
        "--shard",
        type=cli.shard,
        metavar="I/N",
        help=(
            "write only shard I (0..N-1) of N of the batch: its events COUNT*I//N to "
            "COUNT*(I+1)//N, so the N shards concatenated are the unsharded file"
        ),
    )
    parser.add_argument(
        "--start",
        type=_parse_start,
        help="timestamp of the first event (ISO-8601); default: derived from the seed",
    )
    parser.add_argument(
        "--workers",
        type=cli.integer(1, 1024),
        default=default_workers(),
        help="processes making events (the output does not depend on it)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no version line, progress or summary on stderr"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.quiet:
        print(f"generate-events: event-pipeline {__version__}", file=sys.stderr)
    started = time.perf_counter()
    pools = build_pools(args.seed, args.users, args.start)
    events = shard_events(args.count, *args.shard) if args.shard else (0, args.count)
    count = events[1] - events[0]
    show_progress = not args.quiet and count >= PROGRESS_MIN_COUNT
    progress = _progress_printer(count, started) if show_progress else None
    try:
        if args.output == "-":
            write_events(sys.stdout.buffer, events, args.seed, pools, progress, args.workers)
            sys.stdout.buffer.flush()
        else:
            _write_output(
                args.output,
                lambda fh: write_events(fh, events, args.seed, pools, progress, args.workers),
            )
    except KeyboardInterrupt:
        kept = "" if args.output == "-" else f"; {args.output} was not replaced"
        print(f"generate-events: interrupted{kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # A reader that stops early (`| head`) is not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        target = "stdout" if args.output == "-" else args.output
        print(f"generate-events: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a worker process died (killed, out of memory)
        kept = "" if args.output == "-" else f"; {args.output} was not replaced"
        print(f"generate-events: {exc}{kept}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    if not args.quiet:
        rate = count / elapsed if elapsed > 0 else math.inf
        target = "stdout" if args.output == "-" else args.output
        part = ""
        if args.shard:
            part = f" (shard {args.shard[0]}/{args.shard[1]} of {args.count:,})"
        print(
            f"generate-events: wrote {cli.plural(count, 'event')}{part} "
            f"({cli.plural(args.users, 'user')}, seed {args.seed}) to {target} in {elapsed:.2f}s "
            f"({rate:,.0f} events/s)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
