"""The block fast path (event_pipeline.blocks) accepts exactly what validate_line accepts.

It is the pure-Python scanner's fast path, taken where the C extension is not built.

Each test compares the scanner with an independent line-by-line reference built on
``rules.validate_line``: same line count, same totals, same rejected lines and reasons, on
blocks the fast path takes and on blocks it must hand to the line-by-line path.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from event_pipeline import blocks, scanner
from event_pipeline.generate import main as generate_main
from event_pipeline.rules import MAX_LINE_BYTES, Rejected, example_lines, validate_line


@pytest.fixture(autouse=True)
def pure_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """blocks.py is the scanner's path without the C extension (test_fastscan.py tests the
    extension's): force it, so these tests test it wherever the extension is built."""
    monkeypatch.setattr(scanner, "_fastscan", None)


def event(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "timestamp": "2026-03-01T12:00:00.000Z",
        "userId": "anna.lee1",
        "eventType": "pageView",
        "productId": "AB-12345",
        "sessionDuration": 30,
    }
    return {**base, **changes}


def compact(**changes: object) -> bytes:
    """One line as the generator writes it: no spaces."""
    return json.dumps(event(**changes), separators=(",", ":")).encode()


def reference(data: bytes) -> tuple[int, dict[str, list[int]], dict[int, str]]:
    """(lines, totals, rejected reasons by line number), one line at a time."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    totals: dict[str, list[int]] = {}
    rejected: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_BYTES:
            rejected[number] = "line too long"
            continue
        try:
            user, duration = validate_line(line)
        except Rejected as exc:
            rejected[number] = str(exc)
            continue
        entry = totals.setdefault(user, [0, 0])
        entry[0] += duration
        entry[1] += 1
    return len(lines), totals, rejected


COPY_UNESCAPE = {"t": "\t", "n": "\n", "r": "\r"}


def scanned(tmp_path: Path, data: bytes) -> tuple[int, dict[str, list[int]], dict[int, str]]:
    path = tmp_path / "batch.jsonl"
    path.write_bytes(data)
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    result = scanner.scan_file(str(path), 1, str(spill))
    rejected = {}
    for row in result.rejected_rows():
        number, escaped, _excerpt = row.rstrip("\n").split("\t")
        reason = re.sub(r"\\(.)", lambda m: COPY_UNESCAPE.get(m[1], m[1]), escaped)
        rejected[int(number)] = "line too long" if reason.startswith("line too long") else reason
    return result.lines, result.totals, rejected


def total(body: bytes) -> tuple[int | None, dict[str, list[int]]]:
    totals: dict[str, list[int]] = {}
    return blocks.total_block(body, totals, set(), MAX_LINE_BYTES), totals


def test_generated_events_take_the_fast_path(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert generate_main(["--count", "3000", "--seed", "7", "--output", str(out), "--quiet"]) == 0
    body = out.read_bytes().rstrip(b"\n")
    done, totals = total(body)
    assert done == 3000
    assert (done, totals, {}) == reference(body)


def test_spaced_and_unicode_blocks_are_checked_id_by_id() -> None:
    # json.dumps' default separators put spaces in the line; a non-ASCII id: both are the
    # "checked" kind of block, still decoded in one call.
    lines = [
        json.dumps(event(userId=f"jos\u00e9{i % 3}"), ensure_ascii=False).encode()
        for i in range(50)
    ]
    body = b"\n".join(lines)
    done, totals = total(body)
    assert done == 50
    assert totals == reference(body)[1]


# A good line, then something the fast path must not accept; the block goes line by line.
HANDED_OVER = [
    ("blank userId", compact(userId="   ")),
    ("space-only productId", compact(productId=" ")),
    ("DEL in userId", compact(userId="an\x7fna")),
    ("escaped NUL", compact(userId="an\x00na")),
    ("lowercase z timestamp", compact(timestamp="2026-03-01T12:00:00.000z")),
    ("escaped lowercase z", compact().replace(b'00Z"', b'00\\u007a"')),
    ("bracket in an id", compact(userId="a]b")),
    ("two events on a line", compact() + compact()),
    ("two events, comma", compact() + b"," + compact()),
    ("event split over two lines", compact()[:40] + b"\n" + compact()[40:]),
    ("blank line", b""),
    ("spaces only", b"   "),
    ("array of the event", b"[" + compact() + b"]"),
    ("too long", compact(pad="x" * MAX_LINE_BYTES)),
    ("date-only timestamp (valid)", compact(timestamp="2026-03-01")),
    ("unprintable unicode", compact(userId="a\u2028b")),
]


@pytest.mark.parametrize(("name", "line"), HANDED_OVER, ids=[h[0] for h in HANDED_OVER])
def test_blocks_the_fast_path_must_not_take(tmp_path: Path, name: str, line: bytes) -> None:
    data = compact(userId="bob") + b"\n" + line + b"\n" + compact(userId="eve") + b"\n"
    done, totals = total(data.rstrip(b"\n"))
    if done is not None:  # only a block whose every line is valid may be taken whole
        assert reference(data)[2] == {}, name
        assert totals == reference(data)[1]
    assert scanned(tmp_path, data) == reference(data), name


RULE_EXAMPLES = list(example_lines())


@pytest.mark.parametrize(
    ("name", "line", "reason"), RULE_EXAMPLES, ids=[e[0] for e in RULE_EXAMPLES]
)
def test_rule_examples(tmp_path: Path, name: str, line: bytes, reason: str | None) -> None:
    """Each example of the table of rules (rules.RULES) between two good lines: the block is
    taken whole only when the example is valid, and the scan gives the reference's result."""
    data = compact(userId="bob") + b"\n" + line + b"\n" + compact(userId="eve") + b"\n"
    done, totals = total(data.rstrip(b"\n"))
    want = reference(data)
    assert (want[2] == {}) == (reason is None), name
    if done is not None:
        assert reason is None and totals == want[1], name
    assert scanned(tmp_path, data) == want, name


