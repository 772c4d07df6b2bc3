"""Translate a rendered Argo WorkflowTemplate into `docker run` command lines, step by step.

No Kubernetes runs here, so the rehearsal runs each step of the rendered workflow as a
container with the step's own image, command, args, env, volume mounts, user, read-only root
filesystem, capabilities and runtime class. Everything comes from the rendered manifest; the
only deliberate departures (each narrow, and listed in `Context`) are:

- image names: the rendered `ghcr.io/<owner>/<name>:<tag>` maps to the image built locally
  for `<name>` (the last path component); an image that maps to nothing is an error;
- PostgreSQL address: an env var PGHOST whose value names the in-cluster Service (`postgres`,
  `postgres.<ns>`, `postgres.<ns>.svc[.cluster.local]`) becomes 127.0.0.1, and PGPORT `5432`
  becomes the test server's port; nothing else in env is rewritten;
- Secrets come from the test's own credentials (they are never in Git);
- the volumeClaimTemplate becomes one Docker volume shared by all steps, prepared the way the
  kubelet prepares a volume for `fsGroup` (group-owned, setgid, group-writable); emptyDir
  becomes a tmpfs;
- `runtimeClassName: gvisor` (from podSpecPatch) becomes the engine's runsc runtime with host
  networking (`runsc-hostnet`, so the step reaches PostgreSQL on 127.0.0.1); the pod
  annotation `dev.gvisor.flag.overlay2: all:memory` becomes `runsc-contained`.

Anything the translator does not understand (an unknown `{{...}}` variable, an expression
template, a secret key that does not exist, a volume without a source) raises
`TranslationError` instead of being ignored, so a manifest mistake fails the rehearsal.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARGO_API = "argoproj.io/v1alpha1"
# Argo's simple template tags: {{inputs.parameters.x}}, {{ workflow.name }}, ...
TAG = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Task names referenced in a `depends:` expression (e.g. "a && (b.Succeeded || c.Failed)").
DEPENDS_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)(?:\.[A-Za-z]+)?")
DEPENDS_WORDS = {
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
}
# {{=sprig.fn(var)}} or {{=var}}; var may use ['name'] indexing (inputs.parameters['n']).
EXPR_CALL = re.compile(
    r"(?:(?P<func>[A-Za-z][\w.]*)\()?(?P<var>[A-Za-z][\w.\-\[\]'\"]*)(?(func)\))"
)
EXPR_INDEX = re.compile(r"\[['\"]([^'\"]+)['\"]\]")
SERVICE_HOST = re.compile(r"^postgres(\.[a-z0-9-]+(\.svc(\.cluster\.local)?)?)?$")
GVISOR_OVERLAY_ANNOTATION = "dev.gvisor.flag.overlay2"


class TranslationError(Exception):
    """The manifest uses something the rehearsal cannot reproduce faithfully (or is wrong)."""


@dataclass
class Context:
    """What the rehearsal supplies that a cluster would: images, secrets, addresses, runtimes."""

    images: Mapping[str, str]  # logical image name (last path component) -> local tag
    secrets: Mapping[str, Mapping[str, str]]  # Secret name -> data
    workflow_name: str
    namespace: str
    claim_volume: str  # Docker volume standing in for the volumeClaimTemplate
    pg_port: int
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    host_paths: Mapping[str, str] = field(default_factory=dict)  # node path -> local dir
    runtimes: Mapping[str, str] = field(
        default_factory=lambda: {"gvisor": "runsc-hostnet", "gvisor+overlay": "runsc-contained"}
    )


@dataclass
class Step:
    """One container run: the task it came from and the docker argv that reproduces it."""

    task: str
    template: str
    image: str
    runtime: str  # Docker runtime name ("runc" when no runtimeClassName)
    argv: list[str]
    env: dict[str, str]
    fs_group: int | None
    container: str = "main"  # the container's name in its pod
    pod: str = ""  # the pod it belongs to (containers of one containerSet share it)
    pod_volumes: tuple[str, ...] = ()  # Docker volumes standing in for the pod's shared emptyDirs


# --- rendering and lookup -----------------------------------------------------------------


def render(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` (kustomize 5.5, what the validation gate uses) as documents."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return copy.deepcopy(dict(doc))
    raise TranslationError(f"no {kind} named {name!r} in the rendered output")


def workflow_spec(docs: list[dict[str, Any]], template_name: str) -> dict[str, Any]:
    """The spec a Workflow submitted from the CronWorkflow would run (Argo merges the
    Workflow's own spec over the referenced WorkflowTemplate's spec)."""
    base: dict[str, Any] = find(docs, "WorkflowTemplate", template_name)["spec"]
    crons = [
        d
        for d in docs
        if d.get("kind") == "CronWorkflow"
        and d.get("spec", {}).get("workflowSpec", {}).get("workflowTemplateRef", {}).get("name")
        == template_name
    ]
    if not crons:
        return base
    wf = copy.deepcopy(crons[0]["spec"]["workflowSpec"])
    wf.pop("workflowTemplateRef")
    merged: dict[str, Any] = copy.deepcopy(base)
    own_args = wf.pop("arguments", {}).get("parameters", [])
    params = {p["name"]: p for p in merged.get("arguments", {}).get("parameters", [])}
    for p in own_args:
        params[p["name"]] = {**params.get(p["name"], {}), **p}
    if params:
        merged.setdefault("arguments", {})["parameters"] = list(params.values())
    merged.update(wf)
    return merged


# --- parameter substitution ---------------------------------------------------------------


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace Argo `{{...}}` tags in every string of VALUE (recursively), as the controller
    does before it creates a pod. An unknown variable or an `{{=expr}}` raises."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("="):
                return evaluate(key[1:], variables, match.group(0))
            if key not in variables:
                raise TranslationError(f"unresolved Argo variable {match.group(0)}")
            return variables[key]

        return TAG.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def evaluate(expr: str, variables: Mapping[str, str], tag: str) -> str:
    """The few Argo expression tags (`{{=...}}`, expr-lang + sprig) the manifests use:
    a plain variable, and `sprig.adler32sum(<variable>)` (Go's adler32 of the UTF-8 bytes,
    printed in decimal, as sprig does). Anything else raises rather than being guessed."""
    m = EXPR_CALL.fullmatch(expr.strip())
    if not m:
        raise TranslationError(f"expression not rehearsed: {tag}")
    func, var = m.group("func"), EXPR_INDEX.sub(r".\1", m.group("var"))
    if var not in variables:
        raise TranslationError(f"unresolved Argo variable in {tag}")
    value = variables[var]
    if func is None:
        return value
    if func == "sprig.adler32sum":
        return str(zlib.adler32(value.encode("utf-8")))
    raise TranslationError(f"expression function {func} not rehearsed: {tag}")


def global_variables(spec: Mapping[str, Any], workflow_name: str, namespace: str) -> dict[str, str]:
    """`workflow.*` variables: name, namespace, service account and `workflow.parameters.*`
    from the spec's argument defaults (a parameter without a value is an error, as in Argo)."""
    variables = {
        "workflow.name": workflow_name,
        "workflow.namespace": namespace,
        "workflow.serviceAccountName": str(spec.get("serviceAccountName", "default")),
    }
    for p in spec.get("arguments", {}).get("parameters", []):
        if "value" in p:
            raw = p["value"]
        elif "default" in p:
            raw = p["default"]
        else:
            raise TranslationError(f"workflow parameter {p['name']!r} has no value or default")
        variables[f"workflow.parameters.{p['name']}"] = str(raw)
    # Parameters may refer to other workflow variables (e.g. a default of "{{workflow.name}}").
    return {k: substitute(v, variables) for k, v in variables.items()}


