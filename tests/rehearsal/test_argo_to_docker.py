"""Unit tests of the Argo -> docker translation (no Docker engine needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .argo_to_docker import (
    Context,
    TranslationError,
    call_waves,
    docker_step,
    global_variables,
    input_variables,
    ordered_calls,
    plan,
    plan_spec,
    pod_steps,
    render,
    result_variables,
    substitute,
    when_holds,
    workflow_spec,
)

REPO = Path(__file__).resolve().parents[2]


def ctx(**overrides: Any) -> Context:
    values: dict[str, Any] = {
        "images": {"event-generator": "local/gen:1", "event-aggregator": "local/agg:1"},
        "secrets": {"creds": {"PGUSER": "u", "PGPASSWORD": "p", "PGDATABASE": "d"}},
        "workflow_name": "wf-123",
        "namespace": "ns",
        "claim_volume": "vol",
        "pg_port": 15432,
    }
    values.update(overrides)
    return Context(**values)


SPEC: dict[str, Any] = {
    "entrypoint": "main",
    "serviceAccountName": "sa",
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    },
    "arguments": {
        "parameters": [
            {"name": "count", "value": "100"},
            {"name": "tag", "value": "{{workflow.name}}-x"},
        ]
    },
    "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
    "templates": [
        {
            "name": "main",
            "dag": {
                "tasks": [
                    {
                        "name": "b",
                        "template": "agg",
                        "depends": "a.Succeeded",
                        "arguments": {
                            "parameters": [{"name": "batch", "value": "{{workflow.name}}"}]
                        },
                    },
                    {
                        "name": "a",
                        "template": "gen",
                        "arguments": {
                            "parameters": [{"name": "n", "value": "{{workflow.parameters.count}}"}]
                        },
                    },
                ]
            },
        },
        {
            "name": "gen",
            "inputs": {"parameters": [{"name": "n"}, {"name": "users", "value": "7"}]},
            "podSpecPatch": "runtimeClassName: gvisor\n",
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            "container": {
                "image": "ghcr.io/someone/event-generator:sha-abc1234",
                "command": ["generate-events"],
                "args": [
                    "--count",
                    "{{inputs.parameters.n}}",
                    "--users",
                    "{{ inputs.parameters.users }}",
                    "--output",
                    "/data/events.jsonl",
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "securityContext": {
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            },
        },
        {
            "name": "agg",
            "inputs": {"parameters": [{"name": "batch"}]},
            "container": {
                "image": "event-aggregator",
                "command": ["aggregate-events"],
                "args": ["--batch-id", "{{inputs.parameters.batch}}"],
                "env": [
                    {"name": "PGHOST", "value": "postgres"},
                    {"name": "PGPORT", "value": "5432"},
                    {"name": "LEVEL", "value": "{{workflow.parameters.tag}}"},
                ],
                "envFrom": [{"secretRef": {"name": "creds"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            },
        },
    ],
}


def test_substitute_replaces_known_tags_with_or_without_spaces() -> None:
    variables = {"inputs.parameters.n": "5", "workflow.name": "wf"}
    assert substitute(
        ["{{inputs.parameters.n}}", "{{ workflow.name }}-{{inputs.parameters.n}}"], variables
    ) == [
        "5",
        "wf-5",
    ]
    assert substitute({"a": {"b": "x{{workflow.name}}"}, "n": 3}, variables) == {
        "a": {"b": "xwf"},
        "n": 3,
    }


def test_substitute_rejects_unknown_variables_and_expressions() -> None:
    with pytest.raises(TranslationError, match="unresolved"):
        substitute("{{inputs.parameters.missing}}", {})
    with pytest.raises(TranslationError, match="not rehearsed"):
        substitute("{{=sprig.upper(workflow.name)}}", {"workflow.name": "wf"})
    with pytest.raises(TranslationError, match="not rehearsed"):
        substitute("{{=workflow.name + 'x'}}", {"workflow.name": "wf"})


def test_expression_tags_adler32_and_plain_variable() -> None:
    variables = {"workflow.name": "event-pipeline-1732233600", "inputs.parameters.n": "5"}
    # zlib.adler32 is the same checksum as Go's hash/adler32 (RFC 1950); value checked by hand
    # against the algorithm: a = 1 + sum(bytes), b = sum of the running a's, mod 65521.
    data = b"event-pipeline-1732233600"
    a, b = 1, 0
    for byte in data:
        a = (a + byte) % 65521
        b = (b + a) % 65521
    assert substitute("{{=sprig.adler32sum(workflow.name)}}", variables) == str(b << 16 | a)
    assert substitute("{{=inputs.parameters['n']}}", variables) == "5"
    assert substitute("{{= inputs.parameters.n }}", variables) == "5"


def test_global_variables_use_defaults_and_resolve_workflow_name() -> None:
    v = global_variables(SPEC, "wf-9", "ns")
    assert v["workflow.parameters.count"] == "100"
    assert v["workflow.parameters.tag"] == "wf-9-x"
    assert v["workflow.name"] == "wf-9"
    assert v["workflow.serviceAccountName"] == "sa"


def test_global_parameter_without_value_is_an_error() -> None:
    spec = {"arguments": {"parameters": [{"name": "x"}]}}
    with pytest.raises(TranslationError, match="no value"):
        global_variables(spec, "wf", "ns")


def test_input_variables_from_arguments_defaults_and_errors() -> None:
    gen = SPEC["templates"][1]
    v = input_variables(
        gen,
        {"parameters": [{"name": "n", "value": "{{workflow.parameters.count}}"}]},
        {"workflow.parameters.count": "42"},
    )
    assert v == {"inputs.parameters.n": "42", "inputs.parameters.users": "7"}
    with pytest.raises(TranslationError, match="not supplied"):
        input_variables(gen, {}, {})
    with pytest.raises(TranslationError, match="no inputs"):
        input_variables(
            gen, {"parameters": [{"name": "n", "value": "1"}, {"name": "typo", "value": "1"}]}, {}
        )


def test_dag_order_follows_depends() -> None:
    assert [(task, tpl["name"]) for task, tpl, _ in ordered_calls(SPEC)] == [
        ("a", "gen"),
        ("b", "agg"),
    ]
    broken = copy.deepcopy(SPEC)
    broken["templates"][0]["dag"]["tasks"][0]["depends"] = "nosuchtask"
    with pytest.raises(TranslationError):
        ordered_calls(broken)


def test_generator_step_flags() -> None:
    (_, gen, args), _ = ordered_calls(SPEC)
    step = docker_step(SPEC, gen, "a", args, ctx())
    argv = step.argv
    assert step.runtime == "runsc-hostnet"
    assert argv[argv.index("--runtime") + 1] == "runsc-hostnet"
    assert argv[argv.index("--user") + 1] == "10001:10001"
    assert argv[argv.index("--group-add") + 1] == "10001"
    assert "--read-only" in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "no-new-privileges" in argv
    assert argv[argv.index("--memory") + 1] == str(256 * 2**20)
    assert argv[argv.index("--cpus") + 1] == "0.5"
    assert "type=volume,src=vol,dst=/data,volume-nocopy" in argv
    assert f"type=tmpfs,dst=/tmp,tmpfs-mode=1777,tmpfs-size={64 * 2**20}" in argv
    image_at = argv.index("local/gen:1")
    assert argv[argv.index("--entrypoint") + 1] == "generate-events"
    assert argv[image_at + 1 :] == [
        "--count",
        "100",
        "--users",
        "7",
        "--output",
        "/data/events.jsonl",
    ]


def test_aggregator_env_rewrites_only_the_service_address() -> None:
    _, (_, agg, args) = ordered_calls(SPEC)
    step = docker_step(SPEC, agg, "b", args, ctx())
    assert step.runtime == "runc"
    assert "--runtime" not in step.argv
    assert step.env == {
        "PGUSER": "u",
        "PGPASSWORD": "p",
        "PGDATABASE": "d",
        "PGHOST": "127.0.0.1",
        "PGPORT": "15432",
        "LEVEL": "wf-123-x",
    }
    assert "p" not in step.argv  # secret values are passed through the environment only
    assert "type=volume,src=vol,dst=/data,volume-nocopy,readonly" in step.argv
    assert step.argv[-2:] == ["--batch-id", "wf-123"]


def test_other_pg_hosts_are_left_alone() -> None:
    spec = copy.deepcopy(SPEC)
    spec["templates"][2]["container"]["env"][0]["value"] = "db.example.internal"
    _, (_, agg, args) = ordered_calls(spec)
    step = docker_step(spec, agg, "b", args, ctx())
    assert step.env["PGHOST"] == "db.example.internal"
    assert step.env["PGPORT"] == "5432"


def _missing_secret_key(spec: dict[str, Any]) -> None:
    container = spec["templates"][2]["container"]
    ref = {"secretKeyRef": {"name": "creds", "key": "NOPE"}}
    container["env"].append({"name": "PGDATABASE", "valueFrom": ref})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_missing_secret_key, "does not exist"),
        (
            lambda s: s["templates"][2]["container"]["envFrom"][0]["secretRef"].update(
                name="other"
            ),
            "does not exist",
        ),
        (
            lambda s: s["templates"][1]["container"]["volumeMounts"].append(
                {"name": "cache", "mountPath": "/c"}
            ),
            "names no volume",
        ),
        (
            lambda s: s["templates"][1].update(podSpecPatch="runtimeClassName: kata\n"),
            "no local runtime",
        ),
        (
            lambda s: s["templates"][1].update(runtimeClassName="gvisor"),
            "not an Argo template field",
        ),
        (lambda s: s["securityContext"].update(runAsUser=0), "runAsUser is 0"),
        (
            lambda s: s["templates"][1]["container"].update(image="ghcr.io/x/other:1"),
            "nothing was built",
        ),
    ],
)
def test_translation_refuses_what_a_cluster_would_reject(mutate: Any, message: str) -> None:
    spec = copy.deepcopy(SPEC)
    mutate(spec)
    with pytest.raises(TranslationError, match=message):
        for task, tpl, args in ordered_calls(spec):
            docker_step(spec, tpl, task, args, ctx())


def test_cron_workflow_spec_overrides_template_arguments() -> None:
    docs = [
        {"kind": "WorkflowTemplate", "metadata": {"name": "t"}, "spec": copy.deepcopy(SPEC)},
        {
            "kind": "CronWorkflow",
            "metadata": {"name": "c"},
            "spec": {
                "workflowSpec": {
                    "workflowTemplateRef": {"name": "t"},
                    "arguments": {"parameters": [{"name": "count", "value": "5"}]},
                }
            },
        },
    ]
    spec = workflow_spec(docs, "t")
    assert global_variables(spec, "w", "n")["workflow.parameters.count"] == "5"


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_rendered_overlay_translates(overlay: str) -> None:
    """The real rendered WorkflowTemplate translates completely (every variable resolves,
    every image maps to a built image, every secret key exists)."""
    docs = render(REPO / "overlays" / overlay)
    context = ctx(
        secrets={"postgres-credentials": {"PGUSER": "u", "PGPASSWORD": "p", "PGDATABASE": "d"}}
    )
    steps = plan(docs, "event-pipeline", context)
    assert [s.task for s in steps] == ["batch.generate", "batch.main"]
    runtimes = {s.runtime for s in steps}
    if overlay == "no-gvisor":
        assert runtimes == {"runc"}
    for s in steps:
        assert "--read-only" in s.argv
        assert "{{" not in " ".join(s.argv)


def test_step_results_feed_later_inputs() -> None:
    spec = copy.deepcopy(SPEC)
    spec["templates"][0]["dag"]["tasks"][0]["arguments"]["parameters"][0]["value"] = (
        "{{tasks.a.outputs.result}}"
    )
    (task_a, _, _), (task_b, agg, args_b) = ordered_calls(spec)
    outputs = result_variables(task_a, '{"ok": true}\n')
    step = docker_step(spec, agg, task_b, args_b, ctx(), outputs)
    assert step.argv[-2:] == ["--batch-id", '{"ok": true}']
    with pytest.raises(TranslationError, match="unresolved"):
        docker_step(spec, agg, task_b, args_b, ctx())


def _sharded(spec: dict[str, Any], shards: str) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for p in out["arguments"]["parameters"]:
        if p["name"] == "shards":
            p["value"] = shards
    return out


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_rendered_overlay_with_four_shards_translates(overlay: str) -> None:
    """shards=4: four containerSet pods (generate, then main, sharing one emptyDir of their
    own), one wave, then the commit; shards=1 runs only the batch pod (generate, then main)."""
    spec = workflow_spec(render(REPO / "overlays" / overlay), "event-pipeline")
    context = ctx(
        secrets={"postgres-credentials": {"PGUSER": "u", "PGPASSWORD": "p", "PGDATABASE": "d"}}
    )
    one = plan_spec(_sharded(spec, "1"), context)
    assert [(s.task, s.container) for s in one] == [
        ("batch.generate", "generate"),
        ("batch.main", "main"),
    ]
    assert one[0].pod == one[1].pod and [v.rsplit("-", 1)[1] for v in one[0].pod_volumes] == [
        "batch",
        "tmp",
    ]
    four = _sharded(spec, "4")
    waves = [(c.label, c.wave) for c in call_waves(four, global_variables(four, "wf", "ns"))]
    assert waves == [(f"shard({i}:{i})", 0) for i in range(4)] + [("commit", 1)]
    steps = plan_spec(four, context)
    assert [(s.task, s.container) for s in steps] == [
        *((f"shard({i}:{i}).{c}", c) for i in range(4) for c in ("generate", "main")),
        ("commit", "main"),
    ]
    for i in range(4):
        gen, main = steps[2 * i], steps[2 * i + 1]
        # Both containers mount the pod's `shard` and `tmp` emptyDirs: shared volumes.
        assert gen.pod == main.pod and gen.pod_volumes == main.pod_volumes
        assert [v.rsplit("-", 1)[1] for v in gen.pod_volumes] == ["shard", "tmp"]
        shared = gen.pod_volumes[0]
        assert f"type=volume,src={shared},dst=/shard,volume-nocopy" in gen.argv
        assert f"type=volume,src={shared},dst=/shard,volume-nocopy,readonly" in main.argv
        for s in (gen, main):
            assert s.argv[s.argv.index("--shard") + 1] == f"{i}/4"
            assert "{{" not in " ".join(s.argv)
    assert len({s.pod_volumes for s in steps[:8]}) == 4  # one emptyDir per shard pod
    commit = steps[-1].argv
    assert commit[commit.index("--shards") + 1] == "4" and "--commit" in commit
    expected = {"runsc-hostnet"} if overlay == "minikube" else {"runc"}
    assert {s.runtime for s in steps} == expected


def test_when_conditions() -> None:
    v = {"workflow.parameters.shards": "4"}
    assert when_holds("{{workflow.parameters.shards}} != 1", v)
    assert not when_holds("{{workflow.parameters.shards}} == 1", v)
    assert when_holds("{{workflow.parameters.shards}} == 04", v)  # numbers compare as numbers
    assert when_holds("a == 'a'", v)
    for bad in ("{{workflow.parameters.shards}} > 1", "{{workflow.parameters.nope}} == 1"):
        with pytest.raises(TranslationError):
            when_holds(bad, v)


def _loop_spec(seq: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    task = spec["templates"][0]["dag"]["tasks"][1]
    task["withSequence"] = seq
    task["arguments"]["parameters"][0]["value"] = "{{item}}"
    return spec


def test_with_sequence_expands_items() -> None:
    calls = ordered_calls(_loop_spec({"start": "2", "end": "4"}))
    assert [(label, args["parameters"][0]["value"]) for label, _, args in calls[:3]] == [
        ("a(0:2)", "2"),
        ("a(1:3)", "3"),
        ("a(2:4)", "4"),
    ]
    assert calls[3][0] == "b"  # b depends on a: after every item of a
    assert ordered_calls(_loop_spec({"count": "0"}))[0][0] == "b"
    for bad in ({"count": "2", "end": "3"}, {"count": "two"}, {"start": "1"}):
        with pytest.raises(TranslationError):
            ordered_calls(_loop_spec(bad))


def test_container_set_runs_in_dependency_order_on_a_shared_emptydir() -> None:
    spec = copy.deepcopy(SPEC)
    gen = spec["templates"][1]
    c = gen.pop("container")
    gen["volumes"].append({"name": "work", "emptyDir": {}})
    first = {**c, "name": "first", "volumeMounts": [{"name": "work", "mountPath": "/w"}]}
    last = {
        **c,
        "name": "main",
        "dependencies": ["first"],
        "volumeMounts": [{"name": "work", "mountPath": "/w", "readOnly": True}],
    }
    gen["containerSet"] = {"containers": [last, first]}
    (task, tpl, args), _ = ordered_calls(spec)
    steps = pod_steps(spec, tpl, task, args, ctx())
    assert [s.container for s in steps] == ["first", "main"]
    assert steps[0].pod_volumes == steps[1].pod_volumes == ("rehearsal-wf-123-a-work",)
    retry = pod_steps(spec, tpl, task, args, ctx(), attempt=1)
    assert retry[0].pod_volumes == ("rehearsal-wf-123-a-retry1-work",)  # a new pod
    with pytest.raises(TranslationError, match="a pod of 2 containers"):
        docker_step(spec, tpl, task, args, ctx())
    last["dependencies"] = ["frist"]
    with pytest.raises(TranslationError, match="never resolve"):
        pod_steps(spec, tpl, task, args, ctx())
