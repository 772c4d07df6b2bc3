"""Rehearsal: the rendered overlays/minikube WorkflowTemplate `event-pipeline`, run step by
step as containers in the private Docker engine (see argo_to_docker.py for the mapping), then
`user_totals` checked against an independent computation from the generated file. And the
same rehearsal on deliberately broken manifests, which must fail at the right step."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from event_pipeline.pgserver import LocalPostgres

from .argo_to_docker import Step, render
from .rehearse import (
    RehearsalFailed,
    Result,
    cleanup_result,
    independent_totals,
    rehearse,
    volume_path,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "overlays" / "minikube"
TEMPLATE = "event-pipeline"

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered() -> Docs:
    return render(OVERLAY)


def _run(
    docs: Docs,
    engine: dict[str, str],
    images: dict[str, str],
    secret: dict[str, dict[str, str]],
    pg: LocalPostgres,
    base_image: str,
    **options: Any,
) -> Result:
    return rehearse(
        docs,
        TEMPLATE,
        engine_env=engine,
        images=images,
        secrets=secret,
        pg_port=pg.port,
        helper_image=base_image,
        **options,
    )


def _loaded(
    pg: LocalPostgres, secret: dict[str, dict[str, str]]
) -> tuple[dict[str, int], list[Any]]:
    """user_totals and the batches table of the rehearsal's database."""
    import psycopg2

    creds = secret["postgres-credentials"]
    conn = psycopg2.connect(pg.dsn(creds["PGDATABASE"]))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT user_id, total_session_duration FROM user_totals")
            totals = {u: int(t) for u, t in cur.fetchall()}
            cur.execute("SELECT batch_id, valid_events, rejected_count FROM batches")
            return totals, cur.fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_rendered_pipeline_loads_exact_totals(
    overlay: str,
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    rendered = render(REPO / "overlays" / overlay)
    result = _run(rendered, docker_engine, pipeline_images, pipeline_secret, pg_server, base_image)
    try:
        for step in result.steps:
            print(f"{step.task}: image {step.image}, runtime {step.runtime}")
        # The overlay decides the runtime: gVisor (runsc) on minikube, runc on no-gvisor.
        expected_runtime = "runsc-hostnet" if overlay == "minikube" else "runc"
        assert {s.runtime for s in result.steps} == {expected_runtime}
        # One pod: generate, then main (the aggregator) reading the pod's emptyDir.
        assert [(s.task, s.container) for s in result.steps] == [
            ("batch.generate", "generate"),
            ("batch.main", "main"),
        ]
        assert len({s.pod for s in result.steps}) == 1
        events_file = _mounted_file(result.steps[1], docker_engine)
        count, expected = independent_totals(events_file)
        wf = next(d for d in rendered if d.get("kind") == "WorkflowTemplate")
        params = {p["name"]: p.get("value") for p in wf["spec"]["arguments"]["parameters"]}
        assert count == int(params["count"])
        assert expected, "the generated batch is empty"
        # Written by the generate step as the manifest's runAsUser, not as root.
        gen_user = _container(rendered, "batch", "generate")["securityContext"]["runAsUser"]
        assert events_file.stat().st_uid == gen_user

        loaded, batches = _loaded(pg_server, pipeline_secret)
        assert loaded == expected
        assert [b[0] for b in batches] == [result.workflow_name]
    finally:
        cleanup_result(result, docker_engine)


def _mounted_file(step: Step, engine: dict[str, str]) -> Path:
    """The host path of the file STEP reads with --input, on the Docker volume mounted
    there (the pod's own emptyDir)."""
    path = step.argv[step.argv.index("--input") + 1]
    for i, a in enumerate(step.argv):
        if a == "--mount" and step.argv[i + 1].startswith("type=volume,"):
            opts = dict(kv.split("=", 1) for kv in step.argv[i + 1].split(",") if "=" in kv)
            dst = opts["dst"].rstrip("/")
            if path.startswith(dst + "/"):
                return volume_path(opts["src"], engine) / path[len(dst) + 1 :]
    raise AssertionError(f"{path} is not on a volume of {step.task}")


def test_rendered_pipeline_four_shards_loads_exact_totals(
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    """overlays/minikube with `shards: 4`: four containerSet shard pods in gVisor at once
    (generate, then stage from the pod's own emptyDir), then one commit. Shard 2 and the
    commit each run a second time as new pods, as Argo retries them after a failure that
    came once their work was done: user_totals still equals an independent computation
    over the four shard files, and the batch is there once."""
    rendered = render(OVERLAY)
    retried = ["shard(2:2)", "commit"]
    result = _run(
        rendered,
        docker_engine,
        pipeline_images,
        pipeline_secret,
        pg_server,
        base_image,
        parameters={"shards": "4"},
        repeat=retried,
    )
    try:
        assert {s.runtime for s in result.steps} == {"runsc-hostnet"}
        pods: dict[str, list[Step]] = {}
        for s in result.steps:
            pods.setdefault(s.pod, []).append(s)
        shard_pods = [p for p in pods.values() if p[0].template == "shard"]
        assert len(shard_pods) == 5  # four shards, shard 2 twice
        assert all([s.container for s in p] == ["generate", "main"] for p in shard_pods)
        assert [s.task for s in result.steps if s.template == "commit"] == ["commit", "commit"]
        first = [p for p in shard_pods if not p[0].pod.endswith("-retry1")]
        (again,) = [p for p in shard_pods if p[0].pod.endswith("-retry1")]
        files = {p[0].task.split(".")[0]: _mounted_file(p[1], docker_engine) for p in first}
        assert sorted(files) == [f"shard({i}:{i})" for i in range(4)]
        # The retried shard pod regenerated the same shard on its own new emptyDir.
        assert again[0].task == "shard(2:2).generate"
        retry = _mounted_file(again[1], docker_engine)
        assert retry != files["shard(2:2)"]
        assert retry.read_bytes() == files["shard(2:2)"].read_bytes()

        expected: dict[str, int] = {}
        count = 0
        for f in files.values():
            n, totals = independent_totals(f)
            assert n > 0, f"{f} is empty"
            count += n
            for user, total in totals.items():
                expected[user] = expected.get(user, 0) + total
        wf = next(d for d in rendered if d.get("kind") == "WorkflowTemplate")
        params = {p["name"]: p.get("value") for p in wf["spec"]["arguments"]["parameters"]}
        assert count == int(params["count"])  # the shards together hold the whole batch

        loaded, batches = _loaded(pg_server, pipeline_secret)
        assert loaded == expected
        assert batches == [(result.workflow_name, count, 0)]
    finally:
        cleanup_result(result, docker_engine)


def _small(docs: Docs) -> Docs:
    """A copy with a small batch: the breaks below are about structure, not volume."""
    docs = copy.deepcopy(docs)
    for d in docs:
        if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == TEMPLATE:
            for p in d["spec"]["arguments"]["parameters"]:
                if p["name"] == "count":
                    p["value"] = "500"
    return docs


def _container(docs: Docs, template: str, name: str = "main") -> dict[str, Any]:
    """A container of TEMPLATE: its container, or the one named NAME of its containerSet."""
    for d in docs:
        if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == TEMPLATE:
            for t in d["spec"]["templates"]:
                if t["name"] == template and "container" in t:
                    return t["container"]  # type: ignore[no-any-return]
                if t["name"] == template:
                    return next(c for c in t["containerSet"]["containers"] if c["name"] == name)
    raise AssertionError(template)


def output_on_read_only_root(docs: Docs) -> None:
    args = _container(docs, "batch", "generate")["args"]
    args[args.index("--output") + 1] = "/events.jsonl"


def credentials_dropped(docs: Docs, template: str = "batch") -> None:
    c = _container(docs, template)
    c.pop("envFrom", None)
    c["env"] = [
        e for e in c.get("env", []) if e["name"] not in {"PGUSER", "PGPASSWORD", "PGDATABASE"}
    ]


def batch_file_mounted_elsewhere(docs: Docs) -> None:
    """The aggregator mounts the pod's batch emptyDir where it does not read."""
    for m in _container(docs, "batch", "main")["volumeMounts"]:
        if m["mountPath"] == "/batch":
            m["mountPath"] = "/input"


def runs_as_root(docs: Docs) -> None:
    _container(docs, "batch", "generate")["securityContext"]["runAsUser"] = 0


def shard_file_mounted_elsewhere(docs: Docs) -> None:
    """The stage container mounts the pod's shard emptyDir where it does not read."""
    for m in _container(docs, "shard", "main")["volumeMounts"]:
        if m["mountPath"] == "/shard":
            m["mountPath"] = "/input"


def commit_credentials_dropped(docs: Docs) -> None:
    credentials_dropped(docs, "commit")


@pytest.mark.parametrize(
    ("breakage", "shards", "failing_step"),
    [
        (output_on_read_only_root, "1", "batch.generate"),
        (credentials_dropped, "1", "batch.main"),
        (batch_file_mounted_elsewhere, "1", "batch.main"),
        (runs_as_root, "1", "translate"),
        (shard_file_mounted_elsewhere, "4", "shard(0:0).main"),
        (commit_credentials_dropped, "4", "commit"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_broken_manifest_fails_the_rehearsal(
    rendered: Docs,
    breakage: Callable[[Docs], None],
    shards: str,
    failing_step: str,
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    docs = _small(rendered)
    breakage(docs)
    with pytest.raises(RehearsalFailed) as info:
        result = _run(
            docs,
            docker_engine,
            pipeline_images,
            pipeline_secret,
            pg_server,
            base_image,
            parameters={"shards": shards},
        )
        cleanup_result(result, docker_engine)
    assert info.value.step == failing_step, str(info.value)


def test_small_unbroken_copy_passes(
    rendered: Docs,
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    """The control for the breaks above: the same small copy, unbroken, succeeds."""
    result = _run(
        _small(rendered), docker_engine, pipeline_images, pipeline_secret, pg_server, base_image
    )
    cleanup_result(result, docker_engine)
    assert [s.task for s in result.steps] == ["batch.generate", "batch.main"]
