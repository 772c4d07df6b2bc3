"""generate-events: determinism, realism, the data contract, atomic output, errors."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from event_pipeline import generate
from event_pipeline.model import EVENT_TYPES
from event_pipeline.rules import FIELDS, validate_line

from .conftest import run_cli


def _generate(path: Path, count: int, seed: int, *extra: str) -> bytes:
    proc = run_cli(
        "generate-events",
        "--count",
        str(count),
        "--seed",
        str(seed),
        "--output",
        str(path),
        *extra,
    )
    assert proc.returncode == 0, proc.stderr
    return path.read_bytes()


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = _generate(tmp_path / "a.jsonl", 20_000, 42)
    second = _generate(tmp_path / "b.jsonl", 20_000, 42)
    other = _generate(tmp_path / "c.jsonl", 20_000, 43)
    assert first == second
    assert first != other
    assert first.count(b"\n") == 20_000


def test_output_does_not_depend_on_the_number_of_processes(tmp_path: Path) -> None:
    # Chunks have their own random streams and time windows: any worker count, same bytes.
    count = 3 * generate.CHUNK_EVENTS + 123
    one = _generate(tmp_path / "w1.jsonl", count, 9, "--workers", "1")
    assert _generate(tmp_path / "w2.jsonl", count, 9, "--workers", "2") == one
    assert _generate(tmp_path / "w3.jsonl", count, 9, "--workers", "3") == one


def test_stdout_matches_file(tmp_path: Path) -> None:
    in_file = _generate(tmp_path / "a.jsonl", 5_000, 7)
    proc = run_cli("generate-events", "--count", "5000", "--seed", "7", "--output", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == in_file


def test_events_follow_the_data_contract(tmp_path: Path) -> None:
    data = _generate(tmp_path / "a.jsonl", 30_000, 1, "--users", "50")
    users: Counter[str] = Counter()
    types: Counter[str] = Counter()
    previous = None
    for line in data.splitlines():
        event = json.loads(line)
        assert tuple(event) == FIELDS
        assert validate_line(line)[0] == event["userId"]
        assert type(event["sessionDuration"]) is int and event["sessionDuration"] >= 0
        stamp = datetime.fromisoformat(event["timestamp"])
        assert stamp.tzinfo is not None
        assert previous is None or stamp >= previous  # a time-ordered stream
        previous = stamp
        users[event["userId"]] += 1
        types[event["eventType"]] += 1
    assert len(users) == 50  # the --users pool, every user active
    assert max(users.values()) > 3 * min(users.values())  # a few heavy users, a long tail
    assert set(types) == {name for name, _ in EVENT_TYPES}
    assert types["pageView"] > types["addToCart"] > types["purchase"] > 0


def test_output_replaces_the_target_atomically(tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    target.write_bytes(b"old batch\n")
    _generate(target, 1_000, 3)
    assert target.read_bytes().count(b"\n") == 1_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]  # no temp left
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "events.jsonl"
    target.write_bytes(b"old batch\n")
    real_chunks = generate.iter_chunks

    def failing_chunks(*args: Any, **kwargs: Any) -> Iterator[tuple[int, bytes]]:
        for i, chunk in enumerate(real_chunks(*args, **kwargs)):
            if i == 2:
                raise OSError(28, "No space left on device")
            yield chunk

    monkeypatch.setattr(generate, "iter_chunks", failing_chunks)
    args = ["--count", "100000", "--seed", "1", "--output", str(target), "--quiet"]
    assert generate.main(args) == 1
    assert target.read_bytes() == b"old batch\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli(
        "generate-events",
        "--count",
        "10",
        "--seed",
        "1",
        "--output",
        str(tmp_path / "missing-dir" / "events.jsonl"),
    )
    assert proc.returncode == 1
    assert "cannot write" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--count", "-1", "--seed", "1", "--output", "-"],
        ["--count", "10", "--seed", "x", "--output", "-"],
        ["--count", "10", "--seed", "1", "--output", "-", "--users", "0"],
        ["--count", "10", "--output", "-"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    proc = run_cli("generate-events", *args)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_progress_on_stderr_for_large_counts(tmp_path: Path) -> None:
    proc = run_cli(
        "generate-events",
        "--count",
        str(generate.PROGRESS_MIN_COUNT),
        "--seed",
        "5",
        "--output",
        str(tmp_path / "big.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stderr.splitlines() if "/" in line and "events (" in line]
    assert len(progress) >= 5
    assert proc.stdout == ""
    assert os.path.getsize(tmp_path / "big.jsonl") > 0


def test_zero_events_is_an_empty_file(tmp_path: Path) -> None:
    assert _generate(tmp_path / "empty.jsonl", 0, 1) == b""


@pytest.mark.parametrize(
    ("count", "shards"), [(2 * generate.CHUNK_EVENTS + 123, 3), (50_001, 7), (3, 5)]
)
def test_shards_concatenated_are_the_unsharded_batch(
    tmp_path: Path, count: int, shards: int
) -> None:
    whole = _generate(tmp_path / "whole.jsonl", count, 21, "--users", "40")
    parts = []
    for i in range(shards):
        # An odd shard with two processes: the output does not depend on them either.
        workers = "2" if i % 2 else "1"
        part = _generate(
            tmp_path / f"s{i}.jsonl",
            count,
            21,
            "--users",
            "40",
            "--shard",
            f"{i}/{shards}",
            "--workers",
            workers,
        )
        assert part.count(b"\n") == count * (i + 1) // shards - count * i // shards
        parts.append(part)
    assert b"".join(parts) == whole  # so together they hold exactly --count events
    again = _generate(
        tmp_path / "again.jsonl", count, 21, "--users", "40", "--shard", f"1/{shards}"
    )
    assert again == parts[1]  # deterministic for (seed, I, N)


@pytest.mark.parametrize("value", ["4/4", "-1/3", "a/b", "1", "1/0", "0/10001", ""])
def test_a_bad_shard_is_a_usage_error_saying_what_is_expected(value: str) -> None:
    proc = run_cli(
        "generate-events", "--count", "10", "--seed", "1", "--output", "-", f"--shard={value}"
    )
    assert proc.returncode == 2
    assert (
        f"argument --shard: expected I/N with 0 <= I < N <= 10000 (e.g. 0/4), got {value!r}"
        in proc.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "abc"], "argument --count: expected an integer >= 0, got 'abc'"),
        (["--count", "-1"], "argument --count: expected an integer >= 0, got '-1'"),
        (["--seed", "x"], "argument --seed: expected an integer, got 'x'"),
        (["--users", "0"], "argument --users: expected an integer from 1 to 10,000,000, got '0'"),
        (
            ["--workers", "many"],
            "argument --workers: expected an integer from 1 to 1,024, got 'many'",
        ),
    ],
)
def test_usage_errors_say_what_is_expected(args: list[str], message: str) -> None:
    base = {"--count": "10", "--seed": "1", "--output": "-"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    proc = run_cli("generate-events", *[x for kv in base.items() for x in kv])
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "_non_negative" not in proc.stderr and "_positive" not in proc.stderr


def test_output_to_a_device_is_written_in_place(tmp_path: Path) -> None:
    # /dev/null (or a FIFO) must never be replaced by a regular file, even as root.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = run_cli(
            "generate-events", "--count", "100", "--seed", "1", "--output", str(fifo), "--quiet"
        )
        assert proc.returncode == 0, proc.stderr
        data = b""
        while chunk := os.read(reader, 1 << 16):
            data += chunk
    finally:
        os.close(reader)
    assert data.count(b"\n") == 100
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


@pytest.mark.parametrize("seed", [1, 2, -5, 123456789, 2**40])
def test_fake_names_and_products_are_fakers(seed: int) -> None:
    """build_pools draws faker's names and product ids without a Faker: the same values."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    firsts = [fake.first_name() for _ in range(generate.NAME_POOL)]
    lasts = [fake.last_name() for _ in range(generate.NAME_POOL)]
    products = [
        fake.bothify("??-#####", letters=generate.PRODUCT_LETTERS)
        for _ in range(1 << generate.PRODUCT_BITS)
    ]
    assert generate.fake_names_and_products(seed) == (firsts, lasts, products)