def input_variables(
    template: Mapping[str, Any], arguments: Mapping[str, Any], variables: Mapping[str, str]
) -> dict[str, str]:
    """`inputs.parameters.*` of TEMPLATE from the caller's ARGUMENTS (already substituted in
    the caller's scope) or the input's own value/default; a missing one raises."""
    given = {p["name"]: p.get("value") for p in arguments.get("parameters", [])}
    result: dict[str, str] = {}
    for p in template.get("inputs", {}).get("parameters", []):
        name = p["name"]
        if given.get(name) is not None:
            raw = given[name]
        elif "value" in p:
            raw = p["value"]
        elif "default" in p:
            raw = p["default"]
        else:
            raise TranslationError(f"template {template['name']!r}: input {name!r} not supplied")
        result[f"inputs.parameters.{name}"] = str(substitute(raw, variables))
    unknown = set(given) - {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
    if unknown:
        raise TranslationError(f"template {template['name']!r} has no inputs {sorted(unknown)}")
    return result


# --- step order ---------------------------------------------------------------------------


def _depends_on(task: Mapping[str, Any]) -> set[str]:
    names = set(task.get("dependencies", []))
    expr = task.get("depends", "")
    for m in DEPENDS_NAME.finditer(expr):
        if m.group(1) not in DEPENDS_WORDS:
            names.add(m.group(1))
    return names


@dataclass
class Call:
    """One pod the workflow runs: its node label (`shard(2:2)` for item 2 of a loop), its
    template, the arguments it is called with, and its wave: pods of one wave may run at the
    same time, after every pod of the earlier waves."""

    label: str
    template: dict[str, Any]
    arguments: dict[str, Any]
    wave: int


def when_holds(expr: str, variables: Mapping[str, str]) -> bool:
    """A `when` condition of the form `A == B` or `A != B` after substitution, compared as
    integers when both sides are, else as strings (what the manifests use); anything else
    raises rather than being guessed."""
    text = substitute(expr, variables)
    m = re.fullmatch(r"\s*(.*?)\s*(==|!=)\s*(.*?)\s*", text)
    if not m or any(op in m.group(1) + m.group(3) for op in ("==", "!=", "&&", "||", "(")):
        raise TranslationError(f"when expression not rehearsed: {expr!r}")
    left, right = (x.strip("'\"") for x in (m.group(1), m.group(3)))
    if re.fullmatch(r"-?[0-9]+", left) and re.fullmatch(r"-?[0-9]+", right):
        equal = int(left) == int(right)
    else:
        equal = left == right
    return equal if m.group(2) == "==" else not equal


def _replace_item(value: Any, item: str) -> Any:
    """VALUE with `{{item}}` replaced (other tags stay for the pod's own substitution)."""
    if isinstance(value, str):
        return TAG.sub(lambda m: item if m.group(1) == "item" else m.group(0), value)
    if isinstance(value, list):
        return [_replace_item(v, item) for v in value]
    if isinstance(value, dict):
        return {k: _replace_item(v, item) for k, v in value.items()}
    return value


def _sequence(seq: Mapping[str, Any], variables: Mapping[str, str], name: str) -> list[str]:
    """The items of a withSequence (decimal strings, as Argo makes them)."""
    if "format" in seq:
        raise TranslationError(f"{name}: withSequence.format is not rehearsed")
    if ("count" in seq) == ("end" in seq):
        raise TranslationError(f"{name}: withSequence needs exactly one of count or end")

    def number(key: str, default: int) -> int:
        raw = str(substitute(str(seq.get(key, default)), variables)).strip()
        if not re.fullmatch(r"[0-9]+", raw):
            raise TranslationError(f"{name}: withSequence.{key} {raw!r} is not an integer")
        return int(raw)

    start = number("start", 0)
    end = start + number("count", 0) - 1 if "count" in seq else number("end", 0)
    return [str(i) for i in range(start, end + 1)]


def _expand_loop(task: Mapping[str, Any], variables: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(node label, arguments) of each pod a step/task makes: one, or one per item."""
    name, args = task["name"], task.get("arguments", {})
    if "withItems" in task or "withParam" in task:
        raise TranslationError(f"{name}: withItems/withParam are not rehearsed")
    if "withSequence" not in task:
        return [(name, args)]
    items = _sequence(task["withSequence"], variables, name)
    return [(f"{name}({i}:{item})", _replace_item(args, item)) for i, item in enumerate(items)]


def call_waves(spec: Mapping[str, Any], variables: Mapping[str, str] | None = None) -> list[Call]:
    """Every pod the entrypoint runs, in an order the controller could run them (DAG:
    topological; steps: group by group), loops expanded, steps whose `when` is false skipped
    (a skipped task satisfies `depends`, as in Argo). VARIABLES: the workflow's global
    variables for `when` and loop bounds (default: from SPEC with placeholder names)."""
    templates = {t["name"]: t for t in spec["templates"]}
    scope = dict(variables or global_variables(spec, "workflow", "namespace"))

    def runs(task: Mapping[str, Any]) -> bool:
        return "when" not in task or when_holds(str(task["when"]), scope)

    def expand(tpl_name: str, args: dict[str, Any], label: str, wave: int) -> list[Call]:
        if tpl_name not in templates:
            raise TranslationError(f"template {tpl_name!r} does not exist")
        tpl = templates[tpl_name]
        if "container" in tpl or "containerSet" in tpl:
            return [Call(label, tpl, args, wave)]
        calls: list[Call] = []
        if "dag" in tpl:
            tasks = {t["name"]: t for t in tpl["dag"]["tasks"]}
            done: set[str] = set()
            pending = dict(tasks)
            while pending:
                ready = [n for n, t in pending.items() if _depends_on(t) <= done]
                if not ready:
                    raise TranslationError(
                        f"DAG {tpl_name!r}: unresolvable depends in {sorted(pending)}"
                    )
                next_wave = wave
                for n in sorted(ready, key=list(tasks).index):
                    t = pending.pop(n)
                    if runs(t):
                        for node, node_args in _expand_loop(t, scope):
                            sub = expand(t["template"], node_args, node, wave)
                            calls += sub
                            next_wave = max([next_wave, *(c.wave + 1 for c in sub)])
                    done.add(n)
                wave = next_wave
            return calls
        if "steps" in tpl:
            for group in tpl["steps"]:
                next_wave = wave
                for s in group:
                    if runs(s):
                        for node, node_args in _expand_loop(s, scope):
                            sub = expand(s["template"], node_args, node, wave)
                            calls += sub
                            next_wave = max([next_wave, *(c.wave + 1 for c in sub)])
                wave = next_wave
            return calls
        raise TranslationError(
            f"template {tpl_name!r}: only container, containerSet, dag and steps are rehearsed"
        )

    return expand(spec["entrypoint"], {}, spec["entrypoint"], 0)


def ordered_calls(
    spec: Mapping[str, Any], variables: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(node label, template, arguments) of every pod, in an order the controller could run
    them (see `call_waves`)."""
    calls = sorted(call_waves(spec, variables), key=lambda c: c.wave)
    return [(c.label, c.template, c.arguments) for c in calls]


# --- one container ------------------------------------------------------------------------


def local_image(image: str, ctx: Context) -> str:
    """The locally built tag for a rendered image reference (matched on its last path
    component without tag or digest)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    if name not in ctx.images:
        raise TranslationError(f"image {image!r}: nothing was built for {name!r}")
    return ctx.images[name]


def runtime_for(spec: Mapping[str, Any], tpl: Mapping[str, Any], ctx: Context) -> str:
    """Docker runtime for the pod: runtimeClassName from the template's or the workflow's
    podSpecPatch (the template's wins, as Argo merges it last)."""
    runtime_class = None
    for patch in (spec.get("podSpecPatch"), tpl.get("podSpecPatch")):
        if patch:
            parsed = yaml.safe_load(patch)
            if not isinstance(parsed, dict):
                raise TranslationError(f"podSpecPatch is not a mapping: {patch!r}")
            runtime_class = parsed.get("runtimeClassName", runtime_class)
    if tpl.get("runtimeClassName") or spec.get("runtimeClassName"):
        raise TranslationError("runtimeClassName is not an Argo template field (use podSpecPatch)")
    if runtime_class is None:
        return "runc"
    annotations = {
        **spec.get("podMetadata", {}).get("annotations", {}),
        **tpl.get("metadata", {}).get("annotations", {}),
    }
    key = runtime_class
    if annotations.get(GVISOR_OVERLAY_ANNOTATION) == "all:memory":
        key = f"{runtime_class}+overlay"
    if key not in ctx.runtimes:
        raise TranslationError(f"runtimeClassName {runtime_class!r} has no local runtime")
    return ctx.runtimes[key]


def _env(container: Mapping[str, Any], ctx: Context, pod_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        prefix = src.get("prefix", "")
        if "secretRef" in src:
            ref, store, kind = src["secretRef"], ctx.secrets, "Secret"
        elif "configMapRef" in src:
            ref, store, kind = src["configMapRef"], ctx.config_maps, "ConfigMap"
        else:
            raise TranslationError(f"envFrom source not rehearsed: {src}")
        if ref["name"] not in store:
            if ref.get("optional"):
                continue
            raise TranslationError(f"envFrom: {kind} {ref['name']!r} does not exist")
        for k, v in store[ref["name"]].items():
            env[prefix + k] = v
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if secret else "configMapKeyRef"]
            store = ctx.secrets if secret else ctx.config_maps
            data = store.get(ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise TranslationError(f"env {name}: {ref['name']}/{ref['key']} does not exist")
            env[name] = data[ref["key"]]
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            fields = {"metadata.name": pod_name, "metadata.namespace": ctx.namespace}
            if path not in fields:
                raise TranslationError(f"env {name}: fieldRef {path} not rehearsed")
            env[name] = fields[path]
        else:
            # env with neither value nor valueFrom is an empty string in Kubernetes.
            env[name] = ""
    # The one narrow rewrite: the in-cluster PostgreSQL Service -> the test server.
    if SERVICE_HOST.match(env.get("PGHOST", "")):
        env["PGHOST"] = "127.0.0.1"
        if env.get("PGPORT", "5432") == "5432":
            env["PGPORT"] = str(ctx.pg_port)
    return env


def _quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def _cpus(q: str) -> str:
    cpus = int(q[:-1]) / 1000 if q.endswith("m") else float(q)
    # Docker refuses a limit above the host's CPU count (a node would just schedule elsewhere).
    return str(min(cpus, float(os.cpu_count() or 1)))


def _host_dir(host_path: Mapping[str, Any], ctx: Context, task: str) -> str:
    """The local directory standing in for a node path; created like the kubelet does for
    DirectoryOrCreate (root-owned, 0755), required to exist for Directory."""
    path, kind = host_path["path"], host_path.get("type", "")
    if path not in ctx.host_paths:
        raise TranslationError(f"{task}: hostPath {path} has no local stand-in")
    local = Path(ctx.host_paths[path])
    if kind == "DirectoryOrCreate" and not local.exists():
        local.mkdir(mode=0o755, parents=True)
        local.chmod(0o755)  # mkdir's mode is masked by umask; the kubelet's is not
    elif kind in ("Directory", "DirectoryOrCreate"):
        if not local.is_dir():
            raise TranslationError(f"{task}: hostPath {path} is not a directory")
    else:
        raise TranslationError(f"{task}: hostPath type {kind!r} is not rehearsed")
    return str(local)


def docker_step(
    spec: Mapping[str, Any],
    tpl: Mapping[str, Any],
    task: str,
    arguments: Mapping[str, Any],
    ctx: Context,
    outputs: Mapping[str, str] | None = None,
) -> Step:
    """The `docker run` argv for one container template call. OUTPUTS holds the results of
    the steps already run (`tasks.<name>.outputs.result`, `steps.<name>.outputs.result`)."""
    steps = pod_steps(spec, tpl, task, arguments, ctx, outputs)
    if len(steps) != 1:
        raise TranslationError(f"{task}: a pod of {len(steps)} containers (use pod_steps)")
    return steps[0]


def _slug(label: str) -> str:
    """A node label (`shard(2:2)`) as a Docker name part (`shard-2-2`)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _set_order(cs: Mapping[str, Any], task: str) -> list[dict[str, Any]]:
    """The containers of a containerSet in an order their dependencies allow (the emissary
    starts each one once its dependencies exited 0)."""
    containers = {c["name"]: c for c in cs.get("containers", [])}
    done: list[str] = []
    while len(done) < len(containers):
        ready = [
            n
            for n, c in containers.items()
            if n not in done and set(c.get("dependencies", [])) <= set(done)
        ]
        if not ready:
            raise TranslationError(f"{task}: containerSet dependencies never resolve")
        done += ready
    return [containers[n] for n in done]


def pod_steps(
    spec: Mapping[str, Any],
    tpl: Mapping[str, Any],
    task: str,
    arguments: Mapping[str, Any],
    ctx: Context,
    outputs: Mapping[str, str] | None = None,
    attempt: int = 0,
) -> list[Step]:
    """The containers of one pod (a container template, or every container of a
    containerSet in dependency order) as docker runs sharing the pod's security context,
    runtime and volumes. ATTEMPT > 0 is an Argo retry: a new pod, so new emptyDirs."""
    variables = global_variables(spec, ctx.workflow_name, ctx.namespace)
    variables |= dict(outputs or {})
    variables |= input_variables(tpl, arguments, variables)
    pod_name = f"{ctx.workflow_name}-{_slug(task)}" + (f"-retry{attempt}" if attempt else "")
    variables["pod.name"] = pod_name
    tpl = substitute(copy.deepcopy(dict(tpl)), variables)
    if "container" in tpl:
        containers, shared_mounts = [{**tpl["container"], "name": "main"}], []
    elif "containerSet" in tpl:
        containers = _set_order(tpl["containerSet"], task)
        shared_mounts = tpl["containerSet"].get("volumeMounts", [])
    else:
        raise TranslationError(f"{task}: template {tpl['name']!r} runs no container")
    # An emptyDir that several containers of the pod mount is one directory shared by them:
    # a Docker volume of its own per pod (a tmpfs would be private to one container).
    mounts_of = [[*shared_mounts, *c.get("volumeMounts", [])] for c in containers]
    users: dict[str, int] = {}
    for mounts in mounts_of:
        for name in dict.fromkeys(m["name"] for m in mounts):
            users[name] = users.get(name, 0) + 1
    volumes = {v["name"]: v for v in [*spec.get("volumes", []), *tpl.get("volumes", [])]}
    shared = {
        n: f"rehearsal-{pod_name}-{_slug(n)}"
        for n, k in users.items()
        if k > 1 and "emptyDir" in volumes.get(n, {})
    }
    runtime = runtime_for(spec, tpl, ctx)
    pod_sc = {**spec.get("securityContext", {}), **tpl.get("securityContext", {})}
    steps = []
    for c, mounts in zip(containers, mounts_of, strict=True):
        one = len(containers) == 1
        label = task if one else f"{task}.{c['name']}"
        name = f"rehearsal-{pod_name}" + ("" if one else f"-{c['name']}")
        argv, env = _container_argv(
            spec, tpl, c, mounts, volumes, shared, pod_sc, runtime, label, name, pod_name, ctx
        )
        image = local_image(c["image"], ctx)
        steps.append(
            Step(
                label,
                tpl["name"],
                image,
                runtime,
                argv,
                env,
                pod_sc.get("fsGroup"),
                container=c["name"],
                pod=pod_name,
                pod_volumes=tuple(shared.values()),
            )
        )
    return steps


def _container_argv(
    spec: Mapping[str, Any],
    tpl: Mapping[str, Any],
    c: Mapping[str, Any],
    mounts: list[Mapping[str, Any]],
    volumes: Mapping[str, Mapping[str, Any]],
    shared: Mapping[str, str],
    pod_sc: Mapping[str, Any],
    runtime: str,
    task: str,
    name: str,
    pod_name: str,
    ctx: Context,
) -> tuple[list[str], dict[str, str]]:
    sc = c.get("securityContext", {})
    argv = ["docker", "run", "--rm", "--name", name[:63]]
    argv += ["--network", "host"]
    if runtime != "runc":
        argv += ["--runtime", runtime]

    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if non_root and uid is None:
        raise TranslationError(f"{task}: runAsNonRoot without runAsUser is not rehearsed")
    if non_root and uid == 0:
        # What the kubelet refuses: CreateContainerConfigError.
        raise TranslationError(f"{task}: runAsNonRoot is true but runAsUser is 0")
    if uid is not None:
        argv += ["--user", f"{uid}:{gid if gid is not None else 0}"]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None:
        argv += ["--group-add", str(fs_group)]
    for g in pod_sc.get("supplementalGroups", []):
        argv += ["--group-add", str(g)]

    if sc.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if sc.get("privileged"):
        raise TranslationError(f"{task}: privileged containers are not rehearsed")
    if sc.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities", {})
    for cap in caps.get("drop", []):
        argv += ["--cap-drop", cap]
    for cap in caps.get("add", []):
        argv += ["--cap-add", cap]
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
    if seccomp == "Unconfined":
        argv += ["--security-opt", "seccomp=unconfined"]

    limits = c.get("resources", {}).get("limits", {})
    if "memory" in limits:
        argv += ["--memory", str(_quantity_bytes(str(limits["memory"])))]
    if "cpu" in limits:
        argv += ["--cpus", _cpus(str(limits["cpu"]))]

    # Volumes: the workflow's claim templates, the workflow's and the template's volumes.
    claims = {v["metadata"]["name"] for v in spec.get("volumeClaimTemplates", [])}
    for m in mounts:
        vname, dst = m["name"], m["mountPath"]
        ro = ",readonly" if m.get("readOnly") else ""
        if m.get("subPath"):
            raise TranslationError(f"{task}: subPath mounts are not rehearsed")
        if vname in claims:
            argv += ["--mount", f"type=volume,src={ctx.claim_volume},dst={dst},volume-nocopy{ro}"]
        elif vname in shared:
            argv += ["--mount", f"type=volume,src={shared[vname]},dst={dst},volume-nocopy{ro}"]
        elif vname in volumes and "emptyDir" in volumes[vname]:
            size = volumes[vname]["emptyDir"].get("sizeLimit")
            opts = f",tmpfs-size={_quantity_bytes(str(size))}" if size else ""
            if ro:
                raise TranslationError(f"{task}: read-only emptyDir {vname!r} is not rehearsed")
            argv += ["--mount", f"type=tmpfs,dst={dst},tmpfs-mode=1777{opts}"]
        elif vname in volumes and "hostPath" in volumes[vname]:
            src = _host_dir(volumes[vname]["hostPath"], ctx, task)
            argv += ["--mount", f"type=bind,src={src},dst={dst}{ro}"]
        elif vname in volumes:
            raise TranslationError(f"{task}: volume {vname!r} of this kind is not rehearsed")
        else:
            raise TranslationError(f"{task}: volumeMount {vname!r} names no volume or claim")

    if c.get("workingDir"):
        argv += ["--workdir", c["workingDir"]]
    env = _env(c, ctx, pod_name)
    for k in env:
        argv += ["--env", k]  # values travel in the process env, not on the command line

    command = [str(x) for x in c.get("command", [])]
    args = [str(x) for x in c.get("args", [])]
    if command:
        argv += ["--entrypoint", command[0]]
    argv.append(local_image(c["image"], ctx))
    argv += command[1:] + args
    return argv, env


def plan(docs: list[dict[str, Any]], template_name: str, ctx: Context) -> list[Step]:
    """Every container of the workflow, in order, as docker argv."""
    return plan_spec(workflow_spec(docs, template_name), ctx)


def plan_spec(spec: Mapping[str, Any], ctx: Context) -> list[Step]:
    """Every container of SPEC, in order, as docker argv (step results are stand-ins)."""
    if spec.get("volumes") and any("persistentVolumeClaim" in v for v in spec["volumes"]):
        raise TranslationError("existing PVC volumes are not rehearsed")
    steps: list[Step] = []
    outputs: dict[str, str] = {}
    variables = global_variables(spec, ctx.workflow_name, ctx.namespace)
    for task, tpl, args in ordered_calls(spec, variables):
        steps += pod_steps(spec, tpl, task, args, ctx, outputs)
        # Results are known only at run time: stand-ins keep the plan printable.
        outputs |= result_variables(task, f"<result of {task}>")
    return steps


def result_variables(task: str, stdout: str) -> dict[str, str]:
    """What a finished step contributes: its stdout as `outputs.result` (Argo keeps the
    main container's stdout, without the trailing newline)."""
    result = stdout.rstrip("\n")
    return {f"tasks.{task}.outputs.result": result, f"steps.{task}.outputs.result": result}


def describe(step: Step) -> str:
    """A readable one-liner of the run (secret values masked)."""
    shown = {k: ("***" if "PASSWORD" in k else v) for k, v in step.env.items()}
    return f"{step.task} [{step.runtime}] {json.dumps(step.argv[2:])} env={json.dumps(shown)}"
