"""The deliberately broken manifests must make the e2e run fail. On a running cluster (make e2e
E2E_KEEP=1 first), for each break in served.py BREAKS: deploy the broken repository
(E2E_BREAK), run the checks it must fail, and expect a failure at its stage (deploy or check);
then deploy the real repository again. Prints how long each took. Exit 1 if a break passed.

    python -m e2elib breaks [NAME...]     (make e2e-breaks; E2E_RESTORE=0: no redeploy at the end)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from . import argocd, kube, report, served
from .harness import Failed, log, state

# What must catch each break: "deploy" (Argo CD cannot deploy it) or the report rows it must
# turn red once deployed. A failure at the other stage is some other fault, not this break caught.
CAUGHT_BY = {
    "wrong-serviceaccount": "pipeline, overlays/minikube",
    # The PostSync verifier cannot store its results: the sync fails.
    "netpol-blocks-postgres": "deploy",
    "no-gvisor-annotation-on-c": "isolation demo WorkflowTemplate",
    # Only a real Argo CD enforces an AppProject: the deploy itself must fail, with its message.
    "project-denies-configmap": "deploy",
    # The bump commits a tag that was never pushed: Argo CD syncs it, the next run cannot pull.
    "bump-tag-not-built": "delivery loop",
    # The web UI's page loads, its scripts do not: the browser row sees no UI.
    "argo-ui-base-href": "Argo Workflows UI in Chromium",
}


def deploy_failure(log_text: str) -> str:
    """The outcome of a failed deploy: Argo CD's message when the wait saw a failed sync (the
    last one), or a timeout's."""
    synced = re.findall(r"sync failed: .*", log_text)
    return f"deploy failed: {synced[-1][:300] if synced else 'no failed sync: timed out'}"


def judge(name: str, outcome: str, seconds: float) -> tuple[str, bool]:
    """The result line of a break and whether it was caught: it must have failed (outcome is
    "deploy failed: ..." or "check failed: ...", empty if nothing failed) at its own stage."""
    stage = "deploy" if CAUGHT_BY[name] == "deploy" else "check"
    took = f"{seconds:.0f}s"
    if not outcome:
        return f"{name:<28} PASSED: the harness did not catch it ({took})", False
    if not outcome.startswith(stage):
        return (
            f"{name:<28} FAILED ELSEWHERE: expected at {stage}, got ({outcome}) in {took}",
            False,
        )
    return f"{name:<28} FAILED as it must ({outcome}) in {took}", True


def _stage(args: list[str], log_file: Path, env: dict[str, str], append: bool = False) -> bool:
    with log_file.open("a" if append else "w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "e2elib", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            check=False,
        )
    return proc.returncode == 0


def run_one(name: str) -> str:
    """Deploy break name and run the rows it must fail; the outcome (empty: nothing failed)."""
    logs = state() / "logs" / f"break-{name}.log"
    if not _stage(["deploy"], logs, {"E2E_BREAK": name}):
        return deploy_failure(logs.read_text(errors="replace"))
    rows = CAUGHT_BY[name]
    if rows != "deploy" and not _stage(
        ["check", rows], logs, {"E2E_REPORT": str(state() / f"break-{name}.json")}, append=True
    ):
        return f"check failed: {rows}"
    return ""


def restore() -> None:
    log("restoring the real repository")
    logs = state() / "logs" / "break-restore.log"
    if not _stage(["deploy"], logs, {"E2E_BREAK": ""}):
        log("restore failed: see its log")
    # Runs a broken commit started can never finish (an image that was never pushed, a missing
    # token) and, under concurrencyPolicy Forbid, would hold back the next scheduled runs.
    for ns in ("event-pipeline", "isolation-demo"):
        out = kube.kubectl(
            "-n",
            ns,
            "delete",
            "workflows",
            "-l",
            "workflows.argoproj.io/phase in (Pending,Running)",
            "--wait=false",
            check=False,
        )
        with logs.open("a") as f:
            f.write(out)


def main(names: list[str]) -> int:
    if subprocess.run(kube.in_ns(["true"]), capture_output=True, check=False).returncode != 0:
        log("ERROR: no cluster runs: make e2e E2E_KEEP=1 first")
        return 1
    os.environ.setdefault("E2E_DEPLOY_TIMEOUT", "420")
    names = names or sorted(served.BREAKS)
    unknown = [n for n in names if n not in CAUGHT_BY]
    if unknown:
        raise Failed(f"no rows known for break {', '.join(unknown)}")
    results = []
    for name in names:
        t0 = time.monotonic()
        line, caught = judge(name, run_one(name), time.monotonic() - t0)
        results.append((line, caught))
        log(f"{line} (log {state() / 'logs' / f'break-{name}.log'})")
        # A failed sync still retrying, or a hook that can never finish, would hold the next
        # push back for minutes: terminate it, as a user does once the failure is read.
        try:
            for op in argocd.terminate_running(argocd.APPS):
                log(f"  terminated the operation of {op}")
        except kube.KubeError as exc:
            log(f"  could not terminate the running syncs: {exc}")
    if os.environ.get("E2E_RESTORE", "1") == "1":
        restore()
    print("\n".join(line for line, _ in results))
    # The run's report gets the breaks too: a break the harness did not catch fails it.
    path = os.environ.get("E2E_REPORT")
    if path and Path(path).is_file():
        report.record_breaks(Path(path), results)
    return 0 if all(caught for _, caught in results) else 1
