"""Rehearsal of the rendered isolation demo (overlays/minikube, and overlays/no-gvisor where
B and C run on runc and every marker reaches the node) as the PostSync hook Job
`isolation-demo-sync` submits it after a sync: the WorkflowTemplate `isolation-demo` with the
parameters the Job passes, step by step: `prepare` (uid 0 without capabilities: it makes the
fresh node directory writable for the non-root probes), probe A on runc, probe B with
runtimeClassName gvisor (-> runsc), probe C with gvisor plus the pod annotation
`dev.gvisor.flag.overlay2: all:memory` (-> runsc-contained), each probe's stdout passed to the
verifier as `{{tasks.probe-*.outputs.result}}`, the verifier storing into PostgreSQL. A local
directory stands in for the node's hostPath, so the test looks at it itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from event_pipeline.pgserver import LocalPostgres

from .argo_to_docker import find, render
from .rehearse import rehearse

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = "/var/lib/isolation-demo"
HOOK = "isolation-demo-sync"


def hook_submission(docs: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The WorkflowTemplate and the parameters the hook Job's `argo submit` passes."""
    args = find(docs, "Job", HOOK)["spec"]["template"]["spec"]["containers"][0]["args"]
    opts = [a.partition("=")[::2] for a in args if a.startswith("--")]
    kind, _, template = next(v for k, v in opts if k == "--from").partition("/")
    assert kind == "workflowtemplate"
    return template, dict(v.partition("=")[::2] for k, v in opts if k == "--parameter")


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_rendered_isolation_demo(
    overlay: str,
    tmp_path: Path,
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    import psycopg2

    docs = render(REPO / "overlays" / overlay)
    gvisor = overlay == "minikube"
    node_dir = tmp_path / "node-isolation-demo"  # created by the first mount, as the kubelet does
    common: dict[str, Any] = {
        "engine_env": docker_engine,
        "images": pipeline_images,
        "secrets": pipeline_secret,
        "pg_port": pg_server.port,
        "helper_image": base_image,
        "namespace": "isolation-demo",
        "host_paths": {NODE_DIR: str(node_dir)},
    }
    template, parameters = hook_submission(docs)
    assert parameters == {"verify-retries": "1"}
    result = rehearse(
        docs, template, workflow_name=f"{HOOK}-x7k2p", parameters=parameters, **common
    )
    run_id = result.workflow_name  # the template's run id is the Workflow's own name
    for step in result.steps:
        print(f"{step.task}: runtime {step.runtime}")
    runtimes = {s.task: s.runtime for s in result.steps}
    assert runtimes == {
        "prepare": "runc",
        "probe-a": "runc",
        "probe-b": "runsc-hostnet" if gvisor else "runc",
        "probe-c": "runsc-contained" if gvisor else "runc",
        "verify": "runc",
    }
    prepare = next(s for s in result.steps if s.task == "prepare")
    assert prepare.argv[prepare.argv.index("--user") + 1] == "0:0"
    assert "--read-only" in prepare.argv and "ALL" in prepare.argv
    # The kubelet makes the directory 0755 root; the prepare step made it sticky and writable.
    assert node_dir.stat().st_mode & 0o7777 == 0o1777

    # What reached the "node", seen by the test itself.
    markers = {p.name for p in node_dir.glob(f"marker-{run_id}-*.json")}
    reached = "AB" if gvisor else "ABC"
    assert markers == {f"marker-{run_id}-{v}.json" for v in reached}, markers

    creds = pipeline_secret["postgres-credentials"]
    conn = psycopg2.connect(pg_server.dsn(creds["PGDATABASE"]))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT variant, write_ok, reached_host, kernel_release FROM isolation_results"
                " WHERE run_id = %s ORDER BY variant",
                (run_id,),
            )
            rows = {v: (w, r, k) for v, w, r, k in cur.fetchall()}
    finally:
        conn.close()
    print(rows)
    assert set(rows) == {"A", "B", "C"}
    assert all(rows[v][0] for v in "ABC"), "every probe's write succeeded inside its sandbox"
    assert [rows[v][1] for v in "ABC"] == [v in reached for v in "ABC"]
    if gvisor:
        # gVisor's Sentry reports its own kernel release, not the node's.
        assert rows["A"][2] != rows["B"][2] and rows["B"][2] == rows["C"][2]
    else:
        assert rows["A"][2] == rows["B"][2] == rows["C"][2]
