"""One source of truth: changing the pipeline's cron or the PostgreSQL version is one edit (in the
overlay patch or the manifest), never a second one in scripts/validate-config.yaml; a base value
that no overlay deploys says so where it is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from validate_lib import upstream

REPO = upstream.REPO_ROOT

IGNORE = shutil.ignore_patterns(".git", ".venv*", ".cache", "__pycache__", "*_cache")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_cron_and_postgres_version_are_one_edit_each(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=IGNORE)
    _edit(
        copy / "overlays/minikube/patches/cron-every-2-minutes.yaml", "*/2 * * * *", "*/3 * * * *"
    )
    _edit(
        copy / "base/postgres/statefulset.yaml", "postgres:17.6-bookworm", "postgres:18.1-bookworm"
    )
    env = {
        **os.environ,
        "VALIDATE_UPSTREAM_DIR": str(upstream.SHARED_UPSTREAM),
        "VALIDATE_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    p = subprocess.run(
        [sys.executable, str(copy / "scripts" / "validate"), "--no-checkov", "overlays/minikube"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(copy / "overlays/minikube")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert '- "*/3 * * * *"' in rendered or "- '*/3 * * * *'" in rendered
    assert "postgres:18.1-bookworm" in rendered


def _schedules(docs: list[object]) -> list[str]:
    for d in docs:
        if (
            isinstance(d, dict)
            and d.get("kind") == "CronWorkflow"
            and d["metadata"]["name"] == "event-pipeline"
        ):
            return [str(s) for s in d["spec"]["schedules"]]
    raise AssertionError("no CronWorkflow event-pipeline")


def test_base_cron_value_no_overlay_deploys_is_marked() -> None:
    base_file = REPO / "base/pipeline/cronworkflow.yaml"
    base = _schedules(list(yaml.safe_load_all(base_file.read_text())))
    targets = yaml.safe_load((REPO / "scripts/validate-config.yaml").read_text())["targets"]
    deployed = set()
    for overlay in targets:
        out = subprocess.run(
            ["kubectl", "kustomize", str(REPO / overlay)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        deployed.update(_schedules(list(yaml.safe_load_all(out))))
    if not set(base) & deployed:
        assert "NOT DEPLOYED" in base_file.read_text(), (
            f"base schedules {base} are deployed by no overlay ({sorted(deployed)}): say so in "
            f"{base_file.relative_to(REPO)}"
        )
