"""The scanner processes of scanner.Scan: one forked process per range, and what the parent
makes of a scanner that fails, hits an input error or dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from event_pipeline import scanner

LINE = (
    b'{"timestamp":"2026-11-20T23:59:02.104Z","userId":"u%d","eventType":"pageView",'
    b'"productId":"MH-01495","sessionDuration":%d}'
)


@pytest.fixture
def batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(scanner, "MIN_BYTES_PER_WORKER", 1024)  # several ranges
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\n".join(LINE % (n % 7, n) for n in range(2000)) + b"\nnot json\n")
    return path


def scan(path: Path, workers: int) -> scanner.ScanResult:
    spill = path.parent / f"spill-{workers}"
    spill.mkdir()
    return scanner.scan_file(str(path), workers, str(spill))


def test_ranges_in_processes_equal_one_range(batch: Path) -> None:
    one, three = scan(batch, 1), scan(batch, 3)
    assert (one.workers, three.workers) == (1, 3)
    assert (
        three.totals
        == one.totals
        == {f"u{k}": [sum(range(k, 2000, 7)), len(range(k, 2000, 7))] for k in range(7)}
    )
    assert (three.lines, three.valid, three.rejected) == (one.lines, one.valid, one.rejected)
    assert (three.lines, three.rejected) == (2001, 1)
    assert list(three.rejected_rows()) == list(one.rejected_rows())
    assert (
        three.samples()
        == one.samples()
        == [(2001, "invalid JSON: JSON is malformed: invalid character (byte 4)")]
    )


def _fail(*args: object, **kwargs: object) -> scanner.RangeResult:
    raise ValueError("boom")


def _input_error(*args: object, **kwargs: object) -> scanner.RangeResult:
    raise scanner.InputError("batch.jsonl shrank while being read")


def _die(*args: object, **kwargs: object) -> scanner.RangeResult:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("not reached")


@pytest.mark.parametrize(
    ("failing", "error", "message"),
    [
        (_fail, RuntimeError, "scanner process 0 failed: ValueError: boom"),
        (_input_error, scanner.InputError, "batch.jsonl shrank while being read"),
        (_die, RuntimeError, "scanner process 0 died (killed by signal 9)"),
    ],
)
def test_a_failing_scanner_fails_the_scan(
    batch: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: object,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.setattr(scanner, "scan_range", failing)  # in the forked processes too
    with pytest.raises(error) as caught:
        scan(batch, 2)
    assert str(caught.value).startswith(message)


def test_abort_kills_and_reaps_the_scanners(batch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: object, **kwargs: object) -> scanner.RangeResult:
        signal.pause()
        raise AssertionError("not reached")

    monkeypatch.setattr(scanner, "scan_range", hang)
    spill = batch.parent / "spill"
    spill.mkdir()
    scan = scanner.Scan(str(batch), 2, str(spill)).start()
    pids = [child.pid for child in scan.children]
    assert len(pids) == 2
    scan.abort()
    for pid in pids:
        with pytest.raises(ChildProcessError):  # gone and reaped
            os.waitpid(pid, os.WNOHANG)
