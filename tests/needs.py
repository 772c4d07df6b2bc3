"""What tests do when a component they need is missing, in one place.

CI must run every layer: with ``CI=true`` a missing component fails the test; elsewhere the
test skips with the reason. Importable from every test folder (``tests/`` is on ``sys.path``
through its conftest).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest
from event_pipeline.pgserver import LocalPostgres, PostgresNotFound


def unavailable(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def local_postgres(**kwargs: Any) -> Iterator[LocalPostgres]:
    """A started throwaway PostgreSQL (``LocalPostgres(**kwargs)``), deleted afterwards."""
    try:
        server = LocalPostgres(**kwargs)
    except PostgresNotFound as exc:
        unavailable(str(exc))
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        server.cleanup()
        unavailable(f"local PostgreSQL did not start: {exc}")
    try:
        yield server
    finally:
        server.cleanup()