def test_lines_fit() -> None:
    line = b"x" * 10
    assert blocks.lines_fit(b"\n".join([line] * 5), 10)
    assert not blocks.lines_fit(b"\n".join([line, line + b"y", line]), 10)
    assert not blocks.lines_fit(b"y" * 11, 10)
    assert blocks.lines_fit(b"", 10)


ALPHABET = [*b'{}[]",:\n \\z0aT-.\t\r', 0x7F, 0xC3, 0xA9, 0x00]


def mutate(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        choice = rng.random()
        if choice < 0.4:
            data.insert(at, rng.choice(ALPHABET))
        elif choice < 0.7 and data:
            del data[min(at, len(data) - 1)]
        elif data:
            data[min(at, len(data) - 1)] = rng.choice(ALPHABET)
    return bytes(data)


@pytest.mark.parametrize("seed", range(8))
def test_random_blocks_match_the_line_by_line_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # Small read blocks (about 12 lines each) and one mutated line in about every other
    # block: many blocks decide between the fast path and line by line.
    monkeypatch.setattr(scanner, "BLOCK_BYTES", 1024)
    taken = []

    def counting(*args: object) -> int | None:
        done = blocks.total_block(*args)  # type: ignore[arg-type]
        taken.append(done is not None)
        return done

    monkeypatch.setattr(scanner, "total_block", counting)
    rng = random.Random(seed)
    lines = []
    for i in range(3000):
        line = compact(userId=f"user{i % 17}", sessionDuration=i % 500)
        if rng.random() < 0.04:
            line = mutate(rng, line)
        lines.append(line)
    data = b"\n".join(lines) + b"\n"
    assert scanned(tmp_path, data) == reference(data)
    assert 0.2 < sum(taken) / len(taken) < 0.9, (sum(taken), len(taken))


def test_msgspec_timestamps_are_fromisoformat_timestamps() -> None:
    # BlockEvent parses the timestamp with msgspec: whatever it accepts, the rule of the
    # line-by-line path (datetime.fromisoformat) must accept too, except a lowercase "z",
    # which total_block keeps out of the fast path.
    decode = msgspec.json.Decoder(datetime).decode
    rng = random.Random(1)
    alphabet = "0123456789-:Tt Zz+.,"
    templates = ["2026-05-20T21:32:22.104Z", "2026-05-20 21:32:22+01:00", "1999-12-31T23:59:59"]
    accepted = 0
    for _ in range(20000):
        text = list(rng.choice(templates))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            choice = rng.random()
            if choice < 0.5:
                text[at] = rng.choice(alphabet)
            elif choice < 0.75:
                text.insert(at, rng.choice(alphabet))
            else:
                del text[at]
        value = "".join(text)
        try:
            decode(json.dumps(value).encode())
        except msgspec.ValidationError:
            continue
        accepted += 1
        if value.endswith("z"):
            continue
        datetime.fromisoformat(value)  # raises if msgspec accepted more
    assert accepted > 1000
