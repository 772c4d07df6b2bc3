"""The aggregator's fast path: a whole block of lines validated by one msgspec call, in C.

``total_block`` either accepts every line of a block (each one exactly what
``rules.validate_line`` accepts) and adds them to the totals, or changes nothing and returns
``None``; the caller then goes line by line, which finds the rejected lines and their reasons.

How one call decodes a block: each newline becomes ``],\\n[`` and the block is wrapped in
``[[ ... ]]``, so that ``line1\\nline2`` reads ``[[line1],\\n[line2]]``, decoded as
``list[tuple[BlockEvent]]``. With the guards below this is exact, each line is one event:

- a separator cannot be inside a string: it keeps the raw newline, which JSON forbids there;
- the block holds no ``]`` of its own, so every array closes at a separator or at the end.
  A separator closes one array and opens another at the same depth, and a line cannot close
  what it did not open; the nesting at every line boundary is therefore the outer list and one
  1-tuple, and each line is that tuple's content: exactly one event (JSON whitespace around it
  allowed, as for one line). A blank line is an empty tuple, two events a 2-tuple: errors;
- no line is longer than ``MAX_LINE_BYTES`` (checked without splitting the block);
- ``timestamp`` is a ``datetime`` parsed by msgspec. What msgspec accepts, Python's
  ``datetime.fromisoformat`` (the rule of ``rules.validate_event``) accepts too, except a
  lowercase ``z`` for UTC: a block with ``z"`` or any backslash (an escape could hide one) is
  not decoded here. tests/pipeline/test_blocks.py compares the two parsers;
- ids must be printable and not blank (``rules.good_id``), which msgspec cannot check. Raw
  control characters inside strings are invalid JSON, so in a block that is ASCII, without a
  backslash, DEL (0x7f) or a space, every string is printable and not blank. Any other block
  has its ids checked here, one by one for the values not seen before (``known``).

The memchr-based checks (``in``, ``rfind``) and ``isascii`` cost little next to the decode;
the per-event work left in Python is the loop that adds to the totals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

from event_pipeline.decoding import DECODE_ERRORS
from event_pipeline.rules import MAX_ID_CHARS, MAX_SESSION_DURATION, good_id

KNOWN_IDS_MAX: Final = 100_000

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]


class BlockEvent(msgspec.Struct, gc=False):
    """``decoding.Event`` with the timestamp parsed in C (see the module docstring)."""

    timestamp: datetime
    userId: _Id
    eventType: _Id
    productId: _Id
    sessionDuration: Annotated[int, msgspec.Meta(ge=0, le=MAX_SESSION_DURATION)]


_decode_rows = msgspec.json.Decoder(list[tuple[BlockEvent]]).decode


def lines_fit(body: bytes, limit: int) -> bool:
    """No line of ``body`` (split at ``\\n``) is longer than ``limit`` bytes."""
    pos = 0
    size = len(body)
    while size - pos > limit:
        newline = body.rfind(b"\n", pos, pos + limit + 1)
        if newline < 0:
            return False
        pos = newline + 1
    return True


def _no_lowercase_utc(body: bytes) -> bool:
    """No ``z"`` in ``body``: one memchr per ``z``, or one slower scan if there are many."""
    budget = len(body) >> 10
    at = body.find(b"z")
    while at >= 0:
        if body[at + 1 : at + 2] == b'"':
            return False
        budget -= 1
        if budget < 0:
            return b'z"' not in body
        at = body.find(b"z", at + 1)
    return True


def _ids_ok(rows: list[tuple[BlockEvent]], known: set[str]) -> bool:
    for (event,) in rows:
        for value in (event.userId, event.eventType, event.productId):
            if value not in known:
                if not good_id(value):
                    return False
                if len(known) < KNOWN_IDS_MAX:  # bounded: adversarial input cannot grow it
                    known.add(value)
    return True


def total_block(
    body: bytes, totals: dict[str, list[int]], known: set[str], max_line: int
) -> int | None:
    """Validate and total the lines of ``body`` (whole lines, without the last newline).

    Return the number of lines when all are valid and added to ``totals``; ``None``, with
    ``totals`` unchanged, when the block must be scanned line by line.
    """
    if b"]" in body or b"\\" in body or not lines_fit(body, max_line):
        return None
    if not _no_lowercase_utc(body):
        return None
    try:
        rows = _decode_rows(b"".join((b"[[", body.replace(b"\n", b"],\n["), b"]]")))
    except DECODE_ERRORS:
        return None
    clean = body.isascii() and b" " not in body and b"\x7f" not in body
    if not clean and not _ids_ok(rows, known):
        return None
    get = totals.get
    for (event,) in rows:
        entry = get(event.userId)
        if entry is None:
            totals[event.userId] = [event.sessionDuration, 1]
        else:
            entry[0] += event.sessionDuration
            entry[1] += 1
    return len(rows)
