"""What the command-line tools share: argument types whose errors say what is expected, wording.

argparse names a failing type function in its message (``invalid _ratio value: 'x'``) unless
the function raises ``ArgumentTypeError``; these always do, with the expected form.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

MAX_SHARDS = 10_000
N = TypeVar("N", int, float)


def _bounds(minimum: float | None, maximum: float | None) -> str:
    def show(value: float) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"

    if minimum is not None and maximum is not None:
        return f" from {show(minimum)} to {show(maximum)}"
    if minimum is not None:
        return f" >= {show(minimum)}"
    if maximum is not None:
        return f" <= {show(maximum)}"
    return ""


def _bounded(
    kind: str, convert: Callable[[str], N], minimum: N | None, maximum: N | None
) -> Callable[[str], N]:
    expected = f"expected {kind}{_bounds(minimum, maximum)}"

    def parse(value: str) -> N:
        try:
            parsed = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {value!r}") from None
        if (
            parsed != parsed  # NaN
            or (minimum is not None and parsed < minimum)
            or (maximum is not None and parsed > maximum)
        ):
            raise argparse.ArgumentTypeError(f"{expected}, got {value!r}")
        return parsed

    return parse


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An integer within the bounds; ``expected an integer >= 1, got 'abc'`` otherwise."""
    return _bounded("an integer", int, minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A finite number within the bounds; ``expected a number from 0 to 1, got 'x'`` otherwise."""
    return _bounded("a number", float, minimum, maximum)


def shard(value: str) -> tuple[int, int]:
    """``I/N``: shard I (0-based) of N shards."""
    expected = f"expected I/N with 0 <= I < N <= {MAX_SHARDS} (e.g. 0/4), got {value!r}"
    index, slash, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not slash or not 0 <= i < n <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(expected)
    return i, n


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 process``, ``2 processes``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
