"""Fixtures of the pipeline tests: a real PostgreSQL server (event_pipeline.pgserver).

One throwaway server per test session (initdb in a temp dir, free port on 127.0.0.1, run as
the unprivileged ``postgres`` user when the tests run as root), and a fresh database per test.
When the PostgreSQL binaries are missing the tests skip, except with ``CI=true`` where they
fail: CI must run every layer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from event_pipeline.pgserver import LocalPostgres
from needs import local_postgres

BIN = Path(sys.executable).parent


def cli(name: str) -> str:
    """Path of a console script of the package, installed next to this interpreter."""
    path = BIN / name
    assert path.exists(), f"{path} missing: install the package (make venv)"
    return str(path)


def run_cli(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(name), *args],
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    with local_postgres(dbname="postgres") as server:
        yield server


class Database:
    """One fresh database of the session's server, with helpers for assertions."""

    def __init__(self, server: LocalPostgres, name: str) -> None:
        self.server = server
        self.name = name
        self.env = {**os.environ, **server.env(name)}
        # Never let the test runner's own libpq settings leak into the loaders.
        self.env.pop("PGPASSWORD", None)
        self.env.pop("PGSERVICE", None)

    def connect(self) -> Any:
        return psycopg2.connect(self.server.dsn(self.name))

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def user_totals(self) -> dict[str, int]:
        return dict(self.query("SELECT user_id, total_session_duration FROM user_totals"))

    def aggregate(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_cli("aggregate-events", *args, env=self.env, timeout=timeout)


@pytest.fixture
def database(pg_server: LocalPostgres) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f'CREATE DATABASE "{name}"', dbname="postgres")
    yield Database(pg_server, name)
    pg_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', dbname="postgres")
