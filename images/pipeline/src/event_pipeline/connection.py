"""Connecting to PostgreSQL from the libpq environment, with retries while it is not up."""

from __future__ import annotations

import os
import time

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]

from event_pipeline.progress import StatusLine


class DatabaseUnavailable(Exception):
    """The server could not be reached (or refused us) within the retry budget."""


def where() -> str:
    """Where libpq will connect, for messages (never includes the password)."""
    host = os.environ.get("PGHOST") or "local socket"
    port = os.environ.get("PGPORT") or "5432"
    db = os.environ.get("PGDATABASE") or os.environ.get("PGUSER") or "(default)"
    return f"{host}:{port}/{db}"


# Errors that waiting will not fix: fail at once instead of retrying until the deadline.
_FATAL_MARKERS = (
    "authentication failed",
    "password",
    "no pg_hba.conf entry",
    "role ",
    "invalid connection option",
    "invalid port",
    "invalid integer value",
)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def connect(
    timeout: float, how_to_change: str, prog: str = "aggregate-events"
) -> psycopg2.extensions.connection:
    """Connect from the libpq environment, retrying with backoff for up to ``timeout`` s.

    Says so once when waiting starts (where, how long, ``how_to_change``: what sets it), keeps
    one progress line on a terminal, and the caller prints the one line of a give-up."""
    out = StatusLine()
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            conn = psycopg2.connect(
                "",
                connect_timeout=max(2, min(10, int(remaining) + 1)),
                application_name=prog,
            )
        except psycopg2.OperationalError as exc:
            reason = first_line(exc)
            fatal = any(marker in reason for marker in _FATAL_MARKERS)
            elapsed = time.monotonic() - started
            if fatal or time.monotonic() + delay > deadline:
                out.done()
                tried = f"{attempt} attempt{'s' if attempt > 1 else ''} in {elapsed:.0f}s"
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {where()} ({tried}): {reason}"
                ) from None
            if attempt == 1:
                out.line(
                    f"{prog}: PostgreSQL at {where()} not ready ({reason}); waiting up to "
                    f"{timeout:g}s ({how_to_change} sets how long)"
                )
            else:
                out.progress(
                    f"{prog}: still waiting for PostgreSQL at {where()}: {elapsed:.0f}s of "
                    f"{timeout:g}s, {attempt} attempts ({reason})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            if attempt > 1:
                out.line(
                    f"{prog}: connected to PostgreSQL at {where()} after "
                    f"{time.monotonic() - started:.1f}s"
                )
            return conn
