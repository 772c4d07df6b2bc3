"""The parts of the e2e checks that need no cluster: Argo CD states, workflow steps, and the
independent computation of a batch's totals (agrees with the real aggregator on PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from e2elib import argocd, fallback, independent, workflows
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


def test_fallback_orders_by_wave_then_argo_cd_kind_order() -> None:
    def obj(kind: str, name: str, wave: str | None = None) -> dict[str, Any]:
        ann = {"argocd.argoproj.io/sync-wave": wave} if wave is not None else {}
        return {"kind": kind, "metadata": {"name": name, "annotations": ann}}

    objs = [obj("StatefulSet", "pg"), obj("Service", "pg"), obj("Namespace", "ns", "-2"),
            obj("CronWorkflow", "cron", "3"), obj("NetworkPolicy", "np", "-1"),
            obj("Secret", "s", "1")]  # fmt: skip
    order = [o["metadata"]["name"] for o in sorted(objs, key=fallback.order_key)]
    assert order == ["ns", "np", "pg", "pg", "s", "cron"]
    assert [o["kind"] for o in sorted(objs, key=fallback.order_key)][2:4] == [
        "Service",
        "StatefulSet",
    ]
