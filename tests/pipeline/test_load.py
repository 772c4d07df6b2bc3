"""aggregate-events against a real PostgreSQL: totals, exactly once, concurrency, crashes,
bad input in the database, a server that comes up late, clear errors."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from event_pipeline.db import TEST_PAUSE_ENV
from event_pipeline.pgserver import LocalPostgres, free_port

from .conftest import Database, cli, run_cli
from .test_validation import good


def generate(path: Path, count: int, seed: int, users: int = 300) -> Path:
    proc = run_cli(
        "generate-events",
        "--count",
        str(count),
        "--seed",
        str(seed),
        "--users",
        str(users),
        "--output",
        str(path),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    return path


def independent_totals(path: Path) -> dict[str, int]:
    """Per-user totals with nothing but the standard library."""
    totals: dict[str, int] = defaultdict(int)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            totals[event["userId"]] += event["sessionDuration"]
    return dict(totals)


def table_counts(db: Database, batch_id: str) -> tuple[int, int, int]:
    return (
        db.query("SELECT count(*) FROM batches WHERE batch_id = %s", (batch_id,))[0][0],
        db.query("SELECT count(*) FROM batch_user_totals WHERE batch_id = %s", (batch_id,))[0][0],
        db.query("SELECT count(*) FROM rejected_lines WHERE batch_id = %s", (batch_id,))[0][0],
    )


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ~27 MB: big enough that the aggregator splits it across processes.
    return generate(tmp_path_factory.mktemp("batch") / "events.jsonl", 200_000, 11)


@pytest.fixture(scope="module")
def expected(batch_file: Path) -> dict[str, int]:
    return independent_totals(batch_file)


def test_totals_equal_an_independent_computation(
    database: Database, batch_file: Path, expected: dict[str, int]
) -> None:
    proc = database.aggregate("--input", str(batch_file), "--batch-id", "b-1")
    assert proc.returncode == 0, proc.stderr
    assert "loaded 200,000 events" in proc.stdout
    assert "2 processes" in proc.stdout or os.cpu_count() == 1
    assert database.user_totals() == expected
    row = database.query(
        "SELECT total_lines, valid_events, rejected_count, users, total_session_duration"
        " FROM batches WHERE batch_id = 'b-1'"
    )[0]
    assert row == (200_000, 200_000, 0, len(expected), sum(expected.values()))
    counts = database.query(
        "SELECT user_id, event_count FROM batch_user_totals WHERE batch_id = 'b-1'"
    )
    assert sum(c for _, c in counts) == 200_000


def test_rerun_of_the_same_batch_changes_nothing(
    database: Database, batch_file: Path, expected: dict[str, int]
) -> None:
    first = database.aggregate("--input", str(batch_file), "--batch-id", "wf-7")
    assert first.returncode == 0, first.stderr
    again = database.aggregate("--input", str(batch_file), "--batch-id", "wf-7")
    assert again.returncode == 0, again.stderr
    assert "already loaded" in again.stdout
    assert database.user_totals() == expected
    assert table_counts(database, "wf-7")[:2] == (1, len(expected))
    # A different batch id is a different batch: the view sums over batches.
    other = database.aggregate("--input", str(batch_file), "--batch-id", "wf-8")
    assert other.returncode == 0, other.stderr
    assert database.user_totals() == {u: 2 * t for u, t in expected.items()}


def test_a_different_file_for_a_loaded_batch_is_refused(
    database: Database, batch_file: Path, expected: dict[str, int], tmp_path: Path
) -> None:
    assert database.aggregate("--input", str(batch_file), "--batch-id", "b").returncode == 0
    recorded = database.query("SELECT content_digest, valid_events FROM batches")
    assert recorded[0][1] == 200_000 and len(recorded[0][0]) == 64
    other = generate(tmp_path / "other.jsonl", 1_000, 12)
    proc = database.aggregate("--input", str(other), "--batch-id", "b")
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.startswith("aggregate-events: batch b: refused: already loaded from 200,000")
    assert f"from {batch_file}" in proc.stderr and "this input: 1,000 events" in proc.stderr
    assert "nothing changed" in proc.stderr and proc.stdout == ""
    # One changed line is a different batch too (a duration, then a line now rejected).
    lines = batch_file.read_bytes().splitlines(keepends=True)
    event = json.loads(lines[5])
    event["sessionDuration"] += 1
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join([*lines[:5], json.dumps(event).encode() + b"\n", *lines[6:]]))
    assert database.aggregate("--input", str(edited), "--batch-id", "b").returncode == 6
    edited.write_bytes(b"".join([*lines[:5], b"{broken\n", *lines[6:]]))
    assert database.aggregate("--input", str(edited), "--batch-id", "b").returncode == 6
    assert database.user_totals() == expected
    # The same events from a copy of the file, or from stdin, are the same batch: a no-op.
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(batch_file.read_bytes())
    again = database.aggregate("--input", str(copy), "--batch-id", "b")
    assert again.returncode == 0, again.stderr
    assert "already loaded with the same content; nothing changed" in again.stdout
    assert database.user_totals() == expected


def test_stdin_is_streamed_with_the_same_rules(database: Database, tmp_path: Path) -> None:
    # generate-events ... --output - | aggregate-events --input - ...: one aggregator process.
    def pipeline(seed: int, batch_id: str) -> subprocess.CompletedProcess[str]:
        gen = subprocess.Popen(
            [
                cli("generate-events"),
                "--count",
                "30000",
                "--seed",
                str(seed),
                "--users",
                "40",
                "--output",
                "-",
                "--quiet",
            ],
            stdout=subprocess.PIPE,
        )
        agg = subprocess.run(
            [cli("aggregate-events"), "--input", "-", "--batch-id", batch_id],
            stdin=gen.stdout,
            env=database.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert gen.stdout is not None
        gen.stdout.close()
        assert gen.wait(timeout=60) == 0
        return agg

    first = pipeline(4, "piped")
    assert first.returncode == 0, first.stderr
    assert "loaded 30,000 events, 40 users, 0 rejected of 30,000 lines" in first.stdout
    assert "1 process)" in first.stdout
    expected = independent_totals(generate(tmp_path / "same.jsonl", 30_000, 4, users=40))
    assert database.user_totals() == expected
    assert database.query("SELECT source FROM batches") == [("stdin",)]
    again = pipeline(4, "piped")
    assert again.returncode == 0 and "already loaded with the same content" in again.stdout
    other = pipeline(5, "piped")
    assert other.returncode == 6 and "refused" in other.stderr
    # The file of the same events is the same batch.
    same = database.aggregate("--input", str(tmp_path / "same.jsonl"), "--batch-id", "piped")
    assert same.returncode == 0 and "already loaded" in same.stdout
    assert database.user_totals() == expected
    # Bad lines through stdin: stored with their numbers, the ratio rule, emptiness.
    lines = [good(userId=f"u{i % 3}", sessionDuration=i) for i in range(1, 301)]
    lines[41] = b"{not json"
    bad = subprocess.run(
        [cli("aggregate-events"), "--input", "-", "--batch-id", "piped-bad"],
        input=b"\n".join(lines) + b"\n",
        env=database.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 0, bad.stderr
    assert database.query(
        "SELECT line_number FROM rejected_lines WHERE batch_id = 'piped-bad'"
    ) == [(42,)]
    too_bad = subprocess.run(
        [cli("aggregate-events"), "--input", "-", "--batch-id", "piped-worse"],
        input=b"garbage\n" * 5 + good() + b"\n",
        env=database.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert too_bad.returncode == 4, too_bad.stderr
    empty = subprocess.run(
        [cli("aggregate-events"), "--input", "-", "--batch-id", "piped-empty"],
        input="",
        env=database.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 3 and "standard input is empty" in empty.stderr
    assert (
        table_counts(database, "piped-worse") == table_counts(database, "piped-empty") == (0, 0, 0)
    )


def test_concurrent_loaders_of_one_batch_load_it_once(
    database: Database, batch_file: Path, expected: dict[str, int]
) -> None:
    # Four separate processes start together on an empty database (the schema race too).
    procs = [
        subprocess.Popen(
            [cli("aggregate-events"), "--input", str(batch_file), "--batch-id", "same"],
            env=database.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    loaded = [out for out, _ in outputs if "loaded 200,000 events" in out]
    skipped = [out for out, _ in outputs if "already loaded" in out]
    assert (len(loaded), len(skipped)) == (1, 3), outputs
    assert database.user_totals() == expected
    assert table_counts(database, "same")[:2] == (1, len(expected))


def test_a_loader_waits_for_an_uncommitted_load_of_the_same_batch(
    database: Database, batch_file: Path, expected: dict[str, int]
) -> None:
    # The first loader holds its transaction open; the second reaches its INSERT meanwhile,
    # blocks on the uncommitted batch row, and must then see "already loaded".
    env = {**database.env, TEST_PAUSE_ENV: "3"}
    first = subprocess.Popen(
        [cli("aggregate-events"), "--input", str(batch_file), "--batch-id", "held"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stderr is not None
    for line in first.stderr:
        if "test hook: pausing" in line:
            break
    second = database.aggregate("--input", str(batch_file), "--batch-id", "held")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "loaded 200,000 events" in out
    assert second.returncode == 0, second.stderr
    assert "already loaded by a concurrent run" in second.stdout
    assert database.user_totals() == expected


def test_concurrent_loaders_of_different_batches_on_a_fresh_database(
    database: Database, tmp_path: Path
) -> None:
    small = generate(tmp_path / "small.jsonl", 5_000, 3, users=20)
    procs = [
        subprocess.Popen(
            [cli("aggregate-events"), "--input", str(small), "--batch-id", f"b{i}"],
            env=database.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outputs]
    assert database.user_totals() == {u: 6 * t for u, t in independent_totals(small).items()}


def test_kill_9_during_the_load_leaves_no_partial_batch(
    database: Database, batch_file: Path, expected: dict[str, int], tmp_path: Path
) -> None:
    # TMPDIR: the killed loader cannot remove its spill directory; keep it in pytest's tmp.
    env = {**database.env, TEST_PAUSE_ENV: "120", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [cli("aggregate-events"), "--input", str(batch_file), "--batch-id", "crash"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "test hook: pausing" in line:
            break
    else:
        pytest.fail(f"the loader never reached its transaction: {proc.wait()}")
    # Inside the transaction: batch row and totals are written but not committed.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # The server rolls back when it sees the connection gone.
    deadline = time.monotonic() + 30
    while database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aggregate-events'"
    )[0][0]:
        assert time.monotonic() < deadline, "the killed loader's session never ended"
        time.sleep(0.1)
    assert table_counts(database, "crash") == (0, 0, 0)
    assert database.user_totals() == {}
    # The batch is not poisoned: the retry loads it whole.
    retry = database.aggregate("--input", str(batch_file), "--batch-id", "crash")
    assert retry.returncode == 0, retry.stderr
    assert database.user_totals() == expected


def test_rejected_lines_are_stored_and_valid_lines_load(database: Database, tmp_path: Path) -> None:
    lines = [good(userId=f"user{i % 7}", sessionDuration=i) for i in range(1, 1001)]
    lines[9] = b"{not json"
    lines[99] = good(sessionDuration=True)
    lines[499] = good(sessionDuration=2**63)
    lines[999] = b""
    path = tmp_path / "some-bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = database.aggregate("--input", str(path), "--batch-id", "bad-4")
    assert proc.returncode == 0, proc.stderr
    assert "4 rejected of 1,000 lines" in proc.stdout
    assert "line 10: rejected: invalid JSON" in proc.stderr
    rows = database.query(
        "SELECT line_number, reason, excerpt FROM rejected_lines WHERE batch_id = 'bad-4'"
        " ORDER BY line_number"
    )
    assert [r[0] for r in rows] == [10, 100, 500, 1000]
    assert rows[0][1].startswith("invalid JSON") and rows[0][2] == "{not json"
    assert rows[1][1].startswith("wrong type: sessionDuration must be an integer, got boolean")
    assert rows[2][1].startswith("out of range")
    assert rows[3][1] == "empty line"
    expected: dict[str, int] = defaultdict(int)
    for i in range(1, 1001):
        if i not in (10, 100, 500, 1000):
            expected[f"user{i % 7}"] += i
    assert database.user_totals() == expected


def test_too_many_rejected_lines_load_nothing(database: Database, tmp_path: Path) -> None:
    lines = [good(sessionDuration=i) for i in range(100)] + [b"garbage"] * 2
    path = tmp_path / "too-bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = database.aggregate("--input", str(path), "--batch-id", "bad-ratio")
    assert proc.returncode == 4
    assert "2 of 102 lines rejected" in proc.stderr and "nothing loaded" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert table_counts(database, "bad-ratio") == (0, 0, 0)
    # The same batch with a looser threshold loads (the failed attempt left nothing behind).
    ok = database.aggregate(
        "--input", str(path), "--batch-id", "bad-ratio", "--max-rejected-ratio", "0.05"
    )
    assert ok.returncode == 0, ok.stderr
    assert table_counts(database, "bad-ratio") == (1, 1, 2)


def test_special_user_ids_round_trip_through_copy(database: Database, tmp_path: Path) -> None:
    users = ["dom\\user", "jos\u00e9", "\u7528\u6237", 'quote"d', "comma,semi;colon", "\\N"]
    path = tmp_path / "special.jsonl"
    path.write_bytes(b"\n".join(good(userId=u, sessionDuration=3) for u in users) + b"\n")
    proc = database.aggregate("--input", str(path), "--batch-id", "special")
    assert proc.returncode == 0, proc.stderr
    assert database.user_totals() == {u: 3 for u in users}


def test_the_view_saturates_instead_of_overflowing(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(good(userId="whale", sessionDuration=5) + b"\n")
    assert database.aggregate("--input", str(path), "--batch-id", "v1").returncode == 0
    big = 2**63 - 10
    conn = database.connect()
    with conn, conn.cursor() as cur:
        for bid in ("v2", "v3"):
            cur.execute(
                "INSERT INTO batches (batch_id, source, source_bytes, total_lines,"
                " valid_events, rejected_count, users, total_session_duration)"
                " VALUES (%s, 'x', 0, 1, 1, 0, 1, %s)",
                (bid, big),
            )
            cur.execute("INSERT INTO batch_user_totals VALUES (%s, 'whale', %s, 1)", (bid, big))
    conn.close()
    assert database.user_totals() == {"whale": 2**63 - 1}
    column = database.query(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'user_totals' AND column_name = 'total_session_duration'"
    )
    assert column == [("bigint",)]


def test_a_database_that_comes_up_late_is_waited_for(tmp_path: Path) -> None:
    data = generate(tmp_path / "late.jsonl", 2_000, 5, users=10)
    late = LocalPostgres(dbname="events")
    late.init()
    try:
        env = {**os.environ, **late.env()}
        proc = subprocess.Popen(
            [
                cli("aggregate-events"),
                "--input",
                str(data),
                "--batch-id",
                "late",
                "--connect-timeout",
                "90",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "not ready" in first, first
        late.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, first + err
        assert "loaded 2,000 events" in out
        totals = dict(
            line.split("|", 1)
            for line in late.psql("SELECT user_id, total_session_duration FROM user_totals")
            .strip()
            .splitlines()
        )
        assert {u: int(t) for u, t in totals.items()} == independent_totals(data)
    finally:
        late.cleanup()


def test_an_unreachable_database_is_a_bounded_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "x.jsonl"
    data.write_bytes(good() + b"\n")
    port = free_port()
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "nobody"}
    proc = run_cli(
        "aggregate-events",
        "--input",
        str(data),
        "--batch-id",
        "x",
        "--connect-timeout",
        "1.5",
        env=env,
    )
    assert proc.returncode == 5
    # One line when the wait starts (where, how long, what sets it), one when it gives up.
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(f"aggregate-events: PostgreSQL at 127.0.0.1:{port}/nobody not ready")
    assert (
        "waiting up to 1.5s (--connect-timeout or $AGGREGATE_CONNECT_TIMEOUT sets how long)"
        in (lines[0])
    )
    assert lines[1].startswith(
        f"aggregate-events: cannot connect to PostgreSQL at 127.0.0.1:{port}"
    )
    assert "attempts in" in lines[1]
    assert proc.stdout == ""


def test_waiting_on_a_terminal_keeps_one_progress_line(tmp_path: Path) -> None:
    data = tmp_path / "x.jsonl"
    data.write_bytes(good() + b"\n")
    port = free_port()
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "nobody"}
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [
            cli("aggregate-events"),
            "--input",
            str(data),
            "--batch-id",
            "x",
            "--connect-timeout",
            "4",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert proc.wait(timeout=60) == 5
    lines = seen.decode().replace("\r\n", "\n").strip("\n").split("\n")
    assert len(lines) == 3, lines
    assert "not ready" in lines[0] and "cannot connect" in lines[2]
    # The middle line is rewritten in place: several updates, one line.
    assert lines[1].count("still waiting for PostgreSQL") >= 2, lines[1]
    assert lines[1].startswith("\r\x1b[K")


@pytest.mark.parametrize("kind", ["missing", "directory", "unreadable"])
def test_unreadable_input_is_a_clear_error_before_any_database_wait(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "input.jsonl"
    if kind == "directory":
        target.mkdir()
    elif kind == "unreadable":
        # A socket in place of the file: open() fails even for root (ENXIO).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(target))
        sock.close()
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(free_port())}
    proc = run_cli(
        "aggregate-events",
        "--input",
        str(target),
        "--batch-id",
        "x",
        "--connect-timeout",
        "300",
        env=env,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"aggregate-events: cannot read {target}")
    assert "not ready" not in proc.stderr  # it did not wait for the database first
    assert "Traceback" not in proc.stderr


def test_dry_run_needs_no_database(tmp_path: Path) -> None:
    data = generate(tmp_path / "d.jsonl", 1_000, 9, users=5)
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(free_port())}
    proc = run_cli(
        "aggregate-events", "--input", str(data), "--batch-id", "d", "--dry-run", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "dry run: 1,000 events, 5 users, 0 rejected" in proc.stdout


def test_an_empty_file_is_refused_unless_allowed(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    proc = database.aggregate("--input", str(path), "--batch-id", "empty")
    assert proc.returncode == 3, proc.stderr
    assert f"{path} is empty" in proc.stderr and "--allow-empty" in proc.stderr
    assert database.query("SELECT to_regclass('batches')") == [(None,)]  # before any database use
    # A file holding only a byte order mark has no lines either: refused after the scan.
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf")
    proc = database.aggregate("--input", str(bom), "--batch-id", "empty")
    assert proc.returncode == 3, proc.stderr
    assert table_counts(database, "empty") == (0, 0, 0)
    # Asked for: an empty batch, which uses up the id.
    proc = database.aggregate("--input", str(path), "--batch-id", "empty", "--allow-empty")
    assert proc.returncode == 0, proc.stderr
    assert "loaded 0 events, 0 users, 0 rejected of 0 lines" in proc.stdout
    assert table_counts(database, "empty") == (1, 0, 0)
    assert database.user_totals() == {}


def test_a_database_of_the_previous_version_is_upgraded_and_its_batches_compared(
    database: Database, tmp_path: Path
) -> None:
    data = generate(tmp_path / "old.jsonl", 2_000, 8, users=10)
    assert database.aggregate("--input", str(data), "--batch-id", "first").returncode == 0
    # The schema as the previous version left it: no digest, no shards, no staging tables.
    conn = database.connect()
    with conn, conn.cursor() as cur:
        cur.execute(
            "DROP TABLE staged_user_totals, staged_rejected_lines, batch_shards;"
            " ALTER TABLE batches DROP COLUMN content_digest, DROP COLUMN shards"
        )
    conn.close()
    other = generate(tmp_path / "other.jsonl", 2_000, 9, users=10)
    proc = database.aggregate("--input", str(other), "--batch-id", "second")
    assert proc.returncode == 0, proc.stderr
    assert database.query("SELECT to_regclass('batch_shards') IS NOT NULL") == [(True,)]
    digests = database.query("SELECT batch_id, content_digest IS NULL FROM batches ORDER BY 1")
    assert digests == [("first", True), ("second", False)]
    # A batch without a digest is compared by its figures: the same file is a no-op, another
    # one is refused.
    same = database.aggregate("--input", str(data), "--batch-id", "first")
    assert same.returncode == 0 and "already loaded with the same content" in same.stdout
    refused = database.aggregate("--input", str(other), "--batch-id", "first")
    assert refused.returncode == 6 and "digest not recorded" in refused.stderr
    assert database.user_totals() == {
        u: independent_totals(data).get(u, 0) + independent_totals(other).get(u, 0)
        for u in set(independent_totals(data)) | set(independent_totals(other))
    }
