"""Every pod a rendered object would create, with the fields the checks need.

Kubernetes workloads give their pod template. Argo Workflows objects give one pod per
container/script/containerSet template, assembled the way the controller does it: workflow-level
fields, templateDefaults, the template's own fields, then podSpecPatch (workflow level, then
template level). A CronWorkflow (or Workflow) with workflowTemplateRef is merged with the
referenced WorkflowTemplate.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .model import Obj, Resource, as_dict, as_list, jpath

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
ARGO_WF_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
POD_TEMPLATE_TYPES = ("container", "script", "containerSet")
# Labels the Argo controller puts on every workflow pod (values vary per run).
ARGO_POD_LABELS = {"workflows.argoproj.io/workflow": "*", "workflows.argoproj.io/completed": "*"}
VAR_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


@dataclass
class Container:
    path: str
    obj: Obj
    name: str
    role: str  # main | init | sidecar


@dataclass
class PodUnit:
    res: Resource
    key: str  # Kind/namespace/name[:template]
    path: str  # field path of the pod spec or Argo template
    namespace: str | None
    pod: Obj  # pod-level fields (securityContext, volumes, serviceAccountName, ...)
    containers: list[Container]
    volume_names: set[str]
    claim_templates: set[str]
    annotations: dict[str, str]
    runtime_class: str | None
    runtime_class_path: str
    labels: dict[str, str] = field(default_factory=dict)  # "*" = set by Argo, any value
    argo: bool = False
    derived: bool = False  # built from another object's templates: skip per-container checks
    patches: list[tuple[str, Any]] = field(default_factory=list)  # (path, parsed podSpecPatch)
    manifest: Obj | None = None  # the Pod Argo creates from the template (made_pods)


def made_pods(units: list[PodUnit]) -> list[tuple[PodUnit, Obj, str]]:
    """(unit, Pod, where to report it) for the Pod each Argo template of the render makes, which
    kubeconform and checkov check; a template reached through workflowTemplateRef (derived) is
    checked where it is defined."""
    return [
        (u, u.manifest, f"{u.path} (the Pod it makes)")
        for u in units
        if u.manifest is not None and not u.derived
    ]


def parse_patch(text: str) -> Any:
    """podSpecPatch as Argo reads it: JSON or YAML, after {{...}} substitution."""
    placeholder = VAR_RE.sub("0", text)
    try:
        return json.loads(placeholder)
    except ValueError:
        return yaml.safe_load(placeholder)


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        obj = as_dict(obj).get(p)
    return obj


def k8s_units(r: Resource) -> list[PodUnit]:
    path = POD_TEMPLATE_PATHS.get(r.kind)
    if path is None:
        return []
    tmpl = as_dict(_get(r.obj, path))
    spec = as_dict(tmpl.get("spec"))
    meta = as_dict(tmpl.get("metadata"))
    base = jpath(*path, "spec")
    containers = [
        Container(jpath(base, "containers", i), as_dict(c), str(as_dict(c).get("name")), "main")
        for i, c in enumerate(as_list(spec.get("containers")))
    ] + [
        Container(jpath(base, "initContainers", i), as_dict(c), str(as_dict(c).get("name")), "init")
        for i, c in enumerate(as_list(spec.get("initContainers")))
    ]
    claims = set()
    if r.kind == "StatefulSet":
        claims = {
            str(as_dict(c.get("metadata")).get("name"))
            for c in as_list(r.spec.get("volumeClaimTemplates"))
            if isinstance(c, dict)
        }
    vols = {str(as_dict(v).get("name")) for v in as_list(spec.get("volumes"))}
    ann = {str(k): str(v) for k, v in as_dict(meta.get("annotations")).items()}
    rc = spec.get("runtimeClassName")
    return [
        PodUnit(
            res=r,
            key=r.ident,
            path=base,
            namespace=r.namespace,
            pod=spec,
            containers=containers,
            volume_names=vols | claims,
            claim_templates=claims,
            annotations=ann,
            runtime_class=str(rc) if rc else None,
            runtime_class_path=jpath(base, "runtimeClassName"),
            labels={str(k): str(v) for k, v in as_dict(meta.get("labels")).items()},
        )
    ]


def workflow_spec_path(r: Resource) -> str:
    return "spec.workflowSpec" if r.kind == "CronWorkflow" else "spec"


def own_workflow_spec(r: Resource) -> Obj:
    if r.kind == "CronWorkflow":
        return as_dict(r.spec.get("workflowSpec"))
    return r.spec


def find_template_resource(
    resources: list[Resource], name: str, namespace: str | None, cluster: bool
) -> Resource | None:
    kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
    for x in resources:
        if x.kind == kind and x.name == name and (cluster or x.namespace == namespace):
            return x
    return None


def merge(base: Any, over: Any) -> Any:
    """Deep merge for mappings (over wins); lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(over)


