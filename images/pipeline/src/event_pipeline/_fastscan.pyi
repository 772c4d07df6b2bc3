"""Types of the C extension _fastscan.c (the aggregator's fast path for canonical lines)."""

from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

MAX_ID_CHARS: int
MAX_SESSION_DURATION: int

class Totals:
    """Per-user totals of the canonical valid lines fed so far."""

    def __init__(self) -> None: ...
    def feed(self, data: Buffer, end: int = -1, /) -> tuple[int, list[tuple[int, bytes]]]: ...
    def to_dict(self) -> dict[str, list[int]]: ...
    def __len__(self) -> int: ...

def check_line(line: Buffer, /) -> tuple[str, int] | None: ...
