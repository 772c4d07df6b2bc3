"""The e2e checks, each a row of the report, on the deployed cluster: prints each row, then the
summary table, and writes the JSON report (E2E_REPORT, default $TMPDIR/esp-e2e-report.json).

    python -m e2elib check [WORD...]     only the rows whose name contains a WORD; exit 1 unless
                                         every row passed

Every row states what was observed on the cluster; a row that could not run says why and is
never counted as passed.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import re
import select
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    argocd,
    delivery,
    gitops,
    independent,
    kube,
    netprobe,
    pglock,
    phases,
    report,
    workflows,
)

PIPELINE_NS = "event-pipeline"
DEMO_NS = "isolation-demo"
# The isolation demo's PostSync hook Job (base/isolation-demo/hooks/isolation-demo-sync.yaml).
HOOK_JOB = "isolation-demo-sync"
RUNSC = "io.containerd.runsc.v1"
RUNC = "io.containerd.runc.v2"
STATE = Path(os.environ.get("E2E_STATE", "/run/esp-e2e"))
REPO_ROOT = Path(__file__).resolve().parents[3]
# The fault rows load a batch this big: its load takes long enough to stop it mid-transaction.
FAULT_EVENTS = int(os.environ.get("E2E_FAULT_EVENTS", "1000000"))
SHARDS = 4
LATENCY_RUNS = int(os.environ.get("E2E_LATENCY_RUNS", "5"))


class NotRun(Exception):
    """The check could not run (a prerequisite is missing); the message says why."""


class Session:
    """What the checks share: the report, the batches loaded, results of earlier checks."""

    def __init__(self, rep: report.Report) -> None:
        self.rep = rep
        self.batches: dict[str, tuple[int, int]] = {}  # batch id -> (count, users)
        self.passed: set[str] = set()
        # (overlay, shards) -> phase table
        self.latency: dict[tuple[str, int], list[tuple[str, float, float, float]]] = {}
        self.prune: dict[str, tuple[str, bool, float]] = {}  # step -> (commit, as wanted, s)

    def defaults(self) -> tuple[int, int]:
        wt = kube.get("-n", PIPELINE_NS, "workflowtemplate", "event-pipeline")
        params = {p["name"]: p.get("value") for p in wt["spec"]["arguments"]["parameters"]}
        return int(params["count"]), int(params["users"])


def _run_pipeline(
    s: Session, params: dict[str, str] | None, timeout: float = 1200
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = workflows.submit_from_cron(PIPELINE_NS, "event-pipeline", params)
    count, users = s.defaults()
    if params:
        count, users = int(params.get("count", count)), int(params.get("users", users))
    wf = workflows.wait_done(PIPELINE_NS, name, timeout)
    if workflows.phase(wf) == "Succeeded":
        s.batches[name] = (count, users)
    return wf, workflows.pods(PIPELINE_NS, name)


def _step_summary(wf: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    runtimes = {p["metadata"]["name"]: workflows.pod_runtimes(p) for p in pods}
    classes = {p["metadata"]["name"]: p["spec"].get("runtimeClassName") for p in pods}
    return {
        "workflow": wf["metadata"]["name"],
        "phase": workflows.phase(wf),
        "steps": [vars(st) for st in workflows.steps(wf)],
        "runtimeClassName": classes,
        "containerd_runtime": runtimes,
    }


def _batch_matches(batch: str, count: int, users: int) -> tuple[bool, str]:
    expected = independent.totals(batch, count, users)
    rows = kube.psql(
        "SELECT user_id, total_session_duration FROM batch_user_totals WHERE batch_id = :'b'",
        b=batch,
    )
    stored = Counter({r[0]: int(r[1]) for r in rows})
    ok = stored == expected and sum(expected.values()) > 0
    return ok, (
        f"{len(stored)} users, total {sum(stored.values()):,} s stored vs "
        f"{len(expected)} users, {sum(expected.values()):,} s recomputed"
    )


def pipeline(s: Session, overlay: str) -> report.Row:
    expect = RUNSC if overlay == "minikube" else RUNC
    wf, pods = _run_pipeline(s, None)
    details = _step_summary(wf, pods)
    if workflows.phase(wf) != "Succeeded":
        msg = (wf.get("status") or {}).get("message", "")
        return report.Row("", "failed", f"{wf['metadata']['name']} {workflows.phase(wf)}: {msg}",
                          details=details)  # fmt: skip
    seen = {rt for p in details["containerd_runtime"].values() for rt in p.values()}
    count, users = s.batches[wf["metadata"]["name"]]
    ok, totals = _batch_matches(wf["metadata"]["name"], count, users)
    details["totals"] = totals
    pods_run = workflows.steps(wf)
    containers = workflows.steps(wf, "Container")
    durations = ", ".join(f"{st.template} {st.seconds:.0f}s" for st in pods_run + containers
                          if st.seconds is not None)  # fmt: skip
    # The mission's two steps, each its own container, in one pod.
    shape = sorted((st.template, st.phase) for st in containers)
    two_steps = [st.template for st in pods_run] == ["batch"] and shape == [
        ("generate", "Succeeded"),
        ("main", "Succeeded"),
    ]
    summary = (
        f"{wf['metadata']['name']} Succeeded ({durations}); containers ran under "
        f"{', '.join(sorted(seen))}; batch_user_totals {'==' if ok else '!='} independent "
        f"computation ({totals})"
    )
    if not two_steps:
        summary += (
            f"; NOT one batch pod running generate and main: pods "
            f"{[st.template for st in pods_run]}, containers {shape}"
        )
    good = ok and seen == {expect} and two_steps
    return report.Row("", "passed" if good else "failed", summary, details=details)


def check_shards(s: Session) -> report.Row:
    """`shards: 4`: four shard pods (containerSet: generate then stage), then one commit."""
    count, users = s.defaults()
    wf, pods = _run_pipeline(s, {"shards": str(SHARDS), "count": str(count)})
    name = wf["metadata"]["name"]
    details = _step_summary(wf, pods)
    steps = workflows.steps(wf)
    if workflows.phase(wf) != "Succeeded":
        msg = (wf.get("status") or {}).get("message", "")
        return report.Row("", "failed", f"{name} {workflows.phase(wf)}: {msg}", details=details)
    shard_pods = sorted({st.pod for st in steps if st.template == "shard"})
    seen = {rt for p in details["containerd_runtime"].values() for rt in p.values()}
    row = kube.psql("SELECT shards, valid_events FROM batches WHERE batch_id = :'b'", b=name)
    ok, totals = _batch_matches(name, count, users)
    good = ok and row == [[str(SHARDS), str(count)]] and len(shard_pods) >= SHARDS
    durations = ", ".join(f"{st.template} {st.seconds:.0f}s" for st in steps
                          if st.seconds is not None)  # fmt: skip
    return report.Row("", "passed" if good else "failed",
                      f"{name} Succeeded: {len(shard_pods)} shard pods + commit ({durations}), "
                      f"under {', '.join(sorted(seen))}; batches shards/events {row}; {totals}",
                      details=details)  # fmt: skip


def _ts(value: str | None) -> float | None:
    """An RFC 3339 timestamp of Argo CD's status as epoch seconds."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def check_sync(s: Session) -> report.Row:
    """Sync from empty, as Argo CD recorded it: each Application's first deployment (history)
    in wave order, its last operation (hooks included) Succeeded."""
    apps = {n: kube.get("-n", "argocd", "application", n) for n in argocd.APPS}
    created = _ts(apps["root"]["metadata"]["creationTimestamp"])
    states, firsts = {}, {}
    for name, app in apps.items():
        done, desc = argocd.state(app)
        states[name] = desc if done else f"NOT DONE {desc}"
        history = (app.get("status") or {}).get("history") or []
        if history:
            firsts[name] = (
                _ts(history[0].get("deployStartedAt")),
                _ts(history[0].get("deployedAt")),
            )
    hooks = argocd.hook_results(apps["event-pipeline"])
    ok = all(not d.startswith("NOT") for d in states.values()) and bool(hooks)
    order = ""
    if created and set(firsts) == set(argocd.APPS):
        aw_done, ep_start = firsts["argo-workflows"][1], firsts["event-pipeline"][0]
        in_order = bool(aw_done and ep_start and ep_start >= aw_done)
        ok &= in_order
        order = (
            "first syncs from root applied: "
            + ", ".join(
                f"{n} +{(b or created) - created:.0f}..+{(e or created) - created:.0f}s"
                for n, (b, e) in firsts.items()
            )
            + (
                " (event-pipeline started after argo-workflows was deployed)"
                if in_order
                else " (NOT in wave order: event-pipeline began before argo-workflows was done)"
            )
        )
    else:
        ok = False
        order = f"no first-sync history for {sorted(set(argocd.APPS) - set(firsts))}"
    hook_line = ", ".join(f"{h['name']} {h['hookPhase']}" for h in hooks)
    summary = (
        f"{order}; " + "; ".join(f"{n} {d}" for n, d in states.items()) + f"; hooks: {hook_line}"
    )
    return report.Row(
        "",
        "passed" if ok else "failed",
        summary,
        details={"apps": states, "hooks": hooks, "first_syncs": firsts},
    )


