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

from .argo_to_docker import render
from .rehearse import RehearsalFailed, Result, cleanup, independent_totals, rehearse

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "overlays" / "minikube"
TEMPLATE = "event-pipeline"

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered() -> Docs:
    return render(OVERLAY)


def _template(docs: Docs, name: str) -> dict[str, Any]:
    for d in docs:
        if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == TEMPLATE:
            for t in d["spec"]["templates"]:
                if t["name"] == name:
                    return dict(t)
    raise AssertionError(f"template {name!r} not in the rendered WorkflowTemplate")


def _claim_file(result: Result, engine: dict[str, str]) -> Path:
    """The batch file on the claim, found from the aggregate step's own --input and mounts."""
    agg = next(s for s in result.steps if s.template == "aggregate")
    path = agg.argv[agg.argv.index("--input") + 1]
    for i, a in enumerate(agg.argv):
        if a == "--mount" and f"src={result.volume}," in agg.argv[i + 1]:
            dst = agg.argv[i + 1].split("dst=", 1)[1].split(",", 1)[0]
            if path.startswith(dst.rstrip("/") + "/"):
                return result.volume_path(engine) / path[len(dst.rstrip("/")) + 1 :]
    raise AssertionError(f"{path} is not on the claim")


def _run(
    docs: Docs,
    engine: dict[str, str],
    images: dict[str, str],
    secret: dict[str, dict[str, str]],
    pg: LocalPostgres,
    base_image: str,
) -> Result:
    return rehearse(
        docs,
        TEMPLATE,
        engine_env=engine,
        images=images,
        secrets=secret,
        pg_port=pg.port,
        helper_image=base_image,
    )


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_rendered_pipeline_loads_exact_totals(
    overlay: str,
    docker_engine: dict[str, str],
    pipeline_images: dict[str, str],
    pipeline_secret: dict[str, dict[str, str]],
    pg_server: LocalPostgres,
    base_image: str,
) -> None:
    import psycopg2

    rendered = render(REPO / "overlays" / overlay)
    result = _run(rendered, docker_engine, pipeline_images, pipeline_secret, pg_server, base_image)
    try:
        for step in result.steps:
            print(f"{step.task}: image {step.image}, runtime {step.runtime}")
        # The overlay decides the runtime: gVisor (runsc) on minikube, runc on no-gvisor.
        expected_runtime = "runsc-hostnet" if overlay == "minikube" else "runc"
        assert {s.runtime for s in result.steps} == {expected_runtime}
        events_file = _claim_file(result, docker_engine)
        count, expected = independent_totals(events_file)
        wf = next(d for d in rendered if d.get("kind") == "WorkflowTemplate")
        params = {p["name"]: p.get("value") for p in wf["spec"]["arguments"]["parameters"]}
        assert count == int(params["count"])
        assert expected, "the generated batch is empty"
        # Written by the generate step as the manifest's runAsUser, not as root.
        gen_user = _template(rendered, "generate")["container"]["securityContext"]["runAsUser"]
        assert events_file.stat().st_uid == gen_user

        creds = pipeline_secret["postgres-credentials"]
        conn = psycopg2.connect(pg_server.dsn(creds["PGDATABASE"]))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT user_id, total_session_duration FROM user_totals")
                loaded = {u: int(t) for u, t in cur.fetchall()}
                cur.execute("SELECT * FROM batches")
                batches = [" ".join(map(str, row)) for row in cur.fetchall()]
        finally:
            conn.close()
        assert loaded == expected
        assert len(batches) == 1 and result.workflow_name in batches[0]
    finally:
        cleanup(result.volume, docker_engine)


def _small(docs: Docs) -> Docs:
    """A copy with a small batch: the breaks below are about structure, not volume."""
    docs = copy.deepcopy(docs)
    for d in docs:
        if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == TEMPLATE:
            for p in d["spec"]["arguments"]["parameters"]:
                if p["name"] == "count":
                    p["value"] = "500"
    return docs


def _container(docs: Docs, template: str) -> dict[str, Any]:
    for d in docs:
        if d.get("kind") == "WorkflowTemplate" and d["metadata"]["name"] == TEMPLATE:
            for t in d["spec"]["templates"]:
                if t["name"] == template:
                    return t["container"]  # type: ignore[no-any-return]
    raise AssertionError(template)


def output_on_read_only_root(docs: Docs) -> None:
    args = _container(docs, "generate")["args"]
    args[args.index("--output") + 1] = "/events.jsonl"


def credentials_dropped(docs: Docs) -> None:
    c = _container(docs, "aggregate")
    c.pop("envFrom", None)
    c["env"] = [
        e for e in c.get("env", []) if e["name"] not in {"PGUSER", "PGPASSWORD", "PGDATABASE"}
    ]


def claim_mounted_elsewhere(docs: Docs) -> None:
    for m in _container(docs, "aggregate")["volumeMounts"]:
        if m["mountPath"] == "/data":
            m["mountPath"] = "/input"


def runs_as_root(docs: Docs) -> None:
    _container(docs, "generate")["securityContext"]["runAsUser"] = 0


@pytest.mark.parametrize(
    ("breakage", "failing_step"),
    [
        (output_on_read_only_root, "generate"),
        (credentials_dropped, "aggregate"),
        (claim_mounted_elsewhere, "aggregate"),
        (runs_as_root, "translate"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_broken_manifest_fails_the_rehearsal(
    rendered: Docs,
    breakage: Callable[[Docs], None],
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
        result = _run(docs, docker_engine, pipeline_images, pipeline_secret, pg_server, base_image)
        cleanup(result.volume, docker_engine)
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
    cleanup(result.volume, docker_engine)
    assert [s.template for s in result.steps] == ["generate", "aggregate"]
