"""The parts of the e2e checks that need no cluster: Argo CD states, workflow steps, and the
independent computation of a batch's totals (agrees with the real aggregator on PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from e2elib import argocd, gha, independent, kube, webhook, workflows
from needs import local_postgres

BIN = Path(sys.executable).parent


def _app(sync: str, health: str, phase: str, hook_phases: list[str]) -> dict[str, object]:
    hooks = [{"kind": "Job", "name": f"h{i}", "hookType": "PostSync", "hookPhase": p}
             for i, p in enumerate(hook_phases)]  # fmt: skip
    return {
        "status": {
            "sync": {"status": sync, "revision": "0123456789abcdef"},
            "health": {"status": health},
            "operationState": {"phase": phase, "syncResult": {"resources": hooks}},
        }
    }


def test_an_app_is_done_only_when_synced_healthy_and_every_hook_succeeded() -> None:
    assert argocd.state(_app("Synced", "Healthy", "Succeeded", ["Succeeded", "Succeeded"]))[0]
    assert not argocd.state(_app("Synced", "Healthy", "Succeeded", ["Succeeded", "Failed"]))[0]
    assert not argocd.state(_app("Synced", "Progressing", "Succeeded", []))[0]
    assert not argocd.state(_app("OutOfSync", "Healthy", "Succeeded", []))[0]
    assert not argocd.state(_app("Synced", "Healthy", "Running", []))[0]
    assert "hooks=1/2" in argocd.state(_app("Synced", "Healthy", "Failed", ["Succeeded", "x"]))[1]


def test_terminate_patches_only_the_operations_still_running(monkeypatch: Any) -> None:
    apps = {"root": _app("Synced", "Healthy", "Succeeded", []),
            "event-pipeline": _app("Synced", "Healthy", "Running", ["Running"])}  # fmt: skip
    apps["event-pipeline"]["status"]["operationState"]["message"] = "Retrying attempt #2"  # type: ignore[index]
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(kube, "get", lambda *a: apps[a[-1]])

    def kubectl(*args: str, **_: object) -> str:
        calls.append(args)
        return ""

    monkeypatch.setattr(kube, "kubectl", kubectl)
    assert argocd.terminate_running(("root", "event-pipeline")) == [
        "event-pipeline: Retrying attempt #2"
    ]
    patch = '{"status": {"operationState": {"phase": "Terminating"}}}'
    assert calls == [
        ("-n", "argocd", "patch", "application", "event-pipeline", "--type", "merge", "-p", patch)
    ]


def test_steps_are_pod_nodes_with_durations() -> None:
    wf = {
        "status": {
            "nodes": {
                "wf": {"type": "DAG", "templateName": "main"},
                "wf-1": {"type": "Pod", "templateName": "generate", "phase": "Succeeded",
                         "startedAt": "2026-12-01T10:00:00Z", "finishedAt": "2026-12-01T10:00:12Z",
                         "id": "wf-1", "outputs": {"exitCode": "0"}},
                "wf-2": {"type": "Pod", "templateName": "aggregate", "phase": "Running",
                         "startedAt": "2026-12-01T10:00:13Z", "id": "wf-2"},
            }
        }
    }  # fmt: skip
    steps = workflows.steps(wf)
    assert [(s.template, s.phase, s.seconds, s.exit_code) for s in steps] == [
        ("generate", "Succeeded", 12.0, "0"),
        ("aggregate", "Running", None, None),
    ]


def test_seed_is_argo_sprig_adler32sum_of_the_batch_id() -> None:
    assert independent.seed_of("event-pipeline-1764583200") == zlib.adler32(
        b"event-pipeline-1764583200"
    )


def test_independent_totals_agree_with_the_aggregator(tmp_path: Path) -> None:
    batch = "event-pipeline-e2e-abcde"
    expected = independent.totals(batch, 3000, 50)
    assert len(expected) == 50 and sum(expected.values()) > 0
    events = tmp_path / "events.jsonl"
    subprocess.run(
        [str(BIN / "generate-events"), "--count", "3000", "--users", "50",
         "--seed", str(independent.seed_of(batch)), "--output", str(events), "--quiet"],
        check=True, timeout=120,
    )  # fmt: skip
    with local_postgres() as pg:
        subprocess.run(
            [str(BIN / "aggregate-events"), "--input", str(events), "--batch-id", batch],
            env={**os.environ, **pg.env()}, check=True, timeout=120, capture_output=True,
        )  # fmt: skip
        out = pg.psql("SELECT user_id || ' ' || total_session_duration FROM user_totals")
    stored = {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}
    assert stored == dict(expected)


RETRYING = "one or more objects failed. Retrying attempt #2 at 2026-12-06T19:35:01Z."


def _failing_app(
    phase: str, retries: int = 0, revision: str = "abc", message: str = RETRYING
) -> dict[str, Any]:
    failed = {"kind": "NetworkPolicy", "name": "np", "status": "SyncFailed",
              "message": "not permitted in project"}  # fmt: skip
    op = {"phase": phase, "retryCount": retries, "message": message,
          "operation": {"sync": {}},  # retry.refresh: no revision here
          "syncResult": {"revision": revision, "resources": [failed]}}  # fmt: skip
    return {"status": {"operationState": op}}


def test_a_failed_sync_is_reported_with_argo_cds_message() -> None:
    why = argocd.failure(_failing_app("Failed"))
    assert why is not None and "NetworkPolicy/np: not permitted in project" in why
    # Retrying after two failed attempts is a failure too; one may be a transient.
    assert argocd.failure(_failing_app("Running", retries=2)) is not None
    assert argocd.failure(_failing_app("Running", retries=1)) is None
    # ... unless what failed was a hook that ran: that is no transient.
    hook = _failing_app("Running", retries=1)
    hook["status"]["operationState"]["syncResult"]["resources"] = [
        {"kind": "Job", "namespace": "isolation-demo", "name": "isolation-demo-sync",
         "hookType": "PostSync", "hookPhase": "Failed",
         "message": "Job has reached the specified backoff limit"}
    ]  # fmt: skip
    why = argocd.failure(hook)
    assert why is not None and "Job/isolation-demo-sync: Job has reached the" in why
    # An attempt under way after earlier failures: its message is progress, not a failure.
    waiting = "waiting for healthy state of /Namespace/event-pipeline and 1 more resources"
    assert argocd.failure(_failing_app("Running", retries=2, message=waiting)) is None
    assert argocd.failure(_failing_app("Succeeded")) is None
    # A failure of another revision (the last break, still retried) is not the awaited sync's.
    assert argocd.failure(_failing_app("Failed", revision="old"), revision="new") is None
    assert argocd.failure(_failing_app("Failed", revision="new"), revision="new") is not None


def test_hook_steps_name_the_failed_steps_of_the_workflow_a_failed_hook_job_submitted(
    monkeypatch: Any,
) -> None:
    app = {"status": {"operationState": {"syncResult": {"resources": [
        {"kind": "Job", "namespace": "isolation-demo", "name": "isolation-demo-sync",
         "hookType": "PostSync", "hookPhase": "Failed",
         "message": "Job has reached the specified backoff limit"}]}}}}  # fmt: skip
    wf = {"metadata": {"name": "isolation-demo-sync-x7k2p"}, "status": {"nodes": {
        "n0": {"type": "DAG", "displayName": "isolation-demo-sync-x7k2p", "phase": "Failed"},
        "n1": {"type": "Pod", "displayName": "prepare", "phase": "Succeeded",
               "startedAt": "2026-12-07T06:00:00Z"},
        "n2": {"type": "Retry", "displayName": "verify", "phase": "Failed",
               "message": "No more retries left"},
        "n3": {"type": "Pod", "displayName": "verify(0)", "phase": "Failed",
               "message": "Error (exit code 1)", "startedAt": "2026-12-07T06:00:30Z"},
        "n4": {"type": "Pod", "displayName": "verify(1)", "phase": "Failed",
               "message": "Error (exit code 1)", "startedAt": "2026-12-07T06:00:55Z"},
    }}}  # fmt: skip
    asked: list[tuple[str, ...]] = []

    def get(*args: str) -> dict[str, Any]:
        asked.append(args)
        if args[2] == "job":
            return {"metadata": {"uid": "u-1"}}
        return {"items": [wf]}

    monkeypatch.setattr(kube, "get", get)
    assert argocd.hook_steps(app) == (
        "; Job/isolation-demo-sync's Workflow isolation-demo-sync-x7k2p steps: "
        "verify(0) Failed: Error (exit code 1), verify(1) Failed: Error (exit code 1)"
    )
    # The Job's uid, then the Workflows labelled with it: this sync's run, not another's.
    assert asked == [
        ("-n", "isolation-demo", "job", "isolation-demo-sync"),
        ("-n", "isolation-demo", "workflows", "-l", "isolation-demo.io/sync-hook-job=u-1"),
    ]
    # A succeeded hook asks nothing.
    ok = app["status"]["operationState"]["syncResult"]["resources"][0]
    ok["hookPhase"] = "Succeeded"
    assert argocd.hook_steps(app) == "" and len(asked) == 2


def _rows(kernels: dict[str, str], reached: dict[str, bool]) -> dict[str, list[str]]:
    """isolation_results rows by variant (variant, runtime, sandbox, kernel, node kernel,
    write_ok, reached_host, contained), as psql prints them."""
    return {v: [v, "", "", kernels[v], "6.1.0-node", "t", "t" if reached[v] else "f",
                "f" if reached[v] else "t"] for v in "ABC"}  # fmt: skip


def test_isolation_verdict_wants_the_overlays_runtimes_kernels_and_markers() -> None:
    from e2elib import checks

    runsc, runc = checks.RUNSC, checks.RUNC
    gv = {"A": "6.1.0-node", "B": "4.4.0", "C": "4.4.0"}
    reached = {"A": True, "B": True, "C": False}
    markers = ["marker-r-A.json", "marker-r-B.json"]
    ok, table = checks.isolation_verdict(
        "minikube", _rows(gv, reached), markers, {"A": runc, "B": runsc, "C": runsc}
    )
    assert ok, table
    assert table[1] == (
        "B: runsc, kernel 4.4.0, write reached node: yes, stored reached_host=t contained=f"
    )
    # B on runc: the demo would compare runc with runc.
    assert not checks.isolation_verdict(
        "minikube", _rows(gv, reached), markers, {"A": runc, "B": runc, "C": runsc}
    )[0]
    # A probe pod missing (its runtime unknown).
    assert not checks.isolation_verdict(
        "minikube", _rows(gv, reached), markers, {"A": runc, "B": runsc}
    )[0]
    # C's write reached the node under minikube: its overlay did not contain it.
    assert not checks.isolation_verdict(
        "minikube", _rows(gv, {"A": True, "B": True, "C": True}), [*markers, "marker-r-C.json"],
        {"A": runc, "B": runsc, "C": runsc},
    )[0]  # fmt: skip
    # no-gvisor: runc everywhere, every write reaches the node, one kernel.
    node = {v: "6.1.0-node" for v in "ABC"}
    every = {v: True for v in "ABC"}
    all_markers = [*markers, "marker-r-C.json"]
    assert checks.isolation_verdict(
        "no-gvisor", _rows(node, every), all_markers, {v: runc for v in "ABC"}
    )[0]
    assert not checks.isolation_verdict(
        "no-gvisor", _rows(node, every), all_markers, {"A": runc, "B": runsc, "C": runc}
    )[0]


def test_webhook_payload_is_githubs_push_event(tmp_path: Path) -> None:
    work, bare = tmp_path / "work", tmp_path / "bare.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "e2e", str(work)], check=True)
    (work / "a.yaml").write_text("a: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, text=True,
                           capture_output=True, check=True).stdout.strip()  # fmt: skip
    (work / "b.yaml").write_text("b: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "two"], cwd=work, check=True)
    subprocess.run(["git", "push", "-q", str(bare), "e2e"], cwd=work, check=True)
    second = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, text=True,
                            capture_output=True, check=True).stdout.strip()  # fmt: skip
    body = webhook.payload(bare, first, second, "refs/heads/e2e", "https://h:8443/r")
    assert body["ref"] == "refs/heads/e2e" and body["after"] == second
    assert body["repository"] == {"html_url": "https://h:8443/r", "default_branch": "e2e"}
    assert body["commits"][0]["modified"] == ["b.yaml"]
    # A new branch: every file counts as changed.
    new = webhook.payload(bare, webhook.ZERO, second, "refs/heads/e2e", "https://h:8443/r")
    assert sorted(new["commits"][0]["modified"]) == ["a.yaml", "b.yaml"]
    # No webhook configured: nothing is sent.
    assert webhook.deliver(bare, [f"{first} {second} refs/heads/e2e"]) == []


def test_every_break_changes_the_served_tree(tmp_path: Path) -> None:
    """Each deliberate break still finds what it edits (a refactor that moves a file or a line
    would otherwise make `make e2e`'s breaks stage fail for the wrong reason), and the delivery
    loop's version edit finds its one line."""
    from e2elib import delivery, served

    repo = Path(__file__).resolve().parents[2]

    def files(tree: Path) -> dict[str, bytes]:
        return {str(f.relative_to(tree)): f.read_bytes() for f in tree.rglob("*") if f.is_file()}

    for name, apply in served.BREAKS.items():
        tree = tmp_path / name
        served.snapshot(repo, tree)
        before = files(tree)
        assert apply(tree), name
        assert files(tree) != before, f"break {name} changed nothing"
    tree = tmp_path / "version"
    served.snapshot(repo, tree)
    delivery.set_version(tree, "9.9.9+e2e.1")
    assert '__version__ = "9.9.9+e2e.1"' in (tree / delivery.VERSION_FILE).read_text()


def test_bumped_tag_reads_what_the_bump_job_writes() -> None:
    import pytest
    from e2elib import delivery

    repo = Path(__file__).resolve().parents[2]
    assert delivery.bumped_tag((repo / delivery.KUSTOMIZATION).read_text()) == "0.1.0"
    with pytest.raises(gha.GhaError, match="no newTag"):
        delivery.bumped_tag("images: [{name: other, newTag: x}]\n")
