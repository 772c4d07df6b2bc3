"""`isolation-verify --store` against a real throwaway PostgreSQL (event_pipeline.pgserver)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import local_postgres

PY = sys.executable


@pytest.fixture(scope="module")
def pg_env() -> Iterator[dict[str, str]]:
    with local_postgres(dbname="isolation") as server:
        env = {**os.environ, **server.env()}
        env.pop("PGPASSWORD", None)
        yield env


def probe(host: Path, variant: str, run_id: str) -> str:
    argv = [PY, "-m", "event_pipeline.isolation_probe", "--variant", variant]
    argv += ["--host-dir", str(host), "--run-id", run_id]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def verify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "event_pipeline.isolation_verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rows(env: dict[str, str], run_id: str) -> list[tuple[str, ...]]:
    import psycopg2  # type: ignore[import-untyped,unused-ignore]

    dsn = " ".join(f"{k[2:].lower()}={env[k]}" for k in ("PGHOST", "PGPORT", "PGUSER"))
    conn = psycopg2.connect(f"{dsn} dbname={env['PGDATABASE']}")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT variant, coalesce(write_ok::text, '?'), reached_host::text,"
                " coalesce(contained::text, '?') FROM isolation_results"
                " WHERE run_id = %s ORDER BY variant",
                (run_id,),
            )
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def test_store_is_idempotent_and_cleanup_removes_markers(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    out_a = probe(tmp_path, "A", "s-1")
    out_b = probe(tmp_path, "B", "s-1")
    (tmp_path / "marker-s-1-B.json").unlink()  # as if B's write had stayed in a sandbox
    args = ["--host-dir", str(tmp_path), "--run-id", "s-1", "--probe-json", out_a]
    args += ["--probe-json", out_b, "--store"]
    first = verify(pg_env, *args)
    assert first.returncode == 0, first.stderr
    second = verify(pg_env, *args, "--cleanup")  # same run again: upsert, no duplicate rows
    assert second.returncode == 0, second.stderr
    assert rows(pg_env, "s-1") == [
        ("A", "true", "true", "false"),
        ("B", "true", "false", "true"),
        ("C", "?", "false", "?"),
    ]
    assert list(tmp_path.iterdir()) == []
    doc = json.loads(second.stdout)
    assert doc["run_id"] == "s-1" and len(doc["variants"]) == 3


def test_store_failure_is_reported_and_markers_kept(tmp_path: Path) -> None:
    probe(tmp_path, "A", "s-2")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": "1", "PGCONNECT_TIMEOUT": "2"}
    proc = verify(env, "--host-dir", str(tmp_path), "--run-id", "s-2", "--store", "--cleanup",
                  "--connect-timeout", "1")  # fmt: skip
    assert proc.returncode == 1
    assert "--store failed: cannot connect to PostgreSQL at 127.0.0.1:1" in proc.stderr
    assert (tmp_path / "marker-s-2-A.json").exists()
