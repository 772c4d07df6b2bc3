"""Wait until Argo CD reports every Application Synced, Healthy and its last sync Succeeded.

"Succeeded" covers hooks: the last operation's phase is Succeeded and every hook it ran
(the isolation demo's PostSync Job) reports hookPhase Succeeded. A sync of the awaited
revision that failed (phase Failed/Error; or, now retrying, failed twice or once in a hook) ends
the wait at once with Argo CD's own message: retries are for what settles by itself (CRDs still
arriving), and a wrong manifest fails the same way every time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from . import kube, workflows

APPS = ("root", "argo-workflows", "event-pipeline")
# Failed attempts before the wait reports a sync as failed (one may be a transient). The count
# is Argo CD's retryCount, which with retry.refresh goes on across commits.
FAILED_ATTEMPTS = 2


class SyncFailed(kube.KubeError):
    """Argo CD reported a failed sync; the message is its own."""


def state(app: dict[str, Any]) -> tuple[bool, str]:
    """(done, one-line description) of an Application object."""
    status = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status", "?")
    health = (status.get("health") or {}).get("status", "?")
    op = status.get("operationState") or {}
    phase = op.get("phase", "none")
    hooks = [
        r
        for r in (op.get("syncResult") or {}).get("resources") or []
        if r.get("hookType") and r.get("hookType") != "Skip"
    ]
    hooks_ok = all(r.get("hookPhase") == "Succeeded" for r in hooks)
    revision = str((status.get("sync") or {}).get("revision", ""))[:8]
    hooks_done = sum(r.get("hookPhase") == "Succeeded" for r in hooks)
    desc = f"{sync}/{health} op={phase} hooks={hooks_done}/{len(hooks)} rev={revision}"
    done = sync == "Synced" and health == "Healthy" and phase == "Succeeded" and hooks_ok
    if phase in ("Failed", "Error") and op.get("message"):
        desc += f" ({op['message'][:200]})"
    return done, desc


def failure(app: dict[str, Any], revision: str | None = None) -> str | None:
    """Argo CD's message when the current sync (of revision, if given) has failed.

    The revision an attempt synced is its syncResult's: with retry.refresh the operation names
    none (each attempt takes the newest), so a failure left by the last commit's attempts is
    not the awaited commit's until an attempt of that commit failed too."""
    op = (app.get("status") or {}).get("operationState") or {}
    attempted = str((op.get("syncResult") or {}).get("revision") or "")
    if revision and attempted != revision:
        return None
    phase, retries = op.get("phase"), int(op.get("retryCount") or 0)
    # While an attempt runs, its message is progress ("waiting for healthy state of ..."); a
    # failed attempt that will be retried says "... Retrying attempt #N at T.".
    retrying = phase == "Running" and "Retrying attempt #" in str(op.get("message") or "")
    # A hook that ran and failed is no transient (its Job got as far as running): one attempt
    # says it all, and the steps' retries of the Workflow it waits for make each attempt long.
    hook_failed = any(
        r.get("hookType") and r.get("hookPhase") in ("Failed", "Error")
        for r in (op.get("syncResult") or {}).get("resources") or []
    )
    if phase in ("Failed", "Error") or (retrying and (retries >= FAILED_ATTEMPTS or hook_failed)):
        failed = [
            f"{r.get('kind')}/{r.get('name')}: {r.get('message')}"
            for r in (op.get("syncResult") or {}).get("resources") or []
            if r.get("status") in ("SyncFailed",) or r.get("hookPhase") in ("Failed", "Error")
        ]
        conditions = [
            c.get("message", "")
            for c in (app.get("status") or {}).get("conditions") or []
            if c.get("type", "").endswith("Error")
        ]
        return "; ".join([str(op.get("message") or phase), *failed, *conditions])[:1500]
    return None


