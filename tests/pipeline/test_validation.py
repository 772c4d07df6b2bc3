"""Every class of bad input: rejected with its line number and a reason, never a crash.

The cases are the examples of the table of rules (rules.RULES). These run the scanner of
aggregate-events directly (no database); test_load.py checks that the same results reach
PostgreSQL.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from event_pipeline import scanner
from event_pipeline.rules import MAX_LINE_BYTES, Rejected, example, example_lines, validate_line


def good(**changes: object) -> bytes:
    return example(changes)


BAD_LINES = [(name, line, reason) for name, line, reason in example_lines() if reason]
ACCEPTED = [(name, line) for name, line, reason in example_lines() if reason is None]


def scan(tmp_path: Path, data: bytes, workers: int = 1) -> scanner.ScanResult:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(data)
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    return scanner.scan_file(str(path), workers, str(spill))


def rejected(result: scanner.ScanResult) -> dict[int, str]:
    rows = {}
    for row in result.rejected_rows():
        number, reason, _excerpt = row.rstrip("\n").split("\t")
        rows[int(number)] = reason
    return rows


@pytest.mark.parametrize(("name", "line", "reason"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_line_is_rejected_with_reason(
    tmp_path: Path, name: str, line: bytes, reason: str
) -> None:
    # The bad line sits between two good ones: they still count, its number is right.
    result = scan(tmp_path, good() + b"\n" + line + b"\n" + good(userId="bob") + b"\n")
    assert (result.lines, result.valid, result.rejected) == (3, 2, 1), name
    rows = rejected(result)
    assert list(rows) == [2]
    assert rows[2].startswith(reason), rows[2]
    assert result.totals == {"anna.lee1": [30, 1], "bob": [30, 1]}
    with pytest.raises(Rejected) as caught:  # the definition agrees with the scanner
        validate_line(line)
    assert str(caught.value) == rows[2]


@pytest.mark.parametrize(("name", "line"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_valid_variants_are_accepted(tmp_path: Path, name: str, line: bytes) -> None:
    result = scan(tmp_path, line + b"\n")
    assert (result.lines, result.valid, result.rejected) == (1, 1, 0), rejected(result)
    user, duration = validate_line(line)
    assert result.totals == {user: [duration, 1]}


def test_bom_at_file_start_and_crlf_file(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + b"\r\n".join([good(), good(sessionDuration=5)]) + b"\r\n"
    result = scan(tmp_path, data)
    assert (result.lines, result.valid, result.rejected) == (2, 2, 0)
    assert result.totals == {"anna.lee1": [35, 2]}


def test_last_line_without_newline(tmp_path: Path) -> None:
    result = scan(tmp_path, good() + b"\n" + good(sessionDuration=12))
    assert (result.lines, result.valid) == (2, 2)
    assert result.totals["anna.lee1"] == [42, 2]


def test_empty_file(tmp_path: Path) -> None:
    result = scan(tmp_path, b"")
    assert (result.lines, result.valid, result.rejected, result.totals) == (0, 0, 0, {})


@pytest.mark.parametrize("size", [MAX_LINE_BYTES + 1, 3 * scanner.BLOCK_BYTES + 17])
def test_very_long_line_is_rejected_without_loading_it(tmp_path: Path, size: int) -> None:
    # A valid JSON object padded to `size` bytes: length alone makes it a bad line, also when
    # it spans several read blocks.
    padded = good(padding="x" * size)
    data = good() + b"\n" + padded + b"\n" + good(userId="bob") + b"\n"
    result = scan(tmp_path, data)
    assert (result.lines, result.valid, result.rejected) == (3, 2, 1)
    reason = rejected(result)[2]
    assert reason.startswith(f"line too long: {len(padded)} bytes"), reason


def test_very_long_last_line_without_newline(tmp_path: Path) -> None:
    result = scan(tmp_path, good() + b"\n" + b"y" * (2 * scanner.BLOCK_BYTES))
    assert (result.lines, result.valid, result.rejected) == (2, 1, 1)
    assert rejected(result)[2].startswith("line too long")


def test_line_numbers_across_parallel_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force many small ranges so bad lines fall in every scanner process.
    monkeypatch.setattr(scanner, "MIN_BYTES_PER_WORKER", 1024)
    lines = []
    expected_bad = {}
    for n in range(1, 3001):
        if n % 97 == 0:
            lines.append(b"{broken")
            expected_bad[n] = "invalid JSON"
        elif n % 251 == 0:
            lines.append(good(sessionDuration=-n))
            expected_bad[n] = "out of range"
        else:
            lines.append(good(userId=f"user{n % 13}", sessionDuration=n))
    result = scan(tmp_path, b"\n".join(lines) + b"\n", workers=4)
    assert result.workers == 4
    rows = rejected(result)
    assert sorted(rows) == sorted(expected_bad)
    for number, reason in rows.items():
        assert reason.startswith(expected_bad[number])
    assert result.lines == 3000
    assert result.valid == 3000 - len(expected_bad)
    expected: dict[str, list[int]] = {}
    for n in range(1, 3001):
        if n not in expected_bad:
            entry = expected.setdefault(f"user{n % 13}", [0, 0])
            entry[0] += n
            entry[1] += 1
    assert result.totals == expected


def test_split_ranges_start_at_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    data = b"".join(good(userId=f"u{i}") + b"\n" for i in range(500))
    path.write_bytes(data)
    ranges = scanner.split_ranges(str(path), len(data), 7)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start and data[start - 1 : start] == b"\n"