def check_cron(s: Session) -> report.Row:
    def fired() -> list[dict[str, Any]]:
        wfs = kube.items("-n", PIPELINE_NS, "workflows",
                         "-l", f"workflows.argoproj.io/cron-workflow=event-pipeline,"
                               f"!{workflows.SUBMITTED_LABEL}")  # fmt: skip
        return [w for w in wfs if workflows.phase(w) == "Succeeded"]

    done = kube.wait_for("a scheduled event-pipeline run to succeed", 420, fired, interval=10)
    names = sorted(w["metadata"]["name"] for w in done)
    count, users = s.defaults()
    for n in names:
        s.batches[n] = (count, users)
    cw = kube.get("-n", PIPELINE_NS, "cronworkflow", "event-pipeline")
    sched = cw["spec"].get("schedules")
    return report.Row("", "passed", f"{len(names)} scheduled run(s) Succeeded ({', '.join(names)});"
                      f" schedules {sched}", details={"workflows": names})  # fmt: skip


def check_pod_security(s: Session) -> report.Row:
    ns = kube.get("namespace", PIPELINE_NS)["metadata"]["labels"]
    if ns.get("pod-security.kubernetes.io/enforce") != "restricted":
        return report.Row("", "failed", f"{PIPELINE_NS} does not enforce restricted: {ns}")
    pods = kube.items("-n", PIPELINE_NS, "pods", "-l", "workflows.argoproj.io/workflow")
    if not pods:
        raise NotRun("no workflow pod left in event-pipeline (podGC) to look at")
    warnings, containers = {}, set()
    for i, pod in enumerate(pods):
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            containers.add(c["name"])
        copy = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"psa-dry-run-{i}",
                "namespace": PIPELINE_NS,
                "labels": pod["metadata"].get("labels", {}),
            },
            "spec": {k: v for k, v in pod["spec"].items() if k not in ("nodeName",)},
        }
        proc = subprocess.run(
            kube.kubectl_argv("create", "--dry-run=server", "-f", "-"),
            input=json.dumps(copy), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or "warning" in proc.stderr.lower():
            warnings[pod["metadata"]["name"]] = proc.stderr.strip()
    ok = not warnings and {"init", "wait", "main"} <= containers
    summary = (
        f"{len(pods)} workflow pods admitted under enforce=restricted (containers: "
        f"{', '.join(sorted(containers))}); server dry-run of each: "
        f"{'no warnings' if not warnings else f'{len(warnings)} with warnings'}"
    )
    return report.Row("", "passed" if ok else "failed", summary, details={"warnings": warnings})


def _node_markers(run_id: str) -> list[str]:
    out = subprocess.run(
        kube.in_ns(["ls", "-1", "/var/lib/isolation-demo"]),
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return [f for f in out.split() if run_id in f]


def probe_runtimes(pods: list[dict[str, Any]]) -> dict[str, str]:
    """variant -> containerd runtime of its probe pod's main container."""
    out = {}
    for p in pods:
        variant = (p["metadata"].get("labels") or {}).get("isolation-demo.io/variant")
        if variant:
            out[str(variant)] = workflows.pod_runtimes(p).get("main", "no main container")
    return out


def isolation_verdict(
    overlay: str,
    by_variant: dict[str, list[str]],
    markers: list[str],
    runtimes: dict[str, str],
) -> tuple[bool, list[str]]:
    """Whether a finished isolation run shows what the overlay intends, and one line per
    variant: the containerd runtime of its probe, the kernel it saw, whether its write reached
    the node (the markers found there) and what the verifier stored (rows by variant:
    variant, runtime, sandbox, kernel, node kernel, write_ok, reached_host, contained)."""
    gvisor = overlay == "minikube"
    reached = {v: any(m.endswith(f"-{v}.json") for m in markers) for v in "ABC"}
    expect_runtime = {"A": RUNC, "B": RUNSC if gvisor else RUNC, "C": RUNSC if gvisor else RUNC}
    table = []
    for v in "ABC":
        r = by_variant.get(v)
        runtime = {RUNC: "runc", RUNSC: "runsc"}.get(runtimes.get(v, ""), runtimes.get(v, "?"))
        table.append(
            f"{v}: {runtime}, kernel {r[3] if r else '?'}, "
            f"write reached node: {'yes' if reached[v] else 'no'}"
            f", stored reached_host={r[6] if r else '?'} contained={r[7] if r else '?'}"
        )
    if gvisor:
        expect_reached = {"A": True, "B": True, "C": False}
        node_kernel = by_variant["A"][4] if "A" in by_variant else None
        kernels_ok = (
            by_variant.get("A", [None] * 5)[3] == node_kernel
            and node_kernel is not None
            and all(by_variant.get(v, [None] * 5)[3] not in (None, node_kernel) for v in "BC")
        )
    else:
        expect_reached = {"A": True, "B": True, "C": True}
        kernels_ok = True
    stored_ok = all(
        by_variant.get(v) is not None and (by_variant[v][6] == "t") == reached[v] for v in "ABC"
    )
    ok = reached == expect_reached and stored_ok and kernels_ok and runtimes == expect_runtime
    return ok, table


def _isolation_run(wf: dict[str, Any], run_id: str, overlay: str) -> report.Row:
    """A finished run of the isolation demo's WorkflowTemplate, judged from the cluster: it
    Succeeded, its probes ran on the overlay's runtimes, and the node directory and the rows
    stored under RUN_ID show what gVisor does (isolation_verdict)."""
    name = wf["metadata"]["name"]
    details: dict[str, Any] = {"workflow": name, "run_id": run_id, "phase": workflows.phase(wf)}
    details["steps"] = [vars(st) for st in workflows.steps(wf)]
    pods = workflows.pods(DEMO_NS, name)
    details["containerd_runtime"] = {p["metadata"]["name"]: workflows.pod_runtimes(p) for p in pods}
    markers = _node_markers(run_id)
    details["node_directory"] = markers
    rows = kube.psql(
        "SELECT variant, runtime, sandbox, kernel_release, node_kernel_release, write_ok, "
        "reached_host, contained FROM isolation_results WHERE run_id = :'r' ORDER BY variant",
        r=run_id,
    )
    details["stored"] = rows
    if workflows.phase(wf) != "Succeeded":
        failed = [st.template for st in workflows.steps(wf) if st.phase != "Succeeded"]
        msg = (wf.get("status") or {}).get("message", "")
        return report.Row("", "failed", f"{name} {workflows.phase(wf)} (steps not succeeded: "
                          f"{', '.join(failed)}): {msg}", details=details)  # fmt: skip
    ok, table = isolation_verdict(overlay, {r[0]: r for r in rows}, markers, probe_runtimes(pods))
    details["table"] = table
    return report.Row("", "passed" if ok else "failed", "; ".join(table), details=details)


def check_isolation(s: Session, overlay: str) -> report.Row:
    name = workflows.submit_from_cron(DEMO_NS, "isolation-demo")
    # Its run id is the template's default, the workflow's own name.
    return _isolation_run(workflows.wait_done(DEMO_NS, name, 600), name, overlay)


def check_hooks(s: Session, overlay: str) -> report.Row:
    """The isolation demo's PostSync hook: Argo CD ran the Job in the last sync and it
    Succeeded; the one Workflow that Job submitted (labelled with its uid) is judged as
    check_isolation judges a run: it Succeeded, its probes ran on the overlay's runtimes, and
    the node and the stored rows under its name show what gVisor does."""
    try:  # a sync still under way (its hook running) is waited for
        argocd.wait(("event-pipeline",), gitops.SYNC_TIMEOUT, quiet=True)
    except argocd.SyncFailed as exc:
        return report.Row("", "failed", str(exc)[:600])
    hooks = argocd.hook_results(kube.get("-n", "argocd", "application", "event-pipeline"))
    hook_line = ", ".join(f"{h['kind']}/{h['name']} {h['hookPhase']}" for h in hooks)
    details: dict[str, Any] = {"hooks": hooks}
    mine = [h for h in hooks if (h["kind"], h["name"]) == ("Job", HOOK_JOB)]
    if not mine or mine[0]["hookPhase"] != "Succeeded":
        return report.Row("", "failed", f"the last sync's hooks: {hook_line or 'none'} (expected "
                          f"Job/{HOOK_JOB} Succeeded)", details=details)  # fmt: skip
    uid, submitted = workflows.submitted_by_job(DEMO_NS, HOOK_JOB)
    details["job_uid"] = uid
    details["submitted"] = [w["metadata"]["name"] for w in submitted]
    if len(submitted) != 1:
        # Argo deletes a Workflow 2 h after success (ttlStrategy) or once 10 newer ones
        # completed (the controller's retentionPolicy).
        return report.Row("", "failed", f"Job {HOOK_JOB} (uid {uid}) submitted "
                          f"{len(submitted)} Workflow(s) still there, expected 1",
                          details=details)  # fmt: skip
    name = submitted[0]["metadata"]["name"]
    wf = workflows.wait_done(DEMO_NS, name, 600)
    if workflows.phase(wf) == "Succeeded" and not any(
        probe_runtimes(workflows.pods(DEMO_NS, name))
    ):
        # podGC deletes them 30 min after the Workflow succeeded.
        raise NotRun(f"the probe pods of {name} are gone (podGC, 30 min after success)")
    row = _isolation_run(wf, name, overlay)
    row.details = {**details, **row.details}
    row.summary = (
        f"Job/{HOOK_JOB} Succeeded; its Workflow {name} {workflows.phase(wf)}: {row.summary}"
    )
    return row


def _listener_on_443() -> str:
    """A Service on port 443 in namespace default that is not the API server; its ClusterIP."""
    ns, name = "default", "e2e-not-the-apiserver"
    pod = netprobe.pod_manifest(
        ns, name, {"app": name}, ["python3", "-m", "http.server", "8443"], restart="Always"
    )
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 443, "targetPort": 8443}]},
    }
    kube.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": [pod, svc]}))  # fmt: skip
    kube.kubectl("-n", ns, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s",
                 timeout=150)  # fmt: skip
    return str(kube.get("-n", ns, "service", name)["spec"]["clusterIP"])


