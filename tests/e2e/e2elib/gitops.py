"""Rows where Git is the only way in: a commit pushed to the served repository reaches the
cluster through Argo CD alone (GitHub's push webhook, e2elib/webhook.py), and what is changed
by hand in the cluster goes back to what Git says. No harness apply, no refresh annotation.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import argocd, kube, served

BRANCH = "main"  # as on GitHub: the images workflow pushes its bump to main
GIT = ["git", *served.AUTHOR]
SYNC_TIMEOUT = 600.0


def bare_repo(state: Path) -> Path:
    return state / "git" / "sandboxed-event-pipeline.git"


def push(state: Path, message: str, edit: Callable[[Path], None]) -> tuple[str, float]:
    """Clone the served branch, edit, commit and push it (the hook sends the webhook).
    Returns the new commit and the wall-clock time the push returned."""
    with tempfile.TemporaryDirectory(prefix="esp-e2e-push-") as tmp:
        subprocess.run(
            [*GIT, "clone", "-q", "-b", BRANCH, str(bare_repo(state)), tmp], check=True, timeout=120
        )
        edit(Path(tmp))
        subprocess.run([*GIT, "add", "-A"], cwd=tmp, check=True, timeout=60)
        subprocess.run([*GIT, "commit", "-qm", message], cwd=tmp, check=True, timeout=60)
        subprocess.run(
            [*GIT, "push", "-q", "origin", f"HEAD:{BRANCH}"],
            cwd=tmp,
            check=True,
            capture_output=True,
            timeout=120,
        )
        pushed = time.time()
        rev = subprocess.run(
            [*GIT, "rev-parse", "HEAD"], cwd=tmp, check=True, text=True, capture_output=True
        ).stdout.strip()
    return rev, pushed


def push_and_wait(state: Path, message: str, edit: Callable[[Path], None]) -> tuple[str, float]:
    """Push a commit; wait until Argo CD has every Application Synced/Healthy at it.
    Returns the commit and the seconds from the push to that."""
    rev, pushed = push(state, message, edit)
    argocd.wait(argocd.APPS, SYNC_TIMEOUT, rev, quiet=True)
    return rev, time.time() - pushed


def webhook_line(state: Path, rev: str) -> str:
    log = bare_repo(state) / "esp-webhooks.log"
    lines = [ln for ln in (log.read_text().splitlines() if log.is_file() else []) if rev[:12] in ln]
    return lines[-1].split(" ", 2)[2] if lines else f"no webhook delivery logged for {rev[:12]}"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise kube.KubeError(f"{path.name}: {old!r} not found")
    path.write_text(text.replace(old, new, 1))


def wait_until(what: str, timeout: float, probe: Callable[[], Any]) -> float:
    """Seconds until probe() is truthy (KubeError after timeout)."""
    t0 = time.monotonic()
    kube.wait_for(what, timeout, probe, interval=1)
    return time.monotonic() - t0
