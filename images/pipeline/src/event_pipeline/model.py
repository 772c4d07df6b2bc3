"""What the generator and the aggregator share besides the rules of an event (rules.py): the
event types the generator emits, the COPY text of a value, the excerpt of a rejected line and
the CPUs a process may use.
"""

from __future__ import annotations

import math
import os
from typing import Final

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

EXCERPT_CHARS: Final = 120


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