def check_network_policies(s: Session) -> report.Row:
    pg = netprobe.pod_ip(PIPELINE_NS, "app.kubernetes.io/name=postgres")
    argo_server = netprobe.pod_ip("argo", "app=argo-server")
    other443 = _listener_on_443()
    client = {"event-pipeline.io/postgres-client": "true"}
    wf = {"workflows.argoproj.io/workflow": "e2e-netpol"}
    verifier = {"app.kubernetes.io/name": "isolation-verify", **client}
    probe = {"app.kubernetes.io/name": "isolation-probe"}
    hook = {
        "app.kubernetes.io/name": "isolation-demo-sync",
        "app.kubernetes.io/component": "sync-hook",
    }
    cases = [
        # (policy, namespace, labels, host, port, must connect)
        ("postgres-ingress+client-egress", PIPELINE_NS, client,
         "postgres.event-pipeline.svc", 5432, True),
        ("default-deny (another pod)", PIPELINE_NS, {}, pg, 5432, False),
        ("postgres-ingress (another namespace)", "default", client, pg, 5432, False),
        ("postgres-client-egress (another port)", PIPELINE_NS, client, argo_server, 2746, False),
        ("workflow-apiserver-egress (API server)", PIPELINE_NS, wf, "10.96.0.1", 443, True),
        ("workflow-apiserver-egress (443, not the API server)", PIPELINE_NS, wf, other443, 443,
         False),
        ("verifier-egress", DEMO_NS, verifier, "postgres.event-pipeline.svc", 5432, True),
        ("isolation default-deny (probe to postgres)", DEMO_NS, probe, pg, 5432, False),
        ("isolation workflow-apiserver-egress (API server)", DEMO_NS, wf, "10.96.0.1", 443, True),
        ("isolation workflow-apiserver-egress (443, not the API server)", DEMO_NS, wf, other443,
         443, False),
        ("sync-hook-apiserver-egress (API server)", DEMO_NS, hook, "10.96.0.1", 443, True),
        ("sync-hook-apiserver-egress (443, not the API server)", DEMO_NS, hook, other443, 443,
         False),
        ("sync-hook-apiserver-egress (hook to postgres)", DEMO_NS, hook, pg, 5432, False),
    ]  # fmt: skip
    # The probes are independent pods: run them side by side (each takes ~5-30 s).
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        seen_all = list(pool.map(lambda c: netprobe.connect(c[1], c[2], c[3], c[4], c[5]), cases))
    results, bad = [], []
    for (policy, ns, _labels, host, port, allow), seen in zip(cases, seen_all, strict=True):
        connected = seen.startswith("connected")
        tries = seen.rsplit("(attempt ", 1)[-1].rstrip(")")
        line = (
            f"{policy}: {ns} -> {host}:{port} {'connected' if connected else 'blocked'}"
            + (f" (attempt {tries})")
            + ("" if connected == allow else f" (MUST {'connect' if allow else 'be blocked'})")
        )
        results.append(line)
        if connected != allow:
            bad.append(line)
    summary = f"{len(cases) - len(bad)}/{len(cases)} as the policies say" + (
        f"; wrong: {'; '.join(bad)}" if bad else ""
    )
    return report.Row("", "failed" if bad else "passed", summary, details={"cases": results})


