"""Layer 3 for Argo Workflows objects: what the controller rejects or silently ignores."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

import yaml

from . import cron, fanout
from .model import Obj, Report, Resource, as_dict, as_list, jpath, walk_strings
from .podchecks import Index
from .pods import (
    ARGO_WF_KINDS,
    VAR_RE,
    effective_spec,
    find_template_resource,
    merge,
    parse_patch,
    workflow_spec_path,
)

# Pod fields people put on templates by mistake; the CRD prunes them, Argo never sees them.
POD_ONLY_FIELDS = (
    "runtimeClassName",
    "hostPath",
    "restartPolicy",
    "dnsPolicy",
    "containers",
    "hostname",
    "shareProcessNamespace",
    "preemptionPolicy",
)
GLOBAL_WORKFLOW_VARS = {
    "name",
    "namespace",
    "uid",
    "serviceAccountName",
    "mainEntrypoint",
    "creationTimestamp",
    "priority",
    "duration",
    "status",
    "failures",
    "scheduledTime",
    "labels",
    "annotations",
    "parameters",
    "outputs",
    "labels.json",
    "annotations.json",
}
KNOWN_ROOTS = {
    "workflow",
    "inputs",
    "outputs",
    "steps",
    "tasks",
    "item",
    "pod",
    "node",
    "retries",
    "lastRetry",
    "cronworkflow",
    "status",
    "exitCode",
}
CONTROLLER_NAMESPACE = "argo"
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
EXPR_PARAM = re.compile(
    r"\b(inputs|workflow)\.parameters(?:\.([A-Za-z0-9_-]+)|\[['\"]([^'\"]+)['\"]\])"
)


def _names(items: Any) -> set[str]:
    return {str(as_dict(x).get("name")) for x in as_list(items) if as_dict(x).get("name")}


def _template_map(spec: Obj) -> dict[str, Obj]:
    return {str(as_dict(t).get("name")): as_dict(t) for t in as_list(spec.get("templates"))}


def check(r: Resource, idx: Index, report: Report) -> None:
    if r.kind not in ARGO_WF_KINDS:
        return
    if r.kind == "CronWorkflow":
        _check_cron(r, report)
    own_path = workflow_spec_path(r)
    spec, via = effective_spec(r, idx.resources)
    own = as_dict(r.spec.get("workflowSpec")) if r.kind == "CronWorkflow" else r.spec
    ref = as_dict(own.get("workflowTemplateRef"))
    if ref:
        if not ref.get("name"):
            report.add("semantics", r, jpath(own_path, "workflowTemplateRef", "name"), "empty")
        elif via is None:
            kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
            report.add(
                "semantics",
                r,
                jpath(own_path, "workflowTemplateRef", "name"),
                f"{kind} {ref.get('name')!r} is not in the render (namespace {r.namespace})",
            )
            return
    templates = _template_map(spec)
    seen: set[str] = set()
    for i, t in enumerate(as_list(own.get("templates"))):
        n = str(as_dict(t).get("name"))
        if n in seen:
            report.add(
                "semantics",
                r,
                jpath(own_path, "templates", i, "name"),
                f"duplicate template name {n!r}",
            )
        seen.add(n)
    entry = spec.get("entrypoint")
    if entry is not None and str(entry) not in templates:
        report.add(
            "semantics",
            r,
            jpath(own_path, "entrypoint"),
            f"entrypoint {entry!r} is not a template (templates: {', '.join(sorted(templates))})",
        )
    on_exit = own.get("onExit")
    if on_exit is not None and str(on_exit) not in templates:
        report.add(
            "semantics",
            r,
            jpath(own_path, "onExit"),
            f"onExit template {on_exit!r} does not exist",
        )
    if entry is None and r.kind in ("Workflow", "CronWorkflow"):
        report.add(
            "semantics",
            r,
            jpath(own_path, "entrypoint"),
            "no entrypoint (neither here nor in the referenced WorkflowTemplate)",
        )
    if r.kind == "Workflow" or via is not None:
        wf_params = _names(as_dict(spec.get("arguments")).get("parameters"))
    else:
        wf_params = _names(as_dict(own.get("arguments")).get("parameters"))
    # Entrypoint inputs come from the workflow arguments.
    if entry is not None and str(entry) in templates:
        for p in as_list(as_dict(templates[str(entry)].get("inputs")).get("parameters")):
            p = as_dict(p)
            if _needs_value(p) and p.get("name") not in wf_params and r.kind != "WorkflowTemplate":
                report.add(
                    "semantics",
                    r,
                    jpath(own_path, "arguments", "parameters"),
                    f"entrypoint input {p.get('name')!r} has no value and no argument",
                )
    _check_spec_fields(r, own, own_path, report)
    if r.namespace != CONTROLLER_NAMESPACE and spec.get("archiveLogs") is not False:
        # The quick-start's default artifact repository archives logs with credentials that
        # exist only in namespace argo: the wait container fails elsewhere (argo-workflows
        # #12727, #12716).
        report.add(
            "semantics",
            r,
            jpath(own_path, "archiveLogs"),
            f"workflows in namespace {r.namespace} must set archiveLogs: false (the default "
            f"artifact repository's credentials exist only in {CONTROLLER_NAMESPACE})",
        )
    # Templates defined on this object (a ref'd WorkflowTemplate is checked on its own).
    for i, t in enumerate(as_list(own.get("templates"))):
        _check_template(
            r, as_dict(t), jpath(own_path, "templates", i), templates, wf_params, idx, report
        )
    wf_values = {
        str(as_dict(p).get("name")): str(as_dict(p).get("value", as_dict(p).get("default")))
        for p in as_list(as_dict(spec.get("arguments")).get("parameters"))
        if "value" in as_dict(p) or "default" in as_dict(p)
    }
    fanout.check(r, own, own_path, wf_values, report)
    for key in ("podSpecPatch",):
        if isinstance(own.get(key), str):
            _parse_or_report(r, own[key], jpath(own_path, key), report)


def _needs_value(p: Obj) -> bool:
    return not any(k in p for k in ("value", "default", "valueFrom", "enum"))


def _check_cron(r: Resource, report: Report) -> None:
    spec = r.spec
    if "schedule" in spec:
        report.add(
            "semantics",
            r,
            "spec.schedule",
            "Argo Workflows v4 removed `schedule`: use `schedules:` (a list)",
        )
    scheds = spec.get("schedules")
    if not isinstance(scheds, list) or not scheds:
        report.add(
            "semantics", r, "spec.schedules", "CronWorkflow needs a non-empty schedules list"
        )
    for i, s in enumerate(as_list(scheds)):
        why = cron.check(str(s))
        if why:
            report.add("semantics", r, jpath("spec", "schedules", i), f"bad cron {s!r}: {why}")
    tz = spec.get("timezone")
    if tz:
        try:
            zoneinfo.ZoneInfo(str(tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            report.add("semantics", r, "spec.timezone", f"unknown time zone {tz!r}")
    pol = spec.get("concurrencyPolicy")
    if pol is not None and pol not in ("Allow", "Forbid", "Replace"):
        report.add("semantics", r, "spec.concurrencyPolicy", f"unknown policy {pol!r}")


def _check_spec_fields(r: Resource, spec: Obj, path: str, report: Report) -> None:
    for k in POD_ONLY_FIELDS:
        if k in spec:
            report.add(
                "semantics",
                r,
                jpath(path, k),
                f"{k} is not a WorkflowSpec field: Argo ignores it (use podSpecPatch)",
            )
    gc = as_dict(spec.get("podGC")).get("strategy")
    if gc is not None and gc not in (
        "",
        "OnPodCompletion",
        "OnPodSuccess",
        "OnWorkflowCompletion",
        "OnWorkflowSuccess",
    ):
        report.add("semantics", r, jpath(path, "podGC", "strategy"), f"unknown strategy {gc!r}")
    vgc = as_dict(spec.get("volumeClaimGC")).get("strategy")
    if vgc is not None and vgc not in ("", "OnWorkflowCompletion", "OnWorkflowSuccess"):
        report.add(
            "semantics", r, jpath(path, "volumeClaimGC", "strategy"), f"unknown strategy {vgc!r}"
        )
    names: set[str] = set()
    for i, c in enumerate(as_list(spec.get("volumeClaimTemplates"))):
        c = as_dict(c)
        n = as_dict(c.get("metadata")).get("name")
        cpath = jpath(path, "volumeClaimTemplates", i)
        if not n:
            report.add(
                "semantics", r, jpath(cpath, "metadata", "name"), "claim template without name"
            )
        elif n in names:
            report.add("semantics", r, jpath(cpath, "metadata", "name"), f"duplicate claim {n!r}")
        names.add(str(n))
        cs = as_dict(c.get("spec"))
        if not as_list(cs.get("accessModes")):
            report.add("semantics", r, jpath(cpath, "spec", "accessModes"), "no accessModes")
        if not as_dict(as_dict(cs.get("resources")).get("requests")).get("storage"):
            report.add(
                "semantics",
                r,
                jpath(cpath, "spec", "resources", "requests", "storage"),
                "no storage request",
            )
    dup = names & _names(spec.get("volumes"))
    for n in sorted(dup):
        report.add(
            "semantics", r, jpath(path, "volumes"), f"volume {n!r} also a volumeClaimTemplate name"
        )
    _check_duration(r, as_dict(spec.get("retryStrategy")), jpath(path, "retryStrategy"), report)


def _check_duration(r: Resource, rs: Obj, path: str, report: Report) -> None:
    b = as_dict(rs.get("backoff"))
    for k in ("duration", "maxDuration"):
        v = b.get(k)
        if v is not None and not (str(v).isdigit() or DURATION.match(str(v))):
            report.add("semantics", r, jpath(path, "backoff", k), f"bad duration {v!r}")
    pol = rs.get("retryPolicy")
    if pol is not None and pol not in ("Always", "OnFailure", "OnError", "OnTransientError"):
        report.add("semantics", r, jpath(path, "retryPolicy"), f"unknown retryPolicy {pol!r}")


def _parse_or_report(r: Resource, raw: str, path: str, report: Report) -> Any:
    try:
        parsed = parse_patch(raw)
    except (ValueError, yaml.YAMLError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        report.add("semantics", r, path, f"podSpecPatch is neither JSON nor YAML: {msg}")
        return None
    if not isinstance(parsed, dict):
        report.add("semantics", r, path, "podSpecPatch does not parse to a mapping")
    return parsed


def _resolve(
    step: Obj, templates: dict[str, Obj], idx: Index, r: Resource, path: str, report: Report
) -> Obj | None:
    """The template a step/task runs, or None (reported) when it does not resolve."""
    if "inline" in step:
        return as_dict(step["inline"])
    tref = as_dict(step.get("templateRef"))
    if tref:
        target = find_template_resource(
            idx.resources, str(tref.get("name")), r.namespace, bool(tref.get("clusterScope"))
        )
        if target is None:
            report.add(
                "semantics",
                r,
                jpath(path, "templateRef", "name"),
                f"WorkflowTemplate {tref.get('name')!r} is not in the render",
            )
            return None
        tm = _template_map(target.spec)
        if str(tref.get("template")) not in tm:
            report.add(
                "semantics",
                r,
                jpath(path, "templateRef", "template"),
                f"WorkflowTemplate {target.name} has no template {tref.get('template')!r}",
            )
            return None
        return tm[str(tref.get("template"))]
    name = step.get("template")
    if name is None:
        report.add("semantics", r, path, "no template, templateRef or inline")
        return None
    if str(name) not in templates:
        report.add(
            "semantics",
            r,
            jpath(path, "template"),
            f"template {name!r} does not exist (templates: {', '.join(sorted(templates))})",
        )
        return None
    return templates[str(name)]


def _check_args(step: Obj, target: Obj, r: Resource, path: str, report: Report) -> None:
    inputs = as_list(as_dict(target.get("inputs")).get("parameters"))
    declared = _names(inputs)
    given = _names(as_dict(step.get("arguments")).get("parameters"))
    for i, a in enumerate(as_list(as_dict(step.get("arguments")).get("parameters"))):
        n = as_dict(a).get("name")
        if n not in declared:
            report.add(
                "semantics",
                r,
                jpath(path, "arguments", "parameters", i, "name"),
                f"argument {n!r} is not an input of template {target.get('name')!r} "
                f"(inputs: {', '.join(sorted(declared)) or 'none'}): it is ignored",
            )
    for p in inputs:
        p = as_dict(p)
        if _needs_value(p) and p.get("name") not in given:
            report.add(
                "semantics",
                r,
                jpath(path, "arguments"),
                f"input {p.get('name')!r} of template {target.get('name')!r} has no "
                "value and is not passed",
            )


def _check_template(
    r: Resource,
    t: Obj,
    path: str,
    templates: dict[str, Obj],
    wf_params: set[str],
    idx: Index,
    report: Report,
) -> None:
    for k in POD_ONLY_FIELDS:
        if k in t:
            report.add(
                "semantics",
                r,
                jpath(path, k),
                f"{k} is not an Argo template field: Argo ignores it (set it through podSpecPatch)",
            )
    ann = as_dict(as_dict(t.get("metadata")).get("annotations"))
    del ann  # pod annotations on templates are correct; resource-level ones are checked elsewhere
    if isinstance(t.get("podSpecPatch"), str):
        _parse_or_report(r, t["podSpecPatch"], jpath(path, "podSpecPatch"), report)
    _check_duration(r, as_dict(t.get("retryStrategy")), jpath(path, "retryStrategy"), report)
    in_params = _names(as_dict(t.get("inputs")).get("parameters"))
    in_arts = _names(as_dict(t.get("inputs")).get("artifacts"))
    step_targets: dict[str, Obj | None] = {}
    step_group: dict[str, int] = {}
    for g, group in enumerate(as_list(t.get("steps"))):
        for s, step in enumerate(as_list(group)):
            step = as_dict(step)
            spath = jpath(path, "steps", g, s)
            n = str(step.get("name"))
            if n in step_targets:
                report.add("semantics", r, jpath(spath, "name"), f"duplicate step name {n!r}")
            target = _resolve(step, templates, idx, r, spath, report)
            step_targets[n] = target
            step_group[n] = g
            if step.get("onExit") is not None and str(step["onExit"]) not in templates:
                report.add(
                    "semantics",
                    r,
                    jpath(spath, "onExit"),
                    f"onExit template {step['onExit']!r} does not exist",
                )
            if target is not None:
                _check_args(step, target, r, spath, report)
    dag = as_dict(t.get("dag"))
    task_names = _names(dag.get("tasks"))
    for ti, task0 in enumerate(as_list(dag.get("tasks"))):
        task = as_dict(task0)
        tpath = jpath(path, "dag", "tasks", ti)
        n = str(task.get("name"))
        target = _resolve(task, templates, idx, r, tpath, report)
        step_targets[n] = target
        if target is not None:
            _check_args(task, target, r, tpath, report)
        for d in as_list(task.get("dependencies")):
            if d not in task_names:
                report.add(
                    "semantics",
                    r,
                    jpath(tpath, "dependencies"),
                    f"dependency {d!r} is not a task of this DAG",
                )
        dep = task.get("depends")
        if isinstance(dep, str):
            for tok in re.findall(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?", dep):
                base = tok.split(".")[0]
                if base not in task_names:
                    report.add(
                        "semantics",
                        r,
                        jpath(tpath, "depends"),
                        f"depends names unknown task {base!r}",
                    )
    if "dag" in t and dag.get("target") and str(dag["target"]) not in task_names:
        report.add("semantics", r, jpath(path, "dag", "target"), "unknown target task")
    # Variable references in this template (including its steps' arguments).
    for spath, text in walk_strings(t, path):
        for m in VAR_RE.finditer(text):
            expr = m.group(1)
            if expr.startswith("="):
                for em in EXPR_PARAM.finditer(expr):
                    name = em.group(2) or em.group(3)
                    scope = in_params if em.group(1) == "inputs" else wf_params
                    if name not in scope:
                        report.add(
                            "semantics",
                            r,
                            spath,
                            f"{{{{{expr}}}}} refers to undefined {em.group(1)}.parameters.{name}",
                        )
                continue
            why = _check_var(
                expr,
                in_params,
                in_arts,
                wf_params,
                step_targets,
                step_group,
                "steps" in t,
                "dag" in t,
                spath,
            )
            if why:
                report.add("semantics", r, spath, f"{{{{{expr}}}}}: {why}")


def _check_var(
    expr: str,
    in_params: set[str],
    in_arts: set[str],
    wf_params: set[str],
    targets: dict[str, Obj | None],
    groups: dict[str, int],
    is_steps: bool,
    is_dag: bool,
    path: str,
) -> str | None:
    parts = expr.split(".")
    root = parts[0]
    if root not in KNOWN_ROOTS:
        return f"unknown variable root {root!r}"
    if root == "inputs" and len(parts) >= 3:
        if parts[1] == "parameters" and parts[2] not in in_params and parts[2] != "json":
            return (
                f"input parameter {parts[2]!r} is not declared "
                f"(inputs: {', '.join(sorted(in_params)) or 'none'})"
            )
        if parts[1] == "artifacts" and parts[2] not in in_arts:
            return f"input artifact {parts[2]!r} is not declared"
    if root == "workflow" and len(parts) >= 2:
        if parts[1] == "parameters" and len(parts) >= 3 and parts[2] not in wf_params | {"json"}:
            return (
                f"workflow parameter {parts[2]!r} is not in spec.arguments.parameters "
                f"({', '.join(sorted(wf_params)) or 'none'})"
            )
        if parts[1] not in GLOBAL_WORKFLOW_VARS and ".".join(parts[1:]) not in GLOBAL_WORKFLOW_VARS:
            return f"unknown workflow variable {'.'.join(parts[1:])!r}"
    if root in ("steps", "tasks") and len(parts) >= 2:
        if (root == "steps" and not is_steps) or (root == "tasks" and not is_dag):
            return f"{root}.* used outside a {'steps' if root == 'steps' else 'dag'} template"
        name = parts[1]
        if name not in targets:
            return f"no {root[:-1]} named {name!r} in this template"
        if root == "steps":
            m = re.search(r"\.steps\[(\d+)\]", path)
            if m and groups.get(name, 0) >= int(m.group(1)):
                return f"step {name!r} does not run before this step group"
        target = targets[name]
        if target is not None and len(parts) >= 4 and parts[2] == "outputs":
            if parts[3] == "result" and not ("script" in target or "container" in target):
                return f"{root[:-1]} {name!r} runs a template without a result"
            if parts[3] == "parameters" and len(parts) >= 5:
                outs = _names(as_dict(target.get("outputs")).get("parameters"))
                if parts[4] not in outs:
                    return f"template of {name!r} has no output parameter {parts[4]!r}"
    return None


def merged_templates(spec: Obj) -> list[Obj]:
    defaults = as_dict(spec.get("templateDefaults"))
    return [
        merge(defaults, as_dict(t)) if defaults else as_dict(t)
        for t in as_list(spec.get("templates"))
    ]
