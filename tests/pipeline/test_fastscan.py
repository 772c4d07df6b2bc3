"""The C fast path (event_pipeline._fastscan) against rules.validate_line, the definition.

The fast path may only ever accept a line that validate_line accepts, with the same
(userId, sessionDuration); every other line goes to validate_line itself. These tests hold it
to a stronger rule: it accepts a line exactly when the line has the canonical shape (the
regular expression below, an independent statement of it) and validate_line accepts it. The
lines are the examples of the table of rules (rules.RULES, where the C restates its limits),
canonical events mutated at random (fixed seed) and the edge cases by name.
(Python also takes offset minutes of 60 and more, +00:60 being +01:00; the canonical shape
leaves those to validate_line.)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from event_pipeline import rules, scanner
from event_pipeline.rules import Rejected, example_lines, validate_line
from needs import unavailable

SEED = 20261201
CASES = 40_000

ID = r"[ !#-\[\]-~]{1,256}"  # printable ASCII without '"' and '\'
CANONICAL = re.compile(
    rb'\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?(Z|[+-]\d\d:[0-5]\d)?",'
    + f'"userId":"{ID}","eventType":"{ID}","productId":"{ID}",'.encode()
    + rb'"sessionDuration":(0|[1-9]\d{0,9})\}'
)


def load_fastscan() -> ModuleType:
    try:
        from event_pipeline import _fastscan
    except ImportError as exc:
        unavailable(f"the C extension event_pipeline._fastscan is not built: {exc}")
    return _fastscan


@pytest.fixture(scope="module")
def fastscan() -> ModuleType:
    return load_fastscan()


def test_extension_is_built() -> None:
    """In CI the aggregator must not silently fall back to its pure-Python path."""
    assert scanner._fastscan is load_fastscan()


def test_limits_are_the_models(fastscan: ModuleType) -> None:
    assert fastscan.MAX_ID_CHARS == rules.MAX_ID_CHARS
    assert fastscan.MAX_SESSION_DURATION == rules.MAX_SESSION_DURATION
    # Scanners hand over-long lines to the Python path, which rejects them by length first;
    # a canonical line can never be that long.
    longest = len(canonical("2026-01-01T00:00:00.000000+00:00", "u" * 256, "e" * 256, "p" * 256))
    assert longest + len(str(rules.MAX_SESSION_DURATION)) < rules.MAX_LINE_BYTES


def canonical(ts: str, user: str, etype: str, product: str, duration: str = "1") -> bytes:
    return (
        f'{{"timestamp":"{ts}","userId":"{user}","eventType":"{etype}",'
        f'"productId":"{product}","sessionDuration":{duration}}}'
    ).encode()


def reference(line: bytes) -> tuple[str, int] | None:
    try:
        return validate_line(line)
    except Rejected:
        return None


def expected(line: bytes) -> tuple[str, int] | None:
    """What the fast path must answer: the event iff canonical and valid."""
    return reference(line) if CANONICAL.fullmatch(line) else None


def check(fastscan: ModuleType, line: bytes) -> None:
    got = fastscan.check_line(line)
    want = expected(line)
    assert got == want, f"{line!r}: fast path {got!r}, expected {want!r}"
    if got is not None:
        assert type(got[0]) is str and type(got[1]) is int


TIMESTAMPS = [
    "2026-11-20T23:59:02.104Z",
    "2024-02-29T00:00:00.000Z",
    "2025-02-29T00:00:00.000Z",
    "2000-02-29T12:00:00Z",
    "1900-02-29T12:00:00Z",
    "2100-02-29T12:00:00Z",
    "2400-02-29T12:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-04-30T00:00:00Z",
    "2026-12-31T23:59:59.999999Z",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "2026-01-32T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T23:60:00Z",
    "2026-11-20T23:59:60Z",
    "2026-11-20T23:59:02.104z",
    "2026-11-20t23:59:02.104Z",
    "2026-11-20 23:59:02.104Z",
    "2026-11-20T23:59:02",
    "2026-11-20T23:59:02.104",
    "2026-11-20T23:59:02.1Z",
    "2026-11-20T23:59:02.12Z",
    "2026-11-20T23:59:02.1234Z",
    "2026-11-20T23:59:02.12345Z",
    "2026-11-20T23:59:02.1234567Z",
    "2026-11-20T23:59:02.Z",
    "2026-11-20T23:59:02,104Z",
    "2026-11-20T23:59:02.104+00:00",
    "2026-11-20T23:59:02.104-00:00",
    "2026-11-20T23:59:02+23:59",
    "2026-11-20T23:59:02-23:59",
    "2026-11-20T23:59:02+24:00",
    "2026-11-20T23:59:02+00:60",
    "2026-11-20T23:59:02+05:30",
    "2026-11-20T23:59:02+0530",
    "2026-11-20T23:59:02+05",
    "2026-11-20T23:59:02+05:30:00",
    "2026-11-20T23:59:02ZZ",
    "2026-11-20T23:59:02.104Z ",
    " 2026-11-20T23:59:02.104Z",
    "2026-11-20",
    "20261120T235902Z",
    "2026-W47-5T23:59:02Z",
    "\uff12\uff10\uff12\uff16-11-20T23:59:02Z"  # fullwidth digits,
    "2026-11-20T23:59:02.104\\u005a",
    "",
]
DURATIONS = [
    "0", "1", "357", "2147483647", "2147483648", "9999999999", "99999999999",
    "18446744073709551616", "-0", "-1", "00", "01", "007", "1e3", "1E3", "1.0", "1.5", "0.0",
    "true", "false", "null", '"5"', "[]", "{}", "+1", " 1", "1 ", "0x10", "٣",
]  # fmt: skip
IDS = [
    "a", "anna.lee1", " ", "   ", " a", "a ", "", "\\u0041", "\\\"", "é", "\\t", "\t", "\x7f",
    "\x00", "~", "a" * 256, "a" * 257, " " * 256, "ü" * 10, "\U0001f600", "\\ud800", "null",
]  # fmt: skip
EXTRA_BYTES = [b" ", b"\\", b'"', b"z", b"\x00", b"\x7f", b"\xc3\xa9", b"\xff", b"\r", b"\t", b"}",
               b",", b":", b"{", b"0", b"9", b"\n", b"\xef\xbb\xbf", b"[", b"]"]  # fmt: skip


def random_timestamp(rng: random.Random) -> str:
    year = rng.choice([rng.randint(1, 9999), rng.randint(1999, 2031), 2024, 2000, 1900])
    month = rng.randint(1, 12)
    day = rng.randint(1, 31)  # invalid days too
    frac = rng.choice(["", f".{rng.randrange(1000):03d}", f".{rng.randrange(10**6):06d}"])
    offset = f"{rng.choice('+-')}{rng.randrange(25):02d}:{rng.randrange(61):02d}"
    tz = rng.choice(["Z", "Z", "", offset])
    hour = rng.choice([rng.randrange(24), rng.randrange(26)])
    clock = f"{hour:02d}:{rng.randrange(61):02d}:{rng.randrange(61):02d}"
    return f"{year:04d}-{month:02d}-{day:02d}T{clock}{frac}{tz}"


def random_id(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(IDS)
    size = rng.choice([1, 2, 8, 15, rng.randint(1, 256)])
    return "".join(rng.choice("abcxyz.-_09 ~!#[]") for _ in range(size))


def random_line(rng: random.Random) -> bytes:
    return canonical(
        random_timestamp(rng) if rng.random() < 0.9 else rng.choice(TIMESTAMPS),
        random_id(rng),
        random_id(rng),
        random_id(rng),
        str(rng.randrange(100_000)) if rng.random() < 0.8 else rng.choice(DURATIONS),
    )


def _flip(rng: random.Random, line: bytes) -> bytes:
    at = rng.randrange(len(line))
    return line[:at] + bytes([rng.randrange(256)]) + line[at + 1 :]


def _digit(rng: random.Random, line: bytes) -> bytes:
    spots = [i for i, c in enumerate(line) if 0x30 <= c <= 0x39]
    if not spots:
        return line
    at = rng.choice(spots)
    return line[:at] + str(rng.randrange(10)).encode() + line[at + 1 :]


def _delete(rng: random.Random, line: bytes) -> bytes:
    at = rng.randrange(len(line))
    return line[:at] + line[at + 1 :]


def _insert(rng: random.Random, line: bytes) -> bytes:
    at = rng.randrange(len(line) + 1)
    return line[:at] + rng.choice(EXTRA_BYTES) + line[at:]


def _reorder(rng: random.Random, line: bytes) -> bytes:
    body = line[1:-1].split(b',"')
    rng.shuffle(body)
    return b"{" + b',"'.join(body).replace(b'{"', b"{") + b"}"


def _duplicate(rng: random.Random, line: bytes) -> bytes:
    key = rng.choice([b'"userId":"dup"', b'"sessionDuration":5', b'"timestamp":"x"', b'"k":1'])
    return line[:-1] + b"," + key + b"}" if rng.random() < 0.5 else b"{" + key + b"," + line[1:]


def _drop_field(rng: random.Random, line: bytes) -> bytes:
    parts = line[1:-1].split(b',"')
    del parts[rng.randrange(len(parts))]
    joined = b',"'.join(parts)
    return b"{" + (joined if joined.startswith(b'"') else b'"' + joined) + b"}"


def _space(rng: random.Random, line: bytes) -> bytes:
    spots = [i + 1 for i, c in enumerate(line) if c in b":,{"]
    at = rng.choice(spots)
    return line[:at] + rng.choice([b" ", b"\t", b"\r", b"  "]) + line[at:]


def _escape(rng: random.Random, line: bytes) -> bytes:
    spots = [i for i, c in enumerate(line) if 0x61 <= c <= 0x7A]
    if not spots:
        return line
    at = rng.choice(spots)
    return line[:at] + b"\\u%04x" % line[at] + line[at + 1 :]


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip, _digit, _delete, _insert, _reorder, _duplicate, _drop_field, _space, _escape,
]  # fmt: skip


def test_rule_examples(fastscan: ModuleType) -> None:
    """The table's examples, each spaced and in the canonical compact shape: a valid canonical
    one is taken with validate_line's values, every other one handed back."""
    taken = 0
    for _name, line, reason in example_lines():
        check(fastscan, line)
        assert (reference(line) is None) == (reason is not None), line
        taken += fastscan.check_line(line) is not None
    assert taken >= 5  # the compact valid examples at the limits (ids, durations, timestamps)


