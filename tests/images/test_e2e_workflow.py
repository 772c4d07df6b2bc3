"""The e2e workflow's own steps, run in bash with stubbed tools: the overlay is the one Git
names (bootstrap deploys what Git says, and never falls back), and the checks fail unless the
isolation run's rows in isolation_results say B and C ran in gVisor."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / ".github" / "workflows" / "e2e.yml"

# kubectl exec ... psql: answers the checks' SQL (read from stdin) from the environment.
FAKE_KUBECTL = """sql="$(cat)"
case "$sql" in
  *"from batches"*) echo 1 ;;
  *"from user_totals"*) echo 1000 ;;
  *"string_agg"*) printf '%s\\n' "$FAKE_SANDBOXES" ;;
  *"from isolation_results"*) echo 3 ;;
  *) echo "unexpected SQL: $sql" >&2; exit 1 ;;
esac
"""


def step(name_start: str) -> str:
    steps = yaml.safe_load(E2E.read_text())["jobs"]["e2e"]["steps"]
    found = [s for s in steps if str(s.get("name", "")).startswith(name_start)]
    assert len(found) == 1, f"no single step named {name_start!r}"
    return str(found[0]["run"])


def run_step(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The step's script as Actions runs it (bash -e), in a directory with stub tools."""
    bin_dir = tmp_path / "bin"
    (tmp_path / "bootstrap").mkdir(exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    stubs = {
        tmp_path / "bootstrap" / "up": 'printf "%s\\n" "$*" > "$UP_ARGS"\n',
        bin_dir / "kubectl": FAKE_KUBECTL,
        bin_dir / "make": 'echo "make $*"\n',
    }
    for path, body in stubs.items():
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_the_overlay_is_the_one_git_names(tmp_path: Path, overlay: str) -> None:
    app = (REPO / "apps" / "event-pipeline.yaml").read_text()
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "event-pipeline.yaml").write_text(
        app.replace("path: overlays/minikube", f"path: overlays/{overlay}")
    )
    github_env = tmp_path / "github-env"
    p = run_step(step("Overlay in Git"), tmp_path, GITHUB_ENV=str(github_env))
    assert p.returncode == 0, p.stderr
    assert github_env.read_text() == f"OVERLAY={overlay}\n"


def test_make_up_passes_no_overlay(tmp_path: Path) -> None:
    up_args = tmp_path / "up-args"
    p = run_step(step("make up"), tmp_path, UP_ARGS=str(up_args))
    assert p.returncode == 0, p.stderr
    assert up_args.read_text().strip() == ""


@pytest.mark.parametrize(
    ("overlay", "sandboxes", "ok"),
    [
        ("minikube", "A=host-kernel B=gvisor C=gvisor", True),
        ("minikube", "A=host-kernel B=host-kernel C=host-kernel", False),  # gVisor fell away
        ("minikube", "A=host-kernel B=gvisor", False),  # C missing
        ("minikube", "", False),  # no rows for this run
        ("no-gvisor", "A=host-kernel B=host-kernel C=host-kernel", True),
        ("no-gvisor", "A=host-kernel B=gvisor C=gvisor", False),
    ],
)
def test_checks_assert_where_b_and_c_ran(
    tmp_path: Path, overlay: str, sandboxes: str, ok: bool
) -> None:
    p = run_step(
        step("Assert rows in PostgreSQL"),
        tmp_path,
        OVERLAY=overlay,
        NS="event-pipeline",
        WF="event-pipeline-e2e-abc",
        DEMO_WF="isolation-demo-e2e-xyz",
        FAKE_SANDBOXES=sandboxes,
    )
    assert (p.returncode == 0) == ok, p.stdout + p.stderr
    if not ok:
        assert "::error::isolation run isolation-demo-e2e-xyz: expected" in p.stdout