def effective_spec(r: Resource, resources: list[Resource]) -> tuple[Obj, Resource | None]:
    """WorkflowSpec as the controller would run it, and the WorkflowTemplate it came from."""
    spec = own_workflow_spec(r)
    ref = as_dict(spec.get("workflowTemplateRef"))
    if not ref.get("name"):
        return spec, None
    target = find_template_resource(
        resources, str(ref["name"]), r.namespace, bool(ref.get("clusterScope"))
    )
    if target is None:
        return spec, None
    merged = merge(target.spec, {k: v for k, v in spec.items() if k != "workflowTemplateRef"})
    return merged, target


def argo_units(r: Resource, resources: list[Resource]) -> list[PodUnit]:
    if r.kind not in ARGO_WF_KINDS:
        return []
    spec, via = effective_spec(r, resources)
    derived = via is not None
    base = workflow_spec_path(r)
    if derived and via is not None:
        base = f"(via WorkflowTemplate {via.name}) spec"
    defaults = as_dict(spec.get("templateDefaults"))
    claims = {
        str(as_dict(as_dict(c).get("metadata")).get("name"))
        for c in as_list(spec.get("volumeClaimTemplates"))
    }
    units = []
    for i, t0 in enumerate(as_list(spec.get("templates"))):
        t = merge(defaults, as_dict(t0)) if defaults else as_dict(t0)
        if not any(k in t for k in POD_TEMPLATE_TYPES):
            continue
        tpath = jpath(base, "templates", i)
        containers = []
        if isinstance(t.get("container"), dict):
            containers.append(Container(jpath(tpath, "container"), t["container"], "main", "main"))
        if isinstance(t.get("script"), dict):
            containers.append(Container(jpath(tpath, "script"), t["script"], "main", "main"))
        for j, c in enumerate(as_list(as_dict(t.get("containerSet")).get("containers"))):
            c = as_dict(c)
            containers.append(
                Container(
                    jpath(tpath, "containerSet", "containers", j), c, str(c.get("name")), "main"
                )
            )
        for key, role in (("initContainers", "init"), ("sidecars", "sidecar")):
            for j, c in enumerate(as_list(t.get(key))):
                c = as_dict(c)
                containers.append(Container(jpath(tpath, key, j), c, str(c.get("name")), role))
        rc_path = jpath(tpath, "podSpecPatch")
        patches: list[tuple[str, Any]] = []
        for ppath, raw in (
            (jpath(base, "podSpecPatch"), spec.get("podSpecPatch")),
            (jpath(tpath, "podSpecPatch"), t.get("podSpecPatch")),
        ):
            if not isinstance(raw, str):
                continue
            try:
                parsed = parse_patch(raw)
            except (ValueError, yaml.YAMLError):
                continue  # reported by the podSpecPatch check
            patches.append((ppath, parsed))
            if isinstance(parsed, dict) and "runtimeClassName" in parsed:
                rc_path = jpath(ppath, "runtimeClassName")
        manifest = argo_pod(r, spec, t, [p for _, p in patches])
        pod = dict(manifest["spec"])
        pod["executor"] = t.get("executor", spec.get("executor"))
        meta = manifest["metadata"]
        rc = pod.get("runtimeClassName")
        units.append(
            PodUnit(
                res=r,
                key=f"{r.ident}:{t.get('name')}",
                path=tpath,
                namespace=r.namespace,
                pod=pod,
                containers=containers,
                volume_names={str(as_dict(v).get("name")) for v in as_list(pod.get("volumes"))},
                claim_templates=claims,
                annotations={str(k): str(v) for k, v in as_dict(meta.get("annotations")).items()},
                runtime_class=str(rc) if rc else None,
                runtime_class_path=rc_path,
                labels={
                    **ARGO_POD_LABELS,
                    **{str(k): str(v) for k, v in as_dict(meta.get("labels")).items()},
                },
                argo=True,
                derived=derived,
                patches=patches,
                manifest=manifest,
            )
        )
    return units


