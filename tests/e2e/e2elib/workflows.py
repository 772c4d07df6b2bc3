"""Argo Workflows on the e2e cluster: submit a Workflow from a CronWorkflow, wait, read steps."""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from . import kube

SUBMITTED_LABEL = "esp-e2e/submitted"
# The label the isolation demo's PostSync hook Job puts on the Workflow it submits: its own uid
# (base/isolation-demo/hooks/isolation-demo-sync.yaml).
SUBMITTER_LABEL = "isolation-demo.io/sync-hook-job"


def submit_from_cron(ns: str, cron: str, params: dict[str, str] | None = None) -> str:
    """Create a Workflow from a CronWorkflow's workflowSpec, as `argo submit --from cronwf/X`."""
    cw = kube.get("-n", ns, "cronworkflow", cron)
    spec = dict(cw["spec"]["workflowSpec"])
    if params:
        spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in params.items()]}
    meta = cw["spec"].get("workflowMetadata") or {}
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{cron}-e2e-",
            "namespace": ns,
            "labels": {**(meta.get("labels") or {}), SUBMITTED_LABEL: "true"},
        },
        "spec": spec,
    }
    out = kube.kubectl("create", "-f", "-", "-o", "name", stdin=json.dumps(wf))
    return out.strip().split("/")[-1]


def get(ns: str, name: str) -> dict[str, Any]:
    return kube.get("-n", ns, "workflow", name)


def phase(wf: dict[str, Any]) -> str:
    return str((wf.get("status") or {}).get("phase") or "Pending")


class Stuck(Exception):
    """A pod of the Workflow cannot start (not a KubeError: kube.wait_for retries those)."""


def _pending_too_long(ns: str, workflow: str, seconds: float) -> str | None:
    """Why a pod of the workflow has been Pending for more than `seconds` (its last warning
    event), or None. Pods start within seconds here, even on a loaded node; one still Pending
    after 45 s (a Secret it cannot mount, a missing ServiceAccount, an image not loaded) never
    starts."""
    now = time.time()
    for pod in pods(ns, workflow):
        created = _ts(pod["metadata"].get("creationTimestamp"))
        if (pod.get("status") or {}).get("phase") != "Pending" or created is None:
            continue
        if now - created > seconds:
            selector = f"involvedObject.name={pod['metadata']['name']},type=Warning"
            events = kube.items("-n", ns, "events", "--field-selector", selector)
            last = events[-1].get("message") if events else "no warning event"
            return f"pod {pod['metadata']['name']} Pending for {now - created:.0f}s: {last}"
    return None


def wait_done(ns: str, name: str, timeout: float, stuck_after: float = 45) -> dict[str, Any]:
    """The Workflow once it has finished (any phase); KubeError after timeout, Stuck as soon
    as one of its pods has been Pending for `stuck_after` seconds."""

    def probe() -> dict[str, Any] | None:
        wf = get(ns, name)
        if phase(wf) in ("Succeeded", "Failed", "Error"):
            return wf
        why = _pending_too_long(ns, name, stuck_after)
        if why:
            raise Stuck(f"workflow {ns}/{name} cannot finish: {why}")
        return None

    result: dict[str, Any] = kube.wait_for(f"workflow {ns}/{name}", timeout, probe)
    return result


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass
class Step:
    template: str
    phase: str
    seconds: float | None
    pod: str
    exit_code: str | None


def steps(wf: dict[str, Any], kind: str = "Pod") -> list[Step]:
    """Pod nodes of a Workflow, in start order (retries appear as separate steps); with
    kind="Container", the containers of its containerSet pods (template: the container name)."""
    out = []
    for node in ((wf.get("status") or {}).get("nodes") or {}).values():
        if node.get("type") != kind:
            continue
        start, end = _ts(node.get("startedAt")), _ts(node.get("finishedAt"))
        outputs = node.get("outputs") or {}
        out.append(
            Step(
                template=str(
                    node.get("displayName") if kind == "Container" else node.get("templateName")
                ),
                phase=str(node.get("phase")),
                seconds=(end - start) if start is not None and end is not None else None,
                pod=str(node.get("id")),
                exit_code=outputs.get("exitCode"),
            )
        )
    return sorted(out, key=lambda s: s.pod)


def pods(ns: str, workflow: str) -> list[dict[str, Any]]:
    return kube.items("-n", ns, "pods", "-l", f"workflows.argoproj.io/workflow={workflow}")


def container_runtime(container_id: str) -> str:
    """The containerd runtime that really ran a container (io.containerd.runsc.v1 / runc.v2)."""
    cid = container_id.split("://", 1)[-1]
    cache = os.environ.get("E2E_CACHE", "/var/cache/esp-e2e")
    ctr = os.path.join(os.environ.get("CONTAINERD_BIN_DIR") or f"{cache}/bin/containerd", "ctr")
    import subprocess

    proc = subprocess.run(
        kube.in_ns([ctr, "--address", "/run/containerd/containerd.sock", "-n", "k8s.io",
                    "containers", "info", cid]),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return f"unknown ({proc.stderr.strip()[:80]})"
    return str((json.loads(proc.stdout).get("Runtime") or {}).get("Name"))


def submitted_by_job(ns: str, job: str) -> tuple[str, list[dict[str, Any]]]:
    """The uid of Job NS/JOB and the Workflows it submitted: the isolation demo's PostSync hook
    labels its Workflow with its own uid (SUBMITTER_LABEL), so each sync's run is found even
    when several exist."""
    uid = str(kube.get("-n", ns, "job", job)["metadata"]["uid"])
    return uid, kube.items("-n", ns, "workflows", "-l", f"{SUBMITTER_LABEL}={uid}")


def pod_runtimes(pod: dict[str, Any]) -> dict[str, str]:
    """container name -> containerd runtime, for every container (init ones too) of a pod."""
    status = pod.get("status") or {}
    out = {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if cs.get("containerID"):
            out[str(cs["name"])] = container_runtime(str(cs["containerID"]))
    return out