def test_named_edge_cases(fastscan: ModuleType) -> None:
    accepted = 0
    for ts in TIMESTAMPS:
        for duration in DURATIONS:
            check(fastscan, canonical(ts, "anna.lee1", "pageView", "AB-12345", duration))
    for ident in IDS:
        for where in range(3):
            ids = ["anna.lee1", "pageView", "AB-12345"]
            ids[where] = ident
            line = canonical("2026-11-20T23:59:02.104Z", *ids)
            check(fastscan, line)
            accepted += fastscan.check_line(line) is not None
    assert accepted > 10  # the valid ones among them were taken by the fast path


def test_mutated_lines_agree_with_validate_line(fastscan: ModuleType) -> None:
    rng = random.Random(SEED)
    taken = valid = 0
    for _ in range(CASES):
        line = random_line(rng)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            line = rng.choice(MUTATIONS)(rng, line)
        check(fastscan, line)
        taken += fastscan.check_line(line) is not None
        valid += reference(line) is not None
    # Both sides are exercised: many lines taken by the fast path, many handed back.
    assert CASES * 0.1 < taken < CASES * 0.8, taken
    assert valid > taken


def test_generated_lines_are_all_taken(fastscan: ModuleType, tmp_path: Path) -> None:
    from event_pipeline.generate import main as generate_main

    out = tmp_path / "events.jsonl"
    assert generate_main(["--count", "20000", "--seed", "5", "--output", str(out), "--quiet"]) == 0
    for line in out.read_bytes().splitlines():
        assert fastscan.check_line(line) == validate_line(line)


