"""Cron expressions as Argo (robfig/cron: 5 fields or a descriptor) and Kubernetes accept them."""

from __future__ import annotations

import re

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_EVERY = re.compile(r"^@every\s+([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def _value(tok: str, lo: int, hi: int, names: dict[str, int], what: str) -> int:
    v = names.get(tok.lower()) if names else None
    if v is None:
        if not tok.isdigit():
            raise ValueError(f"{what}: {tok!r} is not a number")
        v = int(tok)
    if not lo <= v <= hi:
        raise ValueError(f"{what}: {v} out of range {lo}-{hi}")
    return v


def check(expr: str) -> str | None:
    """None when valid, else the reason."""
    e = expr.strip()
    if e.startswith(("CRON_TZ=", "TZ=")):
        parts = e.split(None, 1)
        e = parts[1] if len(parts) > 1 else ""
    if e.startswith("@"):
        if e in _DESCRIPTORS or _EVERY.match(e):
            return None
        return f"unknown descriptor {e!r}"
    fields = e.split()
    if len(fields) != 5:
        return f"{len(fields)} fields, expected 5 (minute hour day-of-month month day-of-week)"
    try:
        for f, (what, lo, hi, names) in zip(fields, _FIELDS, strict=True):
            for item in f.split(","):
                rng, _, step = item.partition("/")
                if step and (not step.isdigit() or int(step) == 0):
                    raise ValueError(f"{what}: bad step {step!r}")
                if rng in ("*", "?"):
                    continue
                a, dash, b = rng.partition("-")
                start = _value(a, lo, hi, names, what)
                if dash:
                    end = _value(b, lo, hi, names, what)
                    if end < start:
                        raise ValueError(f"{what}: range {rng} ends before it starts")
    except ValueError as exc:
        return str(exc)
    return None
