"""Every class of bad input: rejected with its line number and a reason, never a crash.

These run the scanner of aggregate-events directly (no database); test_load.py checks that the
same results reach PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from event_pipeline import aggregate
from event_pipeline.model import MAX_LINE_BYTES, Rejected, validate_line

GOOD = {
    "timestamp": "2026-03-01T12:00:00.000Z",
    "userId": "anna.lee1",
    "eventType": "pageView",
    "productId": "AB-12345",
    "sessionDuration": 30,
}


def good(**changes: object) -> bytes:
    event = {**GOOD, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not _DROP}).encode()


_DROP = object()

# (bad line, expected start of the reason)
BAD_LINES: list[tuple[str, bytes, str]] = [
    ("not json", b"this is not json", "invalid JSON"),
    ("truncated json", good()[:-5], "invalid JSON"),
    ("empty line", b"", "empty line"),
    ("blank line", b"   \t ", "empty line"),
    ("json array", b"[1, 2, 3]", "not a JSON object"),
    ("json string", b'"hello"', "not a JSON object"),
    ("json number", b"42", "not a JSON object"),
    ("json null", b"null", "not a JSON object"),
    ("invalid utf-8", good(userId="anna").replace(b"anna", b"an\xffna"), "invalid UTF-8"),
    ("bom mid-file", b"\xef\xbb\xbf" + good(), "byte order mark"),
    ("NaN", good().replace(b"30", b"NaN"), "invalid JSON"),
    ("lone surrogate", good().replace(b"anna.lee1", b"\\ud800x"), "invalid JSON"),
]
for _field in ("timestamp", "userId", "eventType", "productId", "sessionDuration"):
    BAD_LINES.append((f"missing {_field}", good(**{_field: _DROP}), f"missing field: {_field}"))
    BAD_LINES.append((f"null {_field}", good(**{_field: None}), f"null: {_field}"))
BAD_LINES += [
    ("duration is a boolean", good(sessionDuration=True), "wrong type: sessionDuration"),
    ("duration false", good(sessionDuration=False), "wrong type: sessionDuration"),
    ("duration is a string", good(sessionDuration="30"), "wrong type: sessionDuration"),
    ("duration is a float", good(sessionDuration=30.5), "wrong type: sessionDuration"),
    ("duration 30.0", good(sessionDuration=30.0), "wrong type: sessionDuration"),
    ("duration is a list", good(sessionDuration=[30]), "wrong type: sessionDuration"),
    ("negative duration", good(sessionDuration=-1), "out of range: sessionDuration -1 < 0"),
    ("duration above cap", good(sessionDuration=2**31), "out of range: sessionDuration"),
    ("duration = bigint max", good(sessionDuration=2**63 - 1), "out of range"),
    ("duration beyond bigint", good(sessionDuration=2**63), "out of range"),
    ("duration beyond u64", good(sessionDuration=10**30), "out of range"),
    ("duration below bigint", good(sessionDuration=-(2**63) - 1), "out of range"),
    ("duration 1e400", good().replace(b"30", b"1e400"), "invalid JSON"),
    ("userId is a number", good(userId=12), "wrong type: userId must be a string, got integer"),
    ("userId is an object", good(userId={"id": 1}), "wrong type: userId"),
    ("userId is a boolean", good(userId=True), "wrong type: userId"),
    ("empty userId", good(userId=""), "empty: userId"),
    ("blank userId", good(userId="   "), "empty: userId"),
    ("NUL in userId", good(userId="an\x00na"), "unprintable character in userId"),
    ("tab in userId", good(userId="an\tna"), "unprintable character in userId"),
    ("huge userId", good(userId="u" * 300), "too long: userId"),
    ("eventType is a number", good(eventType=3), "wrong type: eventType"),
    ("empty productId", good(productId=""), "empty: productId"),
    ("timestamp is a number", good(timestamp=1700000000), "wrong type: timestamp"),
    ("timestamp words", good(timestamp="yesterday"), "bad timestamp"),
    ("timestamp month 13", good(timestamp="2026-13-01T00:00:00Z"), "bad timestamp"),
    ("timestamp empty", good(timestamp=""), "bad timestamp"),
    ("timestamp day 32", good(timestamp="2026-01-32T00:00:00"), "bad timestamp"),
]

ACCEPTED: list[tuple[str, bytes]] = [
    ("plain", good()),
    ("CRLF ending", good() + b"\r"),
    ("spaces around", b"  " + good() + b"  "),
    ("extra fields", good(ip="10.0.0.1", nested={"a": [1, 2]})),
    ("zero duration", good(sessionDuration=0)),
    ("max duration", good(sessionDuration=2**31 - 1)),
    ("unicode userId", good(userId="jos\u00e9.\u7528\u6237")),
    ("backslash userId", good(userId="dom\\user")),
    ("naive timestamp", good(timestamp="2026-03-01T12:00:00")),
    ("offset timestamp", good(timestamp="2026-03-01T12:00:00+05:30")),
    ("duplicate key, last valid", good()[:-1] + b', "sessionDuration": 7}'),
]


def scan(tmp_path: Path, data: bytes, workers: int = 1) -> aggregate.ScanResult:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(data)
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    return aggregate.scan_file(str(path), workers, str(spill))


def rejected(result: aggregate.ScanResult) -> dict[int, str]:
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
    with pytest.raises(Rejected):  # the model agrees with the scanner's fast path
        validate_line(line)


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


@pytest.mark.parametrize("size", [MAX_LINE_BYTES + 1, 3 * aggregate.BLOCK_BYTES + 17])
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
    result = scan(tmp_path, good() + b"\n" + b"y" * (2 * aggregate.BLOCK_BYTES))
    assert (result.lines, result.valid, result.rejected) == (2, 1, 1)
    assert rejected(result)[2].startswith("line too long")


def test_line_numbers_across_parallel_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force many small ranges so bad lines fall in every scanner process.
    monkeypatch.setattr(aggregate, "MIN_BYTES_PER_WORKER", 1024)
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
    ranges = aggregate.split_ranges(str(path), len(data), 7)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start and data[start - 1 : start] == b"\n"