def test_totals_feed(fastscan: ModuleType) -> None:
    good = canonical("2026-11-20T23:59:02.104Z", "anna", "pageView", "AB-1", "30")
    other = canonical("2026-11-20T23:59:02.104Z", "bob", "pageView", "AB-1", "5")
    bad = canonical("2025-02-29T23:59:02.104Z", "anna", "pageView", "AB-1", "30")
    spaced = b'{"timestamp": "2026-11-20T23:59:02Z"}'
    totals = fastscan.Totals()
    data = b"\n".join([good, bad, other, b"", spaced, good]) + b"\ntail-not-fed"
    lines, others = totals.feed(data, data.rindex(b"\n"))
    assert lines == 6
    assert others == [(1, bad), (3, b""), (4, spaced)]
    assert totals.to_dict() == {"anna": [60, 2], "bob": [5, 1]}
    assert len(totals) == 2
    assert totals.feed(b"") == (1, [(0, b"")])  # as b"".split(b"\n"): one empty line
    assert totals.feed(bytearray(other)) == (1, [])  # any buffer
    assert totals.feed(memoryview(good + b"\n")) == (2, [(1, b"")])
    assert totals.to_dict() == {"anna": [90, 3], "bob": [10, 2]}
    with pytest.raises(TypeError):
        totals.feed("text")


def test_totals_many_users(fastscan: ModuleType) -> None:
    """The table grows past its first size and keeps every user apart."""
    totals = fastscan.Totals()
    rows = [canonical("2026-01-01T00:00:00Z", f"u{i}", "e", "p", str(i)) for i in range(50_000)]
    assert totals.feed(b"\n".join(rows + rows)) == (100_000, [])
    assert totals.to_dict() == {f"u{i}": [2 * i, 2] for i in range(50_000)}


def scan(path: Path, tmp_path: Path) -> tuple[scanner.RangeResult, list[str]]:
    size = path.stat().st_size
    spill = tmp_path / f"spill-{scanner._fastscan is None}"
    spill.mkdir()
    result = scanner.scan_range(str(path), 0, size, 0, str(spill))
    rows = Path(result.spill).read_text().splitlines() if result.spill else []
    return result, rows


def test_scan_with_and_without_the_extension(
    fastscan: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner gives the same lines, totals and rejected rows on either path."""
    rng = random.Random(SEED + 1)
    lines = []
    for _ in range(20_000):
        line = random_line(rng)
        if rng.random() < 0.3:
            line = rng.choice(MUTATIONS)(rng, line)
        lines.append(line.replace(b"\n", b" "))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    fast_result, fast_rows = scan(path, tmp_path)
    monkeypatch.setattr(scanner, "_fastscan", None)
    pure_result, pure_rows = scan(path, tmp_path)
    assert fast_rows == pure_rows and len(pure_rows) > 1000
    assert fast_result.totals == pure_result.totals
    for field in ("lines", "valid", "rejected", "duration_sum", "samples"):
        assert getattr(fast_result, field) == getattr(pure_result, field), field
