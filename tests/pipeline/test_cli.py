"""aggregate-events usage: errors say what is expected, --help lists the exit codes, wording;
`make local` takes COUNT, USERS and SEED."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from event_pipeline.pgserver import LocalPostgres, PostgresNotFound, free_port
from needs import unavailable

from .conftest import run_cli
from .test_validation import good

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--input", "x", "--batch-id", "b", "--max-rejected-ratio", "abc"],
            "argument --max-rejected-ratio: expected a number from 0 to 1, got 'abc'",
        ),
        (
            ["--input", "x", "--batch-id", "b", "--max-rejected-ratio", "1.5"],
            "argument --max-rejected-ratio: expected a number from 0 to 1, got '1.5'",
        ),
        (
            ["--input", "x", "--batch-id", "b", "--connect-timeout=-3"],
            "argument --connect-timeout: expected a number >= 0, got '-3'",
        ),
        (
            ["--input", "x", "--batch-id", "b", "--workers", "0"],
            "argument --workers: expected an integer from 1 to 1,024, got '0'",
        ),
        (
            ["--input", "x", "--batch-id", "b", "--shard", "2/2"],
            "argument --shard: expected I/N with 0 <= I < N <= 10000 (e.g. 0/4), got '2/2'",
        ),
        (
            ["--commit", "--batch-id", "b", "--shards", "0"],
            "argument --shards: expected an integer from 1 to 10,000, got '0'",
        ),
        (["--commit", "--batch-id", "b"], "--commit needs --shards N"),
        (["--commit", "--batch-id", "b", "--shards", "2", "--input", "x"], "--commit takes no"),
        (["--batch-id", "b"], "--input FILE (or - for standard input) is required"),
        (["--input", "x", "--batch-id", "b", "--shards", "2"], "--shards goes with --commit"),
        (
            ["--input", "x", "--batch-id", "b", "--shard", "0/2", "--max-rejected-ratio", "0.1"],
            "--max-rejected-ratio applies to the whole batch: give it to --commit",
        ),
        (["--input", "x", "--batch-id", " "], "--batch-id must be non-empty and printable"),
    ],
)
def test_usage_errors_say_what_is_expected(args: list[str], message: str) -> None:
    proc = run_cli("aggregate-events", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    for internal in ("_ratio", "_seconds", "_positive", "_non_negative", "Traceback"):
        assert internal not in proc.stderr


def test_help_lists_every_exit_code() -> None:
    proc = run_cli("aggregate-events", "--help")
    assert proc.returncode == 0
    codes = proc.stdout.split("exit codes:", 1)[1]
    listed = [line.split()[0] for line in codes.splitlines() if line[:3].strip().isdigit()]
    assert listed == ["0", "1", "2", "3", "4", "5", "6", "7"], codes
    assert "--shard I/N" in proc.stdout and "--commit --batch-id ID --shards N" in proc.stdout


def test_one_process_is_singular(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_bytes(good() + b"\n")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(free_port())}
    proc = run_cli(
        "aggregate-events", "--input", str(data), "--batch-id", "d", "--dry-run", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "dry run: 1 event, 1 user, 0 rejected of 1 line;" in proc.stdout
    assert "(1 process)" in proc.stdout or "lines/s, 1 process)" in proc.stdout


def test_make_local_takes_count_users_and_seed() -> None:
    try:
        LocalPostgres()  # finds the binaries, starts nothing
    except PostgresNotFound as exc:
        unavailable(str(exc))
    # -o: never rebuild the venv from here; the target's own command is what is tested.
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.done",
            "local",
            "COUNT=700",
            "USERS=7",
            "SEED=3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "==> generate-events --count 700 --users 7 --seed 3" in proc.stdout
    assert "wrote 700 events (7 users, seed 3)" in proc.stderr
    assert "loaded 700 events, 7 users, 0 rejected of 700 lines" in proc.stdout