def _argo_api(path: str, token: str | None, body: str | None = None) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of argo-server's API (its pod IP, from the node)."""
    url = f"https://{netprobe.pod_ip('argo', 'app=argo-server')}:2746{path}"
    argv = ["curl", "-sk", "--max-time", "30", "-w", "\n%{http_code}", url]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        argv += ["-X", "POST", "-H", "Content-Type: application/json", "--data", body]
    out = subprocess.run(kube.in_ns(argv), capture_output=True, text=True, timeout=60).stdout
    text, _, code = out.rpartition("\n")
    try:
        doc = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        doc = {"raw": text[:200]}
    return int(code or 0), doc if isinstance(doc, dict) else {"raw": str(doc)[:200]}


def check_argo_server_auth(s: Session) -> report.Row:
    """argo-server takes the caller's own token (--auth-mode client only): none -> 401; the
    workflows-ui token lists and submits (server dry run) in event-pipeline, and is refused
    in namespace argo."""
    token = kube.kubectl("-n", PIPELINE_NS, "create", "token", "workflows-ui", "--duration=10m")
    token = token.strip()
    anon, _ = _argo_api(f"/api/v1/workflows/{PIPELINE_NS}", None)
    listed, doc = _argo_api(f"/api/v1/workflows/{PIPELINE_NS}", token)
    names = [w["metadata"]["name"] for w in doc.get("items") or []]
    elsewhere, _ = _argo_api("/api/v1/workflows/argo", token)
    submit = {
        "namespace": PIPELINE_NS,
        "resourceKind": "CronWorkflow",
        "resourceName": "event-pipeline",
        "submitOptions": {"serverDryRun": True},
    }
    submitted, wf = _argo_api(f"/api/v1/workflows/{PIPELINE_NS}/submit", token, json.dumps(submit))
    meta = wf.get("metadata") or {}
    dry_name = meta.get("name") or meta.get("generateName")
    ok = anon == 401 and listed == 200 and bool(names) and elsewhere == 403 and submitted == 200
    return report.Row(
        "",
        "passed" if ok else "failed",
        f"no token: HTTP {anon}; workflows-ui token: list {PIPELINE_NS} HTTP {listed} "
        f"({len(names)} workflows), list argo HTTP {elsewhere}, submit from "
        f"cronwf/event-pipeline (server dry run) HTTP {submitted} ({dry_name})",
    )


def _browser(ui: str) -> report.Row:
    """Run e2elib.browser for one UI inside the cluster's namespaces; its steps are the row."""
    shots = report.report_path().with_name(report.report_path().stem + "-screenshots")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = kube.in_ns([sys.executable, "-m", "e2elib.browser", ui, "--shots", str(shots)])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    sys.stderr.write(proc.stderr[-4000:])
    try:
        got = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return report.Row("", "failed", f"e2elib.browser {ui} exited {proc.returncode}: {last}")
    steps = "; ".join(f"{name}: {seen}" for name, seen in got["steps"] if name != "failed")
    problems = [got["error"]] if got["error"] else []
    problems += got["console"][:5]
    summary = steps + (f"; FAILED: {' | '.join(problems)}" if problems else "")
    if got.get("network_changed"):
        summary += (
            f"; {got['network_changed']} request(s) aborted by net::ERR_NETWORK_CHANGED (new pod"
            " interfaces in the node's network namespace, where the browser runs)"
        )
    return report.Row(
        "",
        "passed" if got["ok"] and proc.returncode == 0 else "failed",
        f"{summary} ({len(got['shots'])} screenshots in {shots})",
        details={"screenshots": got["shots"], "console": got["console"], "steps": got["steps"]},
    )


