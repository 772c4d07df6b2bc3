"""The event model shared by the generator and the aggregator.

An event is one JSON object per line (JSON Lines):
``{"timestamp": ISO-8601, "userId": str, "eventType": str, "productId": str,
"sessionDuration": int seconds >= 0}``. Extra fields are allowed and ignored.

``validate_line`` is the single definition of a valid line: the generator's output must pass
it (a test checks that) and the aggregator rejects whatever fails it, with a reason. A line is
valid when msgspec decodes it into ``decoding.Event`` (types and ranges checked in C) and the
few checks msgspec cannot express pass (``fast_checks``), or, failing that, when its untyped
decoding passes ``validate_event`` (which also names the reason of a rejection). msgspec is
imported on the first call (decoding.py): a run whose lines all take the aggregator's C fast
path (_fastscan.c), and the generator, never pay for its import.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from event_pipeline.decoding import Event

FIELDS: Final = ("timestamp", "userId", "eventType", "productId", "sessionDuration")

# Event types the generator emits, with their relative weights (a browse-heavy funnel).
EVENT_TYPES: Final[tuple[tuple[str, int], ...]] = (
    ("pageView", 50),
    ("productView", 22),
    ("search", 10),
    ("addToCart", 8),
    ("removeFromCart", 3),
    ("checkoutStart", 4),
    ("purchase", 3),
)

# A duration above 2**31-1 s (68 years) is not a session; the cap also keeps any per-user sum
# of one batch far below the bigint limit (it would need more than 4e9 events to overflow).
MAX_SESSION_DURATION: Final = 2**31 - 1
BIGINT_MAX: Final = 2**63 - 1
# Lines longer than this are rejected without being held in memory; real events are ~170 bytes.
MAX_LINE_BYTES: Final = 64 * 1024
MAX_ID_CHARS: Final = 256
EXCERPT_CHARS: Final = 120
UTF8_BOM: Final = b"\xef\xbb\xbf"


class Rejected(Exception):
    """A line that is not a valid event; ``str(exc)`` is the reason stored in the database."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_id(event: dict[str, Any], field: str) -> str:
    value = event.get(field)
    if type(value) is not str:
        if value is None:
            raise Rejected(f"missing field: {field}" if field not in event else f"null: {field}")
        raise Rejected(f"wrong type: {field} must be a string, got {_type_name(value)}")
    if not value or value.isspace():
        raise Rejected(f"empty: {field}")
    if len(value) > MAX_ID_CHARS:
        raise Rejected(f"too long: {field} has {len(value)} characters (max {MAX_ID_CHARS})")
    if not value.isprintable():
        # Excludes NUL (PostgreSQL text cannot hold it), control characters and lone
        # surrogates (not encodable as UTF-8).
        raise Rejected(f"unprintable character in {field}")
    return value


def validate_event(event: Any) -> tuple[str, int]:
    """Return ``(userId, sessionDuration)`` of a parsed event or raise ``Rejected``."""
    if type(event) is not dict:
        raise Rejected(f"not a JSON object: got {_type_name(event)}")
    ts = event.get("timestamp")
    if type(ts) is not str:
        if ts is None:
            raise Rejected(
                "missing field: timestamp" if "timestamp" not in event else "null: timestamp"
            )
        raise Rejected(f"wrong type: timestamp must be a string, got {_type_name(ts)}")
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        raise Rejected(f"bad timestamp: {ts[:40]!r} is not ISO-8601") from None
    user = _check_id(event, "userId")
    _check_id(event, "eventType")
    _check_id(event, "productId")
    duration = event.get("sessionDuration")
    if type(duration) is not int:  # bool is a subclass of int: `type() is` excludes it
        if duration is None:
            raise Rejected(
                "missing field: sessionDuration"
                if "sessionDuration" not in event
                else "null: sessionDuration"
            )
        raise Rejected(
            f"wrong type: sessionDuration must be an integer, got {_type_name(duration)}"
        )
    if duration < 0:
        raise Rejected(f"out of range: sessionDuration {duration} < 0")
    if duration > MAX_SESSION_DURATION:
        raise Rejected(f"out of range: sessionDuration {duration} > {MAX_SESSION_DURATION}")
    return user, duration


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
    try:
        datetime.fromisoformat(event.timestamp)
    except ValueError:
        return False
    return good_id(event.userId) and good_id(event.eventType) and good_id(event.productId)


def validate_line(line: bytes) -> tuple[str, int]:
    """Parse and validate one line (without its newline); raise ``Rejected`` with a reason."""
    from event_pipeline.decoding import DECODE_ERRORS, decode_any, decode_event

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


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """Escape a value for PostgreSQL COPY's text format."""
    return value.translate(_COPY_ESCAPES)


def excerpt(line: bytes) -> str:
    """A short, printable, storable (no NUL) excerpt of a rejected line."""
    text = line[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return text.replace("\x00", "\\0")


def available_cpus() -> int:
    """CPUs this process may use: affinity, capped by a cgroup CPU quota (a pod's limit)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2: "max 100000" or "200000 100000"
        with open("/sys/fs/cgroup/cpu.max") as fh:
            limit, period = fh.read().split()[:2]
        if limit != "max":
            quota = int(limit) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
                limit_us = int(fh.read())
            with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
                period_us = int(fh.read())
            if limit_us > 0 and period_us > 0:
                quota = limit_us / period_us
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)
