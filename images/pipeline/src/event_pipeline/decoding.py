"""msgspec's decoding of one line, for rules.validate_line (imported on its first call).

``decode_event`` decodes into ``Event``, the typed shape of an event (rules.SCHEMA's types and
limits, checked in C); ``decode_any`` is the untyped decoding that rules.validate_event then
checks rule by rule, naming the reason of a rejection.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from event_pipeline.rules import MAX_ID_CHARS, MAX_SESSION_DURATION


class Event(msgspec.Struct, gc=False):
    """The typed shape of an event; field names are the JSON keys, unknown keys are ignored."""

    timestamp: str
    userId: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    eventType: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    productId: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    # msgspec never takes a bool or a float for an int, and checks the range in C.
    sessionDuration: Annotated[int, msgspec.Meta(ge=0, le=MAX_SESSION_DURATION)]


decode_event = msgspec.json.Decoder(Event).decode
decode_any = msgspec.json.decode
# What a typed or untyped decode may raise on bad input (invalid UTF-8 inside a string is a
# UnicodeDecodeError, a deeply nested value a RecursionError).
DECODE_ERRORS: Final = (msgspec.DecodeError, ValueError, RecursionError)