def hook_steps(app: dict[str, Any]) -> str:
    """The failed steps of the Workflows submitted by the hook Jobs that failed in the app's
    last operation (found by the submitter's label), e.g. "; Job/isolation-demo-sync's
    Workflow isolation-demo-sync-x7k2p steps: verify(1) Failed: Error (exit code 1)"; "" if
    none. Argo CD's own message for the Job only says it reached its backoff limit."""
    out = []
    for r in hook_results(app):
        if r.get("kind") != "Job" or r.get("hookPhase") not in ("Failed", "Error"):
            continue
        try:
            _, submitted = workflows.submitted_by_job(str(r.get("namespace")), str(r.get("name")))
        except kube.KubeError:
            continue
        for wf in submitted:
            nodes = ((wf.get("status") or {}).get("nodes") or {}).values()
            bad = [
                f"{n.get('displayName')} {n.get('phase')}: {n.get('message') or ''}".rstrip(": ")
                for n in sorted(nodes, key=lambda n: str(n.get("startedAt") or ""))
                if n.get("type") == "Pod" and n.get("phase") in ("Failed", "Error")
            ]
            if bad:
                name = wf["metadata"]["name"]
                out.append(f"Job/{r.get('name')}'s Workflow {name} steps: {', '.join(bad[-3:])}")
    return "".join(f"; {line}" for line in out)[:600]


def hook_results(app: dict[str, Any]) -> list[dict[str, Any]]:
    op = (app.get("status") or {}).get("operationState") or {}
    return [
        {k: r.get(k) for k in ("kind", "namespace", "name", "hookType", "hookPhase", "message")}
        for r in (op.get("syncResult") or {}).get("resources") or []
        if r.get("hookType")
    ]


def wait(
    apps: tuple[str, ...],
    timeout: float,
    revision: str | None = None,
    quiet: bool = False,
    stuck: Callable[[], str | None] | None = None,
) -> dict[str, str]:
    """Block until every app is done (at revision, if given); returns their last states.
    Prints each poll unless quiet (then only a change of state). `stuck`, called each poll,
    names what will never let the sync finish (SyncFailed with its message), e.g. a pod that
    cannot pull its image: Argo CD itself waits for such a hook until its retries run out."""
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    printed = ""
    while True:
        all_done = True
        for name in apps:
            try:
                app = kube.get("-n", "argocd", "application", name)
                done, desc = state(app)
                rev = str(((app.get("status") or {}).get("sync") or {}).get("revision", ""))
                if revision and rev != revision:
                    done, desc = False, f"{desc} (waiting for revision {revision[:8]})"
                why = failure(app, revision)
                if why and not done:
                    raise SyncFailed(f"Application {name}: sync failed: {why}{hook_steps(app)}")
            except SyncFailed:
                raise
            except kube.KubeError as exc:
                done, desc = False, f"absent ({str(exc)[-120:]})"
            all_done &= done
            last[name] = desc
        line = "  ".join(f"{n}: {d}" for n, d in last.items())
        if not quiet or line != printed:
            print(time.strftime("%H:%M:%S ") + line, flush=True)
            printed = line
        if all_done:
            return last
        blocked = stuck() if stuck else None
        if blocked:
            raise SyncFailed(
                f"the sync of {revision or 'the last commit'} cannot finish: {blocked}"
            )
        if time.monotonic() >= deadline:
            raise kube.KubeError(f"Applications not Synced/Healthy/Succeeded after {timeout:.0f}s")
        time.sleep(3)


def terminate_running(apps: tuple[str, ...]) -> list[str]:
    """Terminate each app's operation that still runs, as a user does with TERMINATE once the
    failure is read: a failed sync waiting for its next retry, or one whose hook can never
    finish (an image that was never pushed). Argo CD takes a new commit only when the operation
    ends, so without this the next push waits for retries and hook deadlines (minutes). Returns
    "app: message" for each one terminated. The same update `argocd app terminate-op` makes."""
    terminated = []
    for name in apps:
        op = (kube.get("-n", "argocd", "application", name).get("status") or {}).get(
            "operationState"
        ) or {}
        if op.get("phase") != "Running":
            continue
        patch = {"status": {"operationState": {"phase": "Terminating"}}}
        kube.kubectl("-n", "argocd", "patch", "application", name, "--type", "merge",
                     "-p", json.dumps(patch))  # fmt: skip
        terminated.append(f"{name}: {str(op.get('message') or 'running')[:160]}")
    return terminated
