"""scripts/report against a real PostgreSQL with the real schema.

The cluster is replaced by a stand-in `kubectl` on PATH: `get pod` succeeds and `exec` runs the
same `sh -c 'exec psql ...'` the script sends into the postgres pod, with POSTGRES_USER and
POSTGRES_DB pointing at a throwaway local server. Tables are created by the real CLIs
(aggregate-events, isolation-verify --store), so the report's SQL meets the real schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from event_pipeline.pgserver import LocalPostgres, find_bindir
from needs import local_postgres

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "scripts" / "report"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def pg() -> Iterator[LocalPostgres]:
    with local_postgres() as server:
        yield server


def fake_kubectl(tmp: Path, pg: LocalPostgres) -> dict[str, str]:
    """PATH and env where `kubectl ... exec ... -- sh -c CMD` runs CMD against `pg`."""
    bindir = tmp / "bin"
    bindir.mkdir()
    psql = Path(find_bindir()) / "psql"
    env = {**os.environ, **pg.env()}
    script = f"""#!/usr/bin/env bash
# stand-in for kubectl: `get pod` exists; `exec ... -- sh -c CMD` runs CMD locally
case " $* " in
  *" get pod "*) exit 0 ;;
  *" exec "*)
    while (($#)) && [[ "$1" != -- ]]; do shift; done
    shift
    export POSTGRES_USER="{env["PGUSER"]}" POSTGRES_DB="{env["PGDATABASE"]}"
    export PATH="{psql.parent}:$PATH"
    exec "$@" ;;
esac
echo "unexpected kubectl call: $*" >&2
exit 3
"""
    kubectl = bindir / "kubectl"
    kubectl.write_text(script)
    kubectl.chmod(0o755)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    return env


def report(env: dict[str, str], *args: str) -> str:
    p = subprocess.run(
        [str(REPORT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_report_on_an_empty_database_says_what_is_missing(
    pg: LocalPostgres, tmp_path: Path
) -> None:
    env = fake_kubectl(tmp_path, pg)
    pg.psql("DROP VIEW IF EXISTS user_totals; DROP TABLE IF EXISTS isolation_results CASCADE;")
    pg.psql("DROP TABLE IF EXISTS rejected_lines, batch_user_totals, batches CASCADE;")
    out = report(env)
    assert "no batch loaded yet" in out
    assert "view user_totals does not exist yet" in out
    assert "no isolation run stored yet" in out


def test_report_shows_top_users_and_latest_isolation_run(pg: LocalPostgres, tmp_path: Path) -> None:
    env = fake_kubectl(tmp_path, pg)
    events = tmp_path / "events.jsonl"
    subprocess.run(
        [
            *(str(BIN / "generate-events"), "--count", "500", "--seed", "3", "--users", "20"),
            *("--output", str(events), "--quiet"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(BIN / "aggregate-events"), "--input", str(events), "--batch-id", "report-test"],
        env=env,
        check=True,
        capture_output=True,
    )
    host = tmp_path / "host"
    host.mkdir()
    probe = subprocess.run(
        [
            *(str(BIN / "isolation-probe"), "--variant", "A", "--host-dir", str(host)),
            *("--run-id", "report-run"),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        [
            *(str(BIN / "isolation-verify"), "--host-dir", str(host), "--run-id", "report-run"),
            *("--probe-json", probe.stdout.strip(), "--store"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    top_user = pg.psql(
        "SELECT user_id FROM user_totals ORDER BY total_session_duration DESC, user_id LIMIT 1"
    ).strip()

    out = report(env, "--top", "3")
    assert "top 3 users" in out
    assert top_user and top_user in out
    assert "(3 rows)" in out  # three users shown
    assert "report-run" in out
    for variant in ("A", "B", "C"):
        assert f"| {variant} " in out