def check_argocd_ui(s: Session) -> report.Row:
    """Argo CD's web UI in Chromium: log in as admin, the three Applications Synced/Healthy,
    event-pipeline's resource tree, SYNC -> SYNCHRONIZE, the operation Succeeded."""
    return _browser("argocd")


def check_workflows_ui(s: Session) -> report.Row:
    """Argo Workflows' web UI in Chromium: nothing without a token; with the workflows-ui
    token the CronWorkflow's runs, a run's green steps and the aggregator's log."""
    return _browser("workflows")


def _batch_pods(workflow: str) -> list[dict[str, Any]]:
    return [p for p in workflows.pods(PIPELINE_NS, workflow) if "-batch-" in p["metadata"]["name"]]


def _running_loader(workflow: str) -> tuple[str, str, str] | None:
    """(pod name, pod IP, pod UID) of the workflow's running batch pod."""
    for p in _batch_pods(workflow):
        st = p.get("status") or {}
        if st.get("phase") == "Running" and st.get("podIP"):
            return str(p["metadata"]["name"]), str(st["podIP"]), str(p["metadata"]["uid"])
    return None


def _fault_mid_load(s: Session, fault: Callable[[str], str]) -> report.Row:
    """Stop a load inside its transaction, apply `fault` (given the loader's pod name; it
    returns what it did), then expect the retries to load the batch exactly once.

    `rejected_lines` is locked first (pglock), so the load stops at a known point: its
    `batches` row inserted and its totals COPYed, uncommitted, waiting in COPY rejected_lines."""
    count = str(FAULT_EVENTS)
    _, users = s.defaults()
    with pglock.TableLock("rejected_lines"):
        name = workflows.submit_from_cron(PIPELINE_NS, "event-pipeline", {"count": count})
        loader = kube.wait_for("the batch pod to run", 900, lambda: _running_loader(name), 1)
        waiting = pglock.wait_for_waiting_loader("rejected_lines", loader[1], 300)
        did = fault(loader[0])
    wf = workflows.wait_done(PIPELINE_NS, name, 1200)
    kube.kubectl("-n", PIPELINE_NS, "wait", "--for=condition=Ready", "pod/postgres-0",
                 "--timeout=300s", timeout=330)  # fmt: skip
    tries = [st for st in workflows.steps(wf) if st.template == "batch"]
    # Argo v4 re-creates a deleted pod under the same node (same name, new UID) instead of a
    # retry node: count the batch pods that ran, by UID, as attempts too.
    uids = {loader[2]} | {str(p["metadata"]["uid"]) for p in _batch_pods(name)}
    runs = max(len(tries), len(uids))
    loaded = kube.psql(
        "SELECT count(*), coalesce(sum(valid_events), 0) FROM batches WHERE batch_id = :'b'",
        b=name,
    )
    ok_db = loaded == [["1", count]]
    ok, totals = _batch_matches(name, int(count), users) if ok_db else (False, "not loaded")
    if workflows.phase(wf) == "Succeeded":
        s.batches[name] = (int(count), users)
    good = workflows.phase(wf) == "Succeeded" and runs >= 2 and ok
    attempts = ", ".join(f"{st.phase}" + (f" exit {st.exit_code}" if st.exit_code else "")
                         for st in tries)  # fmt: skip
    summary = (
        f"{did} while its load of {name} waited in `{waiting[2]}` (backend {waiting[0]} from "
        f"{waiting[1]}, transaction open); {workflows.phase(wf)}: the load ran in {len(uids)} "
        f"pod(s) over {len(tries)} retry node(s) ({attempts}); batches rows/events {loaded}; "
        f"{totals}"
    )
    return report.Row("", "passed" if good else "failed", summary)


def check_fault_batch_pod(s: Session) -> report.Row:
    """Delete the batch pod inside its load's transaction."""

    def delete_loader(pod: str) -> str:
        kube.kubectl("-n", PIPELINE_NS, "delete", "pod", pod, "--wait=true", timeout=180)
        return f"pod {pod} deleted"

    return _fault_mid_load(s, delete_loader)


def check_fault_postgres(s: Session) -> report.Row:
    """Restart PostgreSQL (delete its pod; the StatefulSet brings it back on the same volume)
    inside a load's transaction."""

    def restart_postgres(pod: str) -> str:
        kube.kubectl("-n", PIPELINE_NS, "delete", "pod", "postgres-0", "--wait=true", timeout=180)
        return "postgres-0 deleted (restarted by its StatefulSet)"

    return _fault_mid_load(s, restart_postgres)


def _watch_until_done(name: str, timeout: float = 900) -> tuple[str, float]:
    """The Workflow's final phase and the moment a watch saw it (not the next poll)."""
    argv = kube.kubectl_argv("-n", PIPELINE_NS, "get", "workflow", name, "--watch",
                             "-o", 'jsonpath={.status.phase}{"\\n"}')  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            line = proc.stdout.readline() if ready else ""
            if ready and not line:
                raise kube.KubeError(f"the watch of workflow {name} ended (exit {proc.poll()})")
            if line.strip() in ("Succeeded", "Failed", "Error"):
                return line.strip(), time.time()
        raise kube.KubeError(f"workflow {name} not done after {timeout:.0f}s")
    finally:
        proc.kill()
        proc.wait()


def _timed_run(cd_log: Path, shards: int) -> tuple[str, list[phases.Phase]]:
    """One run from the CronWorkflow (default parameters but `shards`), its phases
    sub-second (e2elib/phases.py)."""
    params = {"shards": str(shards)} if shards != 1 else None
    name = workflows.submit_from_cron(PIPELINE_NS, "event-pipeline", params)
    submitted = time.time()  # the Workflow exists once `kubectl create` returned
    phase, done = _watch_until_done(name)
    if phase != "Succeeded":
        raise kube.KubeError(f"{name} {phase}")
    pods = workflows.pods(PIPELINE_NS, name)
    scheduled = {}
    for ev in kube.items("-n", PIPELINE_NS, "events", "--field-selector", "reason=Scheduled"):
        when = ev.get("eventTime") or ev.get("firstTimestamp")
        if when:
            scheduled[ev["involvedObject"]["name"]] = phases.timestamp(when)
    work = {
        (p["metadata"]["name"], c["name"]): phases.work_seconds(
            kube.kubectl("-n", PIPELINE_NS, "logs", p["metadata"]["name"], "-c", c["name"])
        )
        for p in pods
        for c in p["spec"]["containers"]
        if c["name"] != "wait"
    }
    cd = phases.parse_containerd(cd_log.read_text(errors="replace").splitlines())
    return name, phases.run_phases(submitted, done, pods, scheduled, cd, work)


