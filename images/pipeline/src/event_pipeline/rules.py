"""The one home of the event's validation rules: the limits, the reference validator and the
table of rules with their example lines.

An event is one JSON object per line (JSON Lines) with the fields of ``SCHEMA``:
``{"timestamp": ISO-8601, "userId": str, "eventType": str, "productId": str,
"sessionDuration": int seconds >= 0}``. Extra fields are allowed and ignored.

``validate_line`` is the definition of a valid line: the generator's output must pass it and
the aggregator rejects whatever fails it, with a reason. It decodes with msgspec into
``decoding.Event`` (types and ranges checked in C) and applies the few checks msgspec cannot
express (``fast_checks``); failing that, it checks the untyped decoding field by field
(``validate_event``, over ``SCHEMA``), which names the reason. msgspec is imported on the first
call (decoding.py): a run whose lines all take the aggregator's C fast path never pays for it.

``RULES`` is the table of rules as people read it (docs/pipeline.md "Bad input" is rendered
from it by ``markdown_table``; a test compares them), each row with example lines and the
start of the reason each gets. The tests of every fast path (the msgspec types, blocks.py,
_fastscan.c, which restates the limits in C) run these examples and lines generated from the
limits below, so a rule changed here is checked everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from event_pipeline.decoding import Event

# A duration above 2**31-1 s (68 years) is not a session; the cap also keeps any per-user sum
# of one batch far below the bigint limit (it would need more than 4e9 events to overflow).
MAX_SESSION_DURATION: Final = 2**31 - 1
# Lines longer than this are rejected without being held in memory; real events are ~170 bytes.
MAX_LINE_BYTES: Final = 64 * 1024
MAX_ID_CHARS: Final = 256
UTF8_BOM: Final = b"\xef\xbb\xbf"


class Rejected(Exception):
    """A line that is not a valid event; ``str(exc)`` is the reason stored in the database."""


# The JSON names of what msgspec decodes to.
_JSON_TYPES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _timestamp(field: str, value: str) -> None:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(f"bad timestamp: {value[:40]!r} is not ISO-8601") from None


def _id(field: str, value: str) -> None:
    if not value or value.isspace():
        raise Rejected(f"empty: {field}")
    if len(value) > MAX_ID_CHARS:
        raise Rejected(f"too long: {field} has {len(value)} characters (max {MAX_ID_CHARS})")
    if not value.isprintable():
        # Excludes NUL (PostgreSQL text cannot hold it), control characters and lone
        # surrogates (not encodable as UTF-8).
        raise Rejected(f"unprintable character in {field}")


def _duration(field: str, value: int) -> None:
    if value < 0:
        raise Rejected(f"out of range: {field} {value} < 0")
    if value > MAX_SESSION_DURATION:
        raise Rejected(f"out of range: {field} {value} > {MAX_SESSION_DURATION}")


class Field(NamedTuple):
    name: str
    type: type  # exactly this type: a bool is not an int
    type_name: str
    check: Callable[[str, Any], None]  # raises Rejected


# The fields in the order they are checked (the first failing one names the reason).
SCHEMA: Final = (
    Field("timestamp", str, "a string", _timestamp),
    Field("userId", str, "a string", _id),
    Field("eventType", str, "a string", _id),
    Field("productId", str, "a string", _id),
    Field("sessionDuration", int, "an integer", _duration),
)
FIELDS: Final = tuple(field.name for field in SCHEMA)


def validate_event(event: Any) -> tuple[str, int]:
    """Return ``(userId, sessionDuration)`` of a parsed event or raise ``Rejected``."""
    if type(event) is not dict:
        raise Rejected(f"not a JSON object: got {_type_name(event)}")
    for name, kind, kind_name, check in SCHEMA:
        value = event.get(name)
        if type(value) is not kind:  # `type() is`: bool, a subclass of int, is not an int
            if value is None:
                raise Rejected(f"missing field: {name}" if name not in event else f"null: {name}")
            raise Rejected(f"wrong type: {name} must be {kind_name}, got {_type_name(value)}")
        check(name, value)
    return event["userId"], event["sessionDuration"]


def too_long(size: int) -> str:
    return f"line too long: {size} bytes (max {MAX_LINE_BYTES})"


def reject_reason_for_unparsable(line: bytes, error: BaseException) -> str:
    """Reason for a line that does not decode at all (the slow path, bad lines only)."""
    if not line.strip():
        return "empty line"
    if line.startswith(UTF8_BOM):
        return "byte order mark inside the file (only allowed at its start)"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid UTF-8"
    if isinstance(error, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {str(error)[:160]}"


def good_id(value: object) -> bool:
    """The rules for ids msgspec cannot express: printable and not blank."""
    return type(value) is str and value.isprintable() and not value.isspace()


def fast_checks(event: Event) -> bool:
    """The rules ``decoding.Event`` does not check (its types carry the others)."""
    try:
        datetime.fromisoformat(event.timestamp)
    except ValueError:
        return False
    return good_id(event.userId) and good_id(event.eventType) and good_id(event.productId)


def validate_line(line: bytes) -> tuple[str, int]:
    """Parse and validate one line (without its newline); raise ``Rejected`` with a reason."""
    from event_pipeline.decoding import DECODE_ERRORS, decode_any, decode_event

    if len(line) > MAX_LINE_BYTES:
        raise Rejected(too_long(len(line)))
    try:
        event = decode_event(line)
    except DECODE_ERRORS:
        pass
    else:
        if fast_checks(event):
            return event.userId, event.sessionDuration
    try:
        parsed = decode_any(line)
    except DECODE_ERRORS as exc:
        raise Rejected(reject_reason_for_unparsable(line, exc)) from None
    return validate_event(parsed)


# The table of rules. An example is a whole line (bytes) or changes to EXAMPLE (a dict; DROP
# removes the field), which the tests render both spaced and in the generator's compact shape
# (the one the C fast path takes). Each comes with the start of its reason, or None: accepted.
EXAMPLE: Final = {
    "timestamp": "2026-03-01T12:00:00.000Z",
    "userId": "anna.lee1",
    "eventType": "pageView",
    "productId": "AB-12345",
    "sessionDuration": 30,
}
DROP: Final = object()
Example = tuple[bytes | dict[str, object], str | None]


def example(changes: dict[str, object] | None = None, compact: bool = False) -> bytes:
    """EXAMPLE with ``changes`` as one JSON line: spaced, or compact as the generator writes."""
    event = {k: v for k, v in {**EXAMPLE, **(changes or {})}.items() if v is not DROP}
    return json.dumps(event, separators=(",", ":") if compact else None).encode()


class Rule(NamedTuple):
    input: str  # markdown, the table's first column
    result: str  # markdown, the second: the reason's start, or "accepted"
    examples: tuple[Example, ...]


def _absent_or_null() -> tuple[Example, ...]:
    cases: list[Example] = []
    for name in FIELDS:
        cases += [({name: DROP}, f"missing field: {name}"), ({name: None}, f"null: {name}")]
    return tuple(cases)


_LINE = example()
_MAX_ID = "u" * MAX_ID_CHARS

RULES: Final = (
    Rule(
        "not JSON, truncated JSON, `NaN`, `1e400`",
        "`invalid JSON: <parser message>`",
        (
            (b"this is not json", "invalid JSON"),
            (_LINE[:-5], "invalid JSON"),
            (_LINE.replace(b"30", b"NaN"), "invalid JSON"),
            (_LINE.replace(b"30", b"1e400"), "invalid JSON"),
        ),
    ),
    Rule("empty or blank line", "`empty line`", ((b"", "empty line"), (b"   \t ", "empty line"))),
    Rule(
        "array, string, number, `null` at top level",
        "`not a JSON object: got array` ...",
        (
            (b"[1, 2, 3]", "not a JSON object: got array"),
            (b'"hello"', "not a JSON object: got string"),
            (b"42", "not a JSON object: got integer"),
            (b"null", "not a JSON object: got null"),
        ),
    ),
    Rule(
        "invalid UTF-8",
        "`invalid UTF-8`",
        ((_LINE.replace(b"anna", b"an\xffna"), "invalid UTF-8"),),
    ),
    Rule(
        'escaped lone surrogate (`"\\ud800"`)',
        "`invalid JSON: ...`",
        ((_LINE.replace(b"anna.lee1", b"\\ud800x"), "invalid JSON"),),
    ),
    Rule(
        "a field absent / `null`",
        "`missing field: userId` / `null: userId`",
        _absent_or_null(),
    ),
    Rule(
        'wrong type (`true` or `"30"` or `30.5` or `30.0` as duration; number as userId)',
        "`wrong type: sessionDuration must be an integer, got boolean` ... (a boolean is not an "
        "integer)",
        (
            ({"sessionDuration": True}, "wrong type: sessionDuration must be an integer, got bool"),
            ({"sessionDuration": False}, "wrong type: sessionDuration"),
            ({"sessionDuration": "30"}, "wrong type: sessionDuration"),
            ({"sessionDuration": 30.5}, "wrong type: sessionDuration"),
            ({"sessionDuration": 30.0}, "wrong type: sessionDuration"),
            ({"sessionDuration": [30]}, "wrong type: sessionDuration"),
            ({"userId": 12}, "wrong type: userId must be a string, got integer"),
            ({"userId": {"id": 1}}, "wrong type: userId"),
            ({"userId": True}, "wrong type: userId"),
            ({"eventType": 3}, "wrong type: eventType"),
        ),
    ),
    Rule(
        "negative duration",
        "`out of range: sessionDuration -1 < 0`",
        (({"sessionDuration": -1}, "out of range: sessionDuration -1 < 0"),),
    ),
    Rule(
        "duration above 2^31-1 s (68 years), beyond bigint, beyond 64 bits",
        "`out of range: ...` (never a database overflow)",
        (
            ({"sessionDuration": MAX_SESSION_DURATION + 1}, "out of range: sessionDuration"),
            ({"sessionDuration": 2**63 - 1}, "out of range"),
            ({"sessionDuration": 2**63}, "out of range"),
            ({"sessionDuration": 10**30}, "out of range"),
            ({"sessionDuration": -(2**63) - 1}, "out of range"),
        ),
    ),
    Rule(
        "timestamp not ISO-8601 (`yesterday`, month 13, day 32, empty, a number)",
        "`bad timestamp: ...` / `wrong type: timestamp ...`",
        (
            ({"timestamp": "yesterday"}, "bad timestamp"),
            ({"timestamp": "2026-13-01T00:00:00Z"}, "bad timestamp"),
            ({"timestamp": "2026-01-32T00:00:00"}, "bad timestamp"),
            ({"timestamp": "2025-02-29T00:00:00Z"}, "bad timestamp"),
            ({"timestamp": "2100-02-29T00:00:00Z"}, "bad timestamp"),
            ({"timestamp": "2026-03-01T24:00:00Z"}, "bad timestamp"),
            ({"timestamp": "2026-03-01T12:00:00.000z"}, "bad timestamp"),
            ({"timestamp": ""}, "bad timestamp"),
            ({"timestamp": 1700000000}, "wrong type: timestamp"),
        ),
    ),
    Rule(
        f"empty/blank id, id over {MAX_ID_CHARS} characters, NUL/tab/control character in an id",
        "`empty: userId`, `too long: ...`, `unprintable character in userId`",
        (
            ({"userId": ""}, "empty: userId"),
            ({"userId": "   "}, "empty: userId"),
            ({"productId": ""}, "empty: productId"),
            ({"userId": _MAX_ID + "u"}, f"too long: userId has {MAX_ID_CHARS + 1} characters"),
            ({"eventType": _MAX_ID + "e"}, "too long: eventType"),
            ({"userId": "an\x00na"}, "unprintable character in userId"),
            ({"userId": "an\tna"}, "unprintable character in userId"),
            ({"productId": "AB\x7f1"}, "unprintable character in productId"),
        ),
    ),
    Rule(
        f"a line over {MAX_LINE_BYTES // 1024} KiB",
        f"`line too long: N bytes (max {MAX_LINE_BYTES})`; never held in memory whole, also "
        "across read blocks",
        (({"padding": "x" * MAX_LINE_BYTES}, "line too long"),),
    ),
    Rule(
        "UTF-8 BOM at the start of the file",
        "accepted (stripped); a BOM on a later line is rejected",
        ((UTF8_BOM + _LINE, "byte order mark"),),
    ),
    Rule(
        "CRLF line endings, spaces around the object, extra fields, duplicate keys (last wins), "
        "last line without newline",
        "accepted",
        (
            (_LINE + b"\r", None),
            (b"  " + _LINE + b"  ", None),
            ({"ip": "10.0.0.1", "nested": {"a": [1, 2]}}, None),
            (_LINE[:-1] + b', "sessionDuration": 7}', None),
        ),
    ),
    Rule(
        "unicode, backslashes, quotes, `\\N` in a userId",
        "accepted and loaded exactly (COPY escaping)",
        (
            ({"userId": "jos\u00e9.\u7528\u6237"}, None),
            ({"userId": "dom\\user"}, None),
            ({"userId": 'say "hi"'}, None),
            ({"userId": "\\N"}, None),
        ),
    ),
    Rule(
        f"the limits: ids of 1 and {MAX_ID_CHARS} characters, a duration of 0 and "
        f"{MAX_SESSION_DURATION:,}; timestamps without zone, with an offset, with 6 fractional "
        "digits, Feb 29 of a leap year",
        "accepted",
        (
            ({"userId": "u", "eventType": "e", "productId": "p"}, None),
            ({"userId": _MAX_ID, "eventType": _MAX_ID, "productId": _MAX_ID}, None),
            ({"sessionDuration": 0}, None),
            ({"sessionDuration": MAX_SESSION_DURATION}, None),
            ({"timestamp": "2026-03-01T12:00:00"}, None),
            ({"timestamp": "2026-03-01T12:00:00+05:30"}, None),
            ({"timestamp": "2026-03-01T12:00:00.123456Z"}, None),
            ({"timestamp": "2024-02-29T00:00:00Z"}, None),
        ),
    ),
)


def example_lines() -> Iterator[tuple[str, bytes, str | None]]:
    """Every example of RULES as (name, line, start of its reason or None); one made from
    changes comes both spaced and compact (the shape the C fast path takes)."""
    for rule in RULES:
        for number, (case, reason) in enumerate(rule.examples):
            name = f"{rule.input[:40]} #{number}"
            if isinstance(case, bytes):
                yield name, case, reason
            else:
                yield name, example(case), reason
                yield f"{name} compact", example(case, compact=True), reason


def markdown_table() -> str:
    """The table of rules as docs/pipeline.md shows it ("Bad input")."""
    rows = ["| input | result (reason prefix) |", "| --- | --- |"]
    rows += [f"| {rule.input} | {rule.result} |" for rule in RULES]
    return "\n".join(rows) + "\n"