# WorkflowSpec / template fields Argo copies into the pod spec (workflow/controller/workflowpod.go).
POD_FIELDS = (
    "serviceAccountName",
    "automountServiceAccountToken",
    "securityContext",
    "nodeSelector",
    "affinity",
    "tolerations",
    "schedulerName",
    "priorityClassName",
    "hostAliases",
    "hostNetwork",
    "dnsPolicy",
    "dnsConfig",
    "imagePullSecrets",
)
ARGO_ONLY_CONTAINER_FIELDS = ("dependencies", "mirrorVolumeMounts", "source")
MERGE_BY_NAME = ("containers", "initContainers", "volumes")


def _strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """podSpecPatch applied as Argo does (a strategic merge patch): containers, initContainers
    and volumes merge by name, mappings merge, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _strategic_merge(base[k], v, k) if k in base else v
        return out
    if key in MERGE_BY_NAME and isinstance(base, list) and isinstance(patch, list):
        out_list = list(base)
        names = [as_dict(x).get("name") for x in base]
        for item in patch:
            name = as_dict(item).get("name")
            if name in names:
                i = names.index(name)
                out_list[i] = _strategic_merge(out_list[i], item)
            else:
                out_list.append(item)
        return out_list
    return copy.deepcopy(patch)


def _container(c: Obj, name: str | None = None) -> Obj:
    out = {k: v for k, v in c.items() if k not in ARGO_ONLY_CONTAINER_FIELDS}
    return {**out, "name": name} if name else out


def argo_pod(r: Resource, spec: Obj, t: Obj, patches: list[Any]) -> Obj:
    """The Pod Argo creates for template T (without its own init/wait containers)."""
    pod: Obj = {"restartPolicy": "Never"}
    for src in (spec, t):
        pod.update({k: src[k] for k in POD_FIELDS if k in src})
    main = t.get("container") or t.get("script")
    containers = [_container(as_dict(main), "main")] if main else []
    containers += [
        _container(as_dict(c)) for c in as_list(as_dict(t.get("containerSet")).get("containers"))
    ]
    pod["containers"] = containers + [_container(as_dict(c)) for c in as_list(t.get("sidecars"))]
    if t.get("initContainers"):
        pod["initContainers"] = [_container(as_dict(c)) for c in as_list(t["initContainers"])]
    claims = [
        {"name": n, "persistentVolumeClaim": {"claimName": n}}
        for c in as_list(spec.get("volumeClaimTemplates"))
        if (n := as_dict(as_dict(c).get("metadata")).get("name"))
    ]
    volumes = as_list(spec.get("volumes")) + as_list(t.get("volumes")) + claims
    if volumes:
        pod["volumes"] = volumes
    for patch in patches:
        if isinstance(patch, dict):
            pod = _strategic_merge(pod, patch)
    meta = merge(as_dict(spec.get("podMetadata")), as_dict(t.get("metadata")))
    meta = {k: v for k, v in meta.items() if k in ("labels", "annotations")}
    meta.update(name=f"{r.name}-{t.get('name')}", namespace=r.namespace or "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod}


def all_units(resources: list[Resource]) -> list[PodUnit]:
    out = []
    for r in resources:
        if r.upstream:
            continue
        out.extend(k8s_units(r))
        out.extend(argo_units(r, resources))
    return out