def check_latency(s: Session, overlay: str, shards: int = 1) -> report.Row:
    """LATENCY_RUNS runs (default parameters but `shards`) one after the other: where the
    time goes, per phase (median, min, max), and submission to Succeeded."""
    cd_log = STATE / "logs" / "containerd.log"
    runs, names = [], []
    for _ in range(LATENCY_RUNS):
        name, ph = _timed_run(cd_log, shards)
        runs.append(ph)
        names.append(name)
    table = phases.summarize(runs)
    s.latency[overlay, shards] = table
    text = phases.format_table(table, len(runs))
    print(text, flush=True)
    whole = table[-1]
    runtime = "runsc" if overlay == "minikube" else "runc"
    top = sorted(table[:-1], key=lambda r: -r[1])[:3]
    return report.Row(
        "",
        "passed",
        f"{len(runs)} {'default runs' if shards == 1 else f'runs of {shards} shards'} under "
        f"{runtime}: submission to Succeeded median "
        f"{whole[1]:.2f}s (min {whole[2]:.2f}, max {whole[3]:.2f}); largest phases: "
        + ", ".join(f"{n} {m:.2f}s" for n, m, _, _ in top),
        details={"table": text, "workflows": names,
                 "runs": [[(p.name, round(p.seconds, 4)) for p in run] for run in runs]},
    )  # fmt: skip


def check_latency_ratio(s: Session) -> report.Row:
    """The latency rows' medians side by side, runsc vs runc, per phase and whole."""
    lines, parts, ratios = [], [], {}
    for shards in (1, SHARDS):
        g, r = s.latency.get(("minikube", shards)), s.latency.get(("no-gvisor", shards))
        if not g or not r:
            continue
        runc = {n: m for n, m, _, _ in r}
        run = "default run" if shards == 1 else f"{shards} shards"
        lines += [f"{run + ': phase':56}  {'runsc':>7}  {'runc':>7}  {'diff':>7}"]
        lines += [f"{n:56}  {m:7.3f}  {runc[n]:7.3f}  {m - runc[n]:+7.3f}" for n, m, _, _ in g
                  if n in runc]  # fmt: skip
        ratios[run] = g[-1][1] / r[-1][1]
        parts.append(f"{run}: runsc {g[-1][1]:.2f}s / runc {r[-1][1]:.2f}s = {ratios[run]:.2f}x")
    if "default run" not in ratios:
        raise NotRun("needs the default-run latency rows under runsc and under runc")
    print("\n".join(lines), flush=True)
    return report.Row(
        "",
        "passed",
        "submission to Succeeded, medians: " + "; ".join(parts),
        details={"table": "\n".join(lines), "ratio": ratios["default run"], "ratios": ratios},
    )


def _schedules() -> list[str]:
    return list(kube.get("-n", PIPELINE_NS, "cronworkflow", "event-pipeline")["spec"]["schedules"])


def _push_schedule(old: str, new: str, also: Callable[[Path], None]) -> tuple[str, float, float]:
    """Push a commit that changes the overlay's schedule patch from old to new (and makes the
    edit `also`); seconds from the push to the CronWorkflow showing it, and to every Application
    Synced/Healthy at the commit (its PostSync hooks included)."""
    patch = "overlays/minikube/patches/cron-every-2-minutes.yaml"

    def edit(tree: Path) -> None:
        gitops.replace_in(tree / patch, old, new)
        also(tree)

    rev, pushed = gitops.push(STATE, f"e2e: pipeline schedule {new}", edit)
    gitops.wait_until(f"schedules [{new!r}] in the cluster", 300, lambda: _schedules() == [new])
    applied = time.time() - pushed
    argocd.wait(argocd.APPS, gitops.SYNC_TIMEOUT, rev, quiet=True)
    return rev, applied, time.time() - pushed


PRUNE_SA = "e2e-prune-probe"


def _add_prune_probe(tree: Path) -> None:
    (tree / "overlays/minikube" / f"{PRUNE_SA}.yaml").write_text(
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {PRUNE_SA}\n"
        f"  namespace: {PIPELINE_NS}\nautomountServiceAccountToken: false\n"
    )
    gitops.replace_in(
        tree / "overlays/minikube/kustomization.yaml",
        "  - ../../base\n",
        f"  - ../../base\n  - {PRUNE_SA}.yaml\n",
    )


def _remove_prune_probe(tree: Path) -> None:
    (tree / "overlays/minikube" / f"{PRUNE_SA}.yaml").unlink()
    gitops.replace_in(tree / "overlays/minikube/kustomization.yaml", f"  - {PRUNE_SA}.yaml\n", "")


def _sa_exists() -> bool:
    out = kube.kubectl(
        "-n", PIPELINE_NS, "get", "serviceaccount", PRUNE_SA, "--ignore-not-found", "-o", "name"
    )
    return bool(out.strip())


def check_push_deploy(s: Session) -> report.Row:
    """A commit that changes the CronWorkflow's schedule reaches the cluster through Argo CD
    alone; a second one puts it back. The same two commits add a ServiceAccount to the overlay
    and remove it again, for the prune row (each sync runs the PostSync hooks: two commits, not
    four)."""
    before = _schedules()
    rev, applied, synced = _push_schedule("*/2 * * * *", "*/3 * * * *", _add_prune_probe)
    s.prune["created"] = (rev, _sa_exists(), synced)
    back, applied_back, synced_back = _push_schedule(
        "*/3 * * * *", "*/2 * * * *", _remove_prune_probe
    )
    s.prune["pruned"] = (back, not _sa_exists(), synced_back)
    ok = before == ["*/2 * * * *"]
    return report.Row(
        "",
        "passed" if ok else "failed",
        f"push {rev[:8]} (*/2 -> */3): in the cluster after {applied:.1f}s, all Synced/Healthy "
        f"(hooks included) after {synced:.1f}s; push {back[:8]} (back): {applied_back:.1f}s / "
        f"{synced_back:.1f}s; webhook: {gitops.webhook_line(STATE, rev)}",
        details={"seconds": [applied, synced, applied_back, synced_back]},
    )


def check_prune(s: Session) -> report.Row:
    """An object removed from Git disappears from the cluster (observed on the push rows'
    commits: the first adds a ServiceAccount to the overlay, the second removes the file)."""
    if set(s.prune) != {"created", "pruned"}:
        raise NotRun("the git push row did not get to both of its commits")
    added, existed, took_add = s.prune["created"]
    removed, gone, took_rm = s.prune["pruned"]
    return report.Row(
        "",
        "passed" if existed and gone else "failed",
        f"push {added[:8]} (+ServiceAccount {PRUNE_SA}) -> created: {existed}, Synced in "
        f"{took_add:.1f}s; push {removed[:8]} (file removed from Git) -> pruned: {gone}, Synced "
        f"in {took_rm:.1f}s",
    )


