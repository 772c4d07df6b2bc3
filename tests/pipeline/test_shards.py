"""Sharded batches against a real PostgreSQL: stage each shard (any order, twice, concurrently,
killed and restaged), commit once; the totals equal an independent computation over all shard
files, a missing shard loads nothing, a different file for a staged shard is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from event_pipeline.db import TEST_PAUSE_ENV

from .conftest import Database, cli, run_cli

SHARDS = 4
BAD = b"{not an event"


def independent(files: list[Path]) -> tuple[dict[str, int], list[int], int]:
    """Per-user totals, batch-wide numbers of the bad lines and the line count of the shard
    files read in shard order, with nothing but the standard library."""
    totals: dict[str, int] = defaultdict(int)
    bad: list[int] = []
    number = 0
    for path in files:
        for line in path.read_bytes().splitlines():
            number += 1
            try:
                event = json.loads(line)
            except ValueError:
                bad.append(number)
                continue
            totals[event["userId"]] += event["sessionDuration"]
    return dict(totals), bad, number


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """4 shards of 48,000 events made by generate-events --shard; shard 2 has 3 bad lines."""
    folder = tmp_path_factory.mktemp("shards")
    files = []
    for i in range(SHARDS):
        path = folder / f"shard-{i}.jsonl"
        proc = run_cli(
            "generate-events",
            *("--count", "48000", "--seed", "77", "--users", "150", "--quiet"),
            *("--shard", f"{i}/{SHARDS}", "--output", str(path)),
        )
        assert proc.returncode == 0, proc.stderr
        files.append(path)
    lines = files[2].read_bytes().splitlines(keepends=True)
    for at in (0, 500, len(lines)):
        lines.insert(at, BAD + b"\n")
    files[2].write_bytes(b"".join(lines))
    return files


def stage(db: Database, files: list[Path], i: int, batch: str = "sharded") -> str:
    proc = db.aggregate("--input", str(files[i]), "--batch-id", batch, "--shard", f"{i}/{SHARDS}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def commit(db: Database, batch: str = "sharded", *extra: str) -> subprocess.CompletedProcess[str]:
    return db.aggregate("--commit", "--batch-id", batch, "--shards", str(SHARDS), *extra)


def loaded(db: Database, batch: str = "sharded") -> tuple[int, int, int]:
    return (
        db.query("SELECT count(*) FROM batches WHERE batch_id = %s", (batch,))[0][0],
        db.query("SELECT count(*) FROM batch_user_totals WHERE batch_id = %s", (batch,))[0][0],
        db.query("SELECT count(*) FROM rejected_lines WHERE batch_id = %s", (batch,))[0][0],
    )


def assert_committed_whole(db: Database, files: list[Path]) -> None:
    totals, bad, lines = independent(files)
    assert db.user_totals() == totals
    rejected = db.query("SELECT line_number FROM rejected_lines ORDER BY line_number")
    assert [n for (n,) in rejected] == bad  # batch-wide line numbers
    row = db.query(
        "SELECT total_lines, valid_events, rejected_count, users, total_session_duration, shards"
        " FROM batches WHERE batch_id = 'sharded'"
    )
    assert row == [(lines, lines - len(bad), len(bad), len(totals), sum(totals.values()), SHARDS)]
    assert db.query("SELECT count(*) FROM staged_user_totals")[0][0] == 0
    assert db.query("SELECT count(*) FROM staged_rejected_lines")[0][0] == 0


def test_shards_in_any_order_twice_then_one_commit(
    database: Database, shard_files: list[Path]
) -> None:
    order = [3, 1, 0, 2]
    for i in order:
        assert "staged" in stage(database, shard_files, i)
        assert loaded(database) == (0, 0, 0)  # nothing visible before the commit
    for i in reversed(order):
        again = stage(database, shard_files, i)
        assert "already staged with the same content; nothing changed" in again
    proc = commit(database)
    assert proc.returncode == 0, proc.stderr
    assert "committed 4 shards: 48,000 events, 150 users, 3 rejected of 48,003 lines" in (
        proc.stdout
    )
    assert_committed_whole(database, shard_files)
    # Exactly once: a second commit and a late re-run of a shard change nothing.
    second = commit(database)
    assert second.returncode == 0 and "already committed from 4 shards" in second.stdout
    late = stage(database, shard_files, 1)
    assert "already committed with the same content" in late
    assert_committed_whole(database, shard_files)


def test_concurrent_stages_with_a_duplicate_then_commit(
    database: Database, shard_files: list[Path]
) -> None:
    order = [*range(SHARDS), 1]
    random.Random(5).shuffle(order)
    procs = [
        subprocess.Popen(
            [
                cli("aggregate-events"),
                "--input",
                str(shard_files[i]),
                "--batch-id",
                "sharded",
                "--shard",
                f"{i}/{SHARDS}",
            ],
            env=database.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in order
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(order), outputs
    assert sum("already staged" in out for out, _ in outputs) == 1
    proc = commit(database)
    assert proc.returncode == 0, proc.stderr
    assert_committed_whole(database, shard_files)


def _kill_in_transaction(database: Database, argv: list[str], tmp_path: Path) -> None:
    env = {**database.env, TEST_PAUSE_ENV: "120", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [cli("aggregate-events"), *argv],
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
        pytest.fail(f"never reached its transaction: {proc.wait()}")
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aggregate-events'"
    )[0][0]:
        assert time.monotonic() < deadline, "the killed session never ended"
        time.sleep(0.1)


def test_a_stage_killed_mid_transaction_leaves_nothing_and_is_restaged(
    database: Database, shard_files: list[Path], tmp_path: Path
) -> None:
    for i in (0, 2, 3):
        stage(database, shard_files, i)
    argv = ["--input", str(shard_files[1]), "--batch-id", "sharded", "--shard", f"1/{SHARDS}"]
    _kill_in_transaction(database, argv, tmp_path)
    assert database.query("SELECT shard FROM batch_shards ORDER BY shard") == [(0,), (2,), (3,)]
    assert database.query("SELECT count(*) FROM staged_user_totals WHERE shard = 1") == [(0,)]
    missing = commit(database)
    assert missing.returncode == 7, missing.stderr
    assert "1 of 4 shards not staged: 1; nothing loaded" in missing.stderr
    assert "staged 12,000 events" in stage(database, shard_files, 1)
    proc = commit(database)
    assert proc.returncode == 0, proc.stderr
    assert_committed_whole(database, shard_files)


def test_a_commit_killed_mid_transaction_leaves_nothing(
    database: Database, shard_files: list[Path], tmp_path: Path
) -> None:
    for i in range(SHARDS):
        stage(database, shard_files, i)
    staged = database.query("SELECT count(*) FROM staged_user_totals")
    argv = ["--commit", "--batch-id", "sharded", "--shards", str(SHARDS)]
    _kill_in_transaction(database, argv, tmp_path)
    assert loaded(database) == (0, 0, 0)
    assert database.user_totals() == {}
    assert database.query("SELECT count(*) FROM staged_user_totals") == staged
    proc = commit(database)
    assert proc.returncode == 0, proc.stderr
    assert_committed_whole(database, shard_files)


def test_a_commit_with_a_missing_shard_loads_nothing(
    database: Database, shard_files: list[Path]
) -> None:
    for i in (3, 0):
        stage(database, shard_files, i)
    proc = commit(database)
    assert proc.returncode == 7, proc.stderr
    assert "commit refused: 2 of 4 shards not staged: 1, 2; nothing loaded" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert loaded(database) == (0, 0, 0)
    assert database.user_totals() == {}
    never = database.aggregate("--commit", "--batch-id", "never-staged", "--shards", "2")
    assert never.returncode == 7 and "2 of 2 shards not staged: 0, 1" in never.stderr


def test_a_different_file_for_a_staged_shard_is_refused(
    database: Database, shard_files: list[Path]
) -> None:
    stage(database, shard_files, 0)
    before = database.query("SELECT sum(total_session_duration) FROM staged_user_totals")
    wrong = database.aggregate(
        "--input", str(shard_files[1]), "--batch-id", "sharded", "--shard", f"0/{SHARDS}"
    )
    assert wrong.returncode == 6, wrong.stderr
    assert "batch sharded shard 0/4: refused: already staged from 12,000 events" in wrong.stderr
    assert f"from {shard_files[0]}" in wrong.stderr and "nothing changed" in wrong.stderr
    assert database.query("SELECT sum(total_session_duration) FROM staged_user_totals") == before
    # Another shard count for the same batch is refused too, staged or committed.
    other_count = database.aggregate(
        "--input", str(shard_files[1]), "--batch-id", "sharded", "--shard", "1/3"
    )
    assert other_count.returncode == 6 and "staged as .../4" in other_count.stderr
    for i in range(1, SHARDS):
        stage(database, shard_files, i)
    assert commit(database).returncode == 0
    three = database.aggregate("--commit", "--batch-id", "sharded", "--shards", "3")
    assert three.returncode == 6 and "already committed from 4 shards" in three.stderr
    assert_committed_whole(database, shard_files)


def test_whole_and_sharded_loads_of_one_id_exclude_each_other(
    database: Database, shard_files: list[Path]
) -> None:
    whole = database.aggregate("--input", str(shard_files[0]), "--batch-id", "w")
    assert whole.returncode == 0, whole.stderr
    staged = database.aggregate(
        "--input", str(shard_files[0]), "--batch-id", "w", "--shard", f"0/{SHARDS}"
    )
    assert staged.returncode == 6 and "loaded whole, not from shards" in staged.stderr
    committed = database.aggregate("--commit", "--batch-id", "w", "--shards", "1")
    assert committed.returncode == 6 and "already loaded whole" in committed.stderr
    stage(database, shard_files, 0, batch="s")
    for i in range(1, SHARDS):
        stage(database, shard_files, i, batch="s")
    assert commit(database, "s").returncode == 0
    again = database.aggregate("--input", str(shard_files[0]), "--batch-id", "s")
    assert again.returncode == 6 and "already committed from 4 shards" in again.stderr


def test_the_rejected_ratio_applies_to_the_whole_batch(
    database: Database, tmp_path: Path, shard_files: list[Path]
) -> None:
    # Shard 0 alone is 50% bad lines, the batch 63 of 36,123: 0.17%, under the default 1%.
    small = tmp_path / "mostly-bad.jsonl"
    small.write_bytes((BAD + b"\n" + shard_files[0].read_bytes().split(b"\n", 1)[0] + b"\n") * 60)
    files = [small, *shard_files[1:]]
    for i in range(SHARDS):
        stage(database, files, i)
    proc = commit(database)
    assert proc.returncode == 0, proc.stderr
    assert loaded(database)[2] == 60 + 3
    # A batch whose shards are each fine but which is above the ratio as a whole loads nothing.
    for i in range(2):
        two = database.aggregate("--input", str(small), "--batch-id", "bad", "--shard", f"{i}/2")
        assert two.returncode == 0, two.stderr
    refused = database.aggregate("--commit", "--batch-id", "bad", "--shards", "2")
    assert refused.returncode == 4, refused.stderr
    assert "120 of 240 lines rejected (50.00% > --max-rejected-ratio 1.00%)" in refused.stderr
    assert loaded(database, "bad") == (0, 0, 0)
    looser = database.aggregate(
        "--commit", "--batch-id", "bad", "--shards", "2", "--max-rejected-ratio", "0.6"
    )
    assert looser.returncode == 0, looser.stderr
    rejected = database.query(
        "SELECT min(line_number), max(line_number) FROM rejected_lines WHERE batch_id = 'bad'"
    )
    assert rejected == [(1, 239)]  # shard 1's lines follow shard 0's 120


def test_empty_shards_and_batches_need_allow_empty(database: Database, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    refused = database.aggregate("--input", str(empty), "--batch-id", "e", "--shard", "0/1")
    assert refused.returncode == 3 and "--allow-empty" in refused.stderr
    args = ["--input", str(empty), "--batch-id", "e", "--shard", "0/1", "--allow-empty"]
    assert database.aggregate(*args).returncode == 0
    nothing = database.aggregate("--commit", "--batch-id", "e", "--shards", "1")
    assert nothing.returncode == 3 and "hold no lines" in nothing.stderr
    assert loaded(database, "e") == (0, 0, 0)
    ok = database.aggregate("--commit", "--batch-id", "e", "--shards", "1", "--allow-empty")
    assert ok.returncode == 0, ok.stderr
    assert loaded(database, "e") == (1, 0, 0)


def test_a_shard_through_stdin(database: Database, shard_files: list[Path]) -> None:
    for i in range(SHARDS):
        with shard_files[i].open("rb") as fh:
            proc = subprocess.run(
                [
                    cli("aggregate-events"),
                    "--input",
                    "-",
                    "--batch-id",
                    "sharded",
                    "--shard",
                    f"{i}/{SHARDS}",
                ],
                stdin=fh,
                env=database.env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr
    # The files of the same shards are the same shards.
    assert "already staged" in stage(database, shard_files, 2)
    assert commit(database).returncode == 0
    assert_committed_whole(database, shard_files)