def test_an_error_of_the_background_sync_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is synced while written; an error there (reported once per open file, so the
    final fsync may not see it) fails the write, and the target is left as it was."""
    import errno

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(generate, "SYNC_INTERVAL_S", 0.001)
    monkeypatch.setattr("os.fdatasync", failing)
    target = tmp_path / "events.jsonl"
    target.write_bytes(b"before\n")

    def slow_writer(fh: Any) -> None:
        fh.write(b"x\n")
        import time

        time.sleep(0.2)  # the syncer runs meanwhile

    with pytest.raises(OSError, match="Input/output error"):
        generate._atomic_write(str(target), slow_writer)
    assert target.read_bytes() == b"before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]  # no temp file left


def test_version_line_first_and_the_installed_version(tmp_path: Path) -> None:
    """The first stderr line names the build (the e2e delivery loop reads it from a pod's log);
    it is the version the package was installed with, and --quiet drops it."""
    from importlib.metadata import version

    import event_pipeline

    proc = run_cli(
        "generate-events", "--count", "10", "--seed", "1", "--output", str(tmp_path / "a")
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stderr.splitlines()[0]
        == f"generate-events: event-pipeline {event_pipeline.__version__}"
    )
    assert version("event-pipeline") == event_pipeline.__version__
    quiet = run_cli(
        "generate-events",
        "--count",
        "10",
        "--seed",
        "1",
        "--output",
        str(tmp_path / "b"),
        "--quiet",
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
    shown = run_cli("aggregate-events", "--version")
    assert shown.stdout.strip() == f"aggregate-events {event_pipeline.__version__}"