def _our_containers(pods: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(pod, container, image as the manifest names it, image ID the node ran) of each
    container that runs one of our images (a batch pod's generate and main)."""
    seen = []
    for pod in pods:
        specs = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
        for st in (pod.get("status") or {}).get("containerStatuses") or []:
            image = specs.get(st["name"], "")
            if image.startswith(f"ghcr.io/{delivery.OWNER}/"):
                seen.append((pod["metadata"]["name"], st["name"], image, st.get("imageID", "")))
    return seen


def check_delivery(s: Session) -> report.Row:
    """A commit under images/ goes through the images workflow (build job: images pushed to the
    registry; bump job: the tag committed), Argo CD syncs the bump by itself, and the next
    pipeline run's pods run exactly the pushed digests and print the new version."""
    base = os.environ.get("PIPELINE_BASE_IMAGE")
    if not base:
        raise NotRun("PIPELINE_BASE_IMAGE is not set (tests/e2e/build writes it to build.env)")
    tools = sorted({str(Path(os.environ[v]).parent) for v in ("KUSTOMIZE", "KUBECTL")
                    if os.environ.get(v)})  # fmt: skip
    t0 = time.monotonic()
    d = delivery.rehearse(STATE, tools, base, log=lambda line: print(f"    {line}", flush=True))
    t1 = time.monotonic()
    name = workflows.submit_from_cron(PIPELINE_NS, "event-pipeline")
    try:
        # An image the registry does not have keeps its pod Pending: fail in 45 s, not 20 min.
        wf = workflows.wait_done(PIPELINE_NS, name, 1200)
    except workflows.Stuck:
        kube.kubectl("-n", PIPELINE_NS, "delete", "workflow", name, "--wait=false", check=False)
        raise
    d.seconds["pipeline run"] = time.monotonic() - t1
    ran = _our_containers(workflows.pods(PIPELINE_NS, name))
    loaded, totals = False, "not loaded"
    if workflows.phase(wf) == "Succeeded":
        s.batches[name] = s.defaults()
        loaded, totals = _batch_matches(name, *s.batches[name])
    wanted = f"generate-events: event-pipeline {d.version}"
    logs = "".join(kube.kubectl("-n", PIPELINE_NS, "logs", pod, "-c", container, check=False)
                   for pod, container, image, _ in ran if "/event-generator:" in image)  # fmt: skip
    mismatched = [
        f"{pod}/{container}: {image} ran {image_id or 'no image ID'}"
        for pod, container, image, image_id in ran
        if image not in d.digests or not image_id.endswith("@" + d.digests[image])
    ]
    kinds = {image.rsplit(":", 1)[0] for _, _, image, _ in ran}
    ok = loaded and not mismatched and len(kinds) == 2 and wanted in logs
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in d.seconds.items())
    digests = "; ".join(f"{ref.rsplit('/', 1)[-1]} {dg[:19]}" for ref, dg in d.digests.items())
    return report.Row(
        "",
        "passed" if ok else "failed",
        f"{d.source[:8]} (event-pipeline {d.version}) -> pushed {digests} -> bump {d.bump[:8]} "
        f"-> {name} {workflows.phase(wf)}, its pods ran "
        f"{'exactly those digests' if not mismatched else 'other images: ' + '; '.join(mismatched)}"
        f" and printed {wanted!r}{'' if wanted in logs else ' NOT'}; {totals}; {timing}; "
        f"end to end {time.monotonic() - t0:.1f}s",
        details={"steps": d.steps, "digests": d.digests, "seconds": d.seconds, "ran": ran},
    )


def check_self_heal(s: Session) -> report.Row:
    """A managed object deleted and another edited by hand come back as Git says."""
    np_name = "default-deny"
    uid = kube.get("-n", PIPELINE_NS, "networkpolicy", np_name)["metadata"]["uid"]
    kube.kubectl("-n", PIPELINE_NS, "delete", "networkpolicy", np_name, "--wait=true")

    def recreated() -> bool:
        obj = kube.get("-n", PIPELINE_NS, "networkpolicy", np_name)
        return bool(obj["metadata"]["uid"] != uid)

    deleted_back = gitops.wait_until(f"NetworkPolicy {np_name} to be recreated", 300, recreated)
    # A field Git sets (the schedule); one Git leaves unset (spec.suspend) is not Argo CD's to
    # revert: its diff compares what Git says.
    git_value = _schedules()
    edit = '{"spec":{"schedules":["*/7 * * * *"]}}'
    kube.kubectl(
        "-n", PIPELINE_NS, "patch", "cronworkflow", "event-pipeline", "--type=merge", "-p", edit
    )
    edited_back = gitops.wait_until(
        "the CronWorkflow's schedule edit to be reverted", 300, lambda: _schedules() == git_value
    )
    argocd.wait(argocd.APPS, gitops.SYNC_TIMEOUT, quiet=True)
    return report.Row(
        "",
        "passed",
        f"NetworkPolicy {np_name} deleted -> recreated by Argo CD in {deleted_back:.1f}s; "
        f"CronWorkflow schedules set to ['*/7 * * * *'] by hand -> {git_value} again in "
        f"{edited_back:.1f}s; all Applications Synced/Healthy again",
    )


def check_switch(s: Session) -> report.Row:
    """`scripts/switch-overlay no-gvisor`, committed and pushed: Argo CD alone deploys it."""

    def switch(tree: Path) -> None:
        subprocess.run(
            [str(tree / "scripts" / "switch-overlay"), "no-gvisor"],
            cwd=tree,
            check=True,
            capture_output=True,
            timeout=60,
        )

    rev, took = gitops.push_and_wait(STATE, "Switch to no-gvisor", switch)
    path = kube.get("-n", "argocd", "application", "event-pipeline")["spec"]["source"]["path"]
    wt = kube.get("-n", PIPELINE_NS, "workflowtemplate", "event-pipeline")
    patch = wt["spec"].get("podSpecPatch")
    ok = path == "overlays/no-gvisor" and not patch
    return report.Row(
        "",
        "passed" if ok else "failed",
        f"push {rev[:8]} -> Synced/Healthy in {took:.1f}s: event-pipeline path {path}, "
        f"WorkflowTemplate podSpecPatch {patch!r}",
    )


def _submitted_size(batch: str, count: int, users: int) -> tuple[int, int]:
    """count/users a batch's Workflow was submitted with (an earlier check session's run, e.g.
    at 1M events); the WorkflowTemplate's defaults when it passed none or is gone."""
    wf = json.loads(kube.kubectl("-n", PIPELINE_NS, "get", "workflow", batch, "-o", "json",
                                 "--ignore-not-found", check=False) or "{}")  # fmt: skip
    params = {p["name"]: p.get("value") for p in
              ((wf.get("spec") or {}).get("arguments") or {}).get("parameters") or []}  # fmt: skip
    return int(params.get("count") or count), int(params.get("users") or users)


def check_user_totals(s: Session) -> report.Row:
    # One statement, one snapshot: a scheduled run may commit a batch at any moment, and the
    # view must be compared with the batches it was computed from.
    rows = kube.psql(
        "SELECT 'batch', batch_id, '' FROM batches UNION ALL "
        "SELECT 'user', user_id, total_session_duration::text FROM user_totals"
    )
    batches = sorted(r[1] for r in rows if r[0] == "batch")
    count, users = s.defaults()
    expected: Counter[str] = Counter()
    for b in batches:
        c, u = s.batches.get(b) or _submitted_size(b, count, users)
        expected.update(independent.totals(b, c, u))
    stored = Counter({r[1]: int(r[2]) for r in rows if r[0] == "user"})
    ok = stored == expected and bool(batches)
    return report.Row("", "passed" if ok else "failed",
                      f"view user_totals over {len(batches)} batches: {len(stored)} users, "
                      f"{sum(stored.values()):,} s; independent: {len(expected)} users, "
                      f"{sum(expected.values()):,} s")  # fmt: skip


Check = tuple[str, Callable[[Session], report.Row], tuple[str, ...]]
CHECKS: list[Check] = [
    ("Argo CD sync from empty (waves, hooks)", check_sync, ()),
    # First after the deploy: the controller deletes a Workflow once 10 newer ones completed in
    # the cluster (its retentionPolicy), about 20 minutes with the pipeline every 2 minutes.
    ("isolation demo PostSync hook: its Workflow A/B/C", lambda s: check_hooks(s, "minikube"), ()),
    ("pipeline, overlays/minikube (gVisor)", lambda s: pipeline(s, "minikube"), ()),
    (f"pipeline, {SHARDS} shards + one commit (gVisor)", check_shards, ()),
    # Right after the runs: their pods are kept 10 minutes (podGC deleteDelayDuration).
    ("Pod Security restricted (init, wait, main)", check_pod_security, ()),
    ("isolation demo WorkflowTemplate A/B/C", lambda s: check_isolation(s, "minikube"), ()),
    ("NetworkPolicies, both ways", check_network_policies, ()),
    ("Argo Workflows API: client auth only", check_argo_server_auth, ()),
    ("CronWorkflow fires on schedule", check_cron, ()),
    ("Argo Workflows UI in Chromium: token, runs, logs", check_workflows_ui, ()),
    ("Argo CD UI in Chromium: login, apps, SYNCHRONIZE", check_argocd_ui, ()),
    ("git push to deploy (webhook)", check_push_deploy, ()),
    ("delivery loop: images workflow -> registry -> bump -> Argo CD", check_delivery, ()),
    ("self-heal: deleted and edited objects", check_self_heal, ()),
    ("prune: object removed from Git", check_prune, ()),
    ("fault: batch pod deleted mid-load", check_fault_batch_pod, ()),
    ("fault: PostgreSQL restarted mid-load", check_fault_postgres, ()),
    (f"latency: {LATENCY_RUNS} default runs under runsc", lambda s: check_latency(s, "minikube"),
     ()),
    (f"latency: {LATENCY_RUNS} runs of {SHARDS} shards under runsc",
     lambda s: check_latency(s, "minikube", SHARDS), ()),
    ("overlay switch to no-gvisor via Git", check_switch, ()),
    ("pipeline, overlays/no-gvisor (runc)", lambda s: pipeline(s, "no-gvisor"),
     ("overlay switch to no-gvisor via Git",)),
    (f"latency: {LATENCY_RUNS} default runs under runc", lambda s: check_latency(s, "no-gvisor"),
     ("overlay switch to no-gvisor via Git",)),
    (f"latency: {LATENCY_RUNS} runs of {SHARDS} shards under runc",
     lambda s: check_latency(s, "no-gvisor", SHARDS), ("overlay switch to no-gvisor via Git",)),
    ("latency: runsc/runc, per phase", check_latency_ratio, ()),
    ("user_totals == independent computation", check_user_totals, ()),
]  # fmt: skip


def run(rep: report.Report, only: set[str] | None = None) -> None:
    s = Session(rep)
    for name, fn, needs in CHECKS:
        if only and not any(o in name for o in only):
            continue
        t0 = time.monotonic()
        missing = [n for n in needs if n not in s.passed]
        try:
            if missing:
                raise NotRun(f"needs: {', '.join(missing)}")
            row = fn(s)
        except NotRun as exc:
            row = report.Row(name, "not run", str(exc))
        except Exception as exc:  # a check's error is that check's failure
            row = report.Row(name, "failed", f"{type(exc).__name__}: {str(exc)[:300]}",
                             details={"traceback": traceback.format_exc()[-3000:]})  # fmt: skip
        row.name = name
        row.seconds = round(time.monotonic() - t0, 1)
        rep.add(row)
        if row.status == "passed":
            s.passed.add(name)
        print(row.line(), flush=True)


def facts() -> dict[str, Any]:
    """What the report says the run was made of: the pinned versions, what the two web UIs were
    built from (build.env: where it differs from upstream, it says so); where a kept cluster is."""
    pins = (REPO_ROOT / "tests" / "e2e" / "versions.env").read_text()
    versions = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', pins, re.M))
    uis = {"argo-workflows": os.environ.get("ARGO_WORKFLOWS_UI") or "unknown",
           "argo-cd": os.environ.get("ARGOCD_UI") or "unknown"}  # fmt: skip
    kept = {"kubeconfig": os.environ["E2E_KUBECONFIG"], "netns": os.environ["E2E_NETNS"]}
    return {"versions": versions, "web_uis": uis,
            **(kept if os.environ.get("E2E_KEEP") == "1" else {})}  # fmt: skip


def main(words: list[str]) -> int:
    mode_file = STATE / "deploy-mode"
    mode = mode_file.read_text().strip() if mode_file.is_file() else "deployed: unknown (no deploy)"
    rep = report.Report(mode=mode, facts=facts())
    run(rep, set(words) or None)
    path = report.report_path()
    rep.write(path)
    print()
    print(rep.table())
    print(f"\nreport: {path}")
    return 0 if rep.ok else 1
