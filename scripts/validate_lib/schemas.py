"""Layer 2: strict schemas.

Built-in kinds: kubernetes-validate's strict JSON schemas (unknown fields rejected) for the
Kubernetes version minikube 1.38 starts by default. Argo Workflows / Argo CD kinds: the pinned
CRDs' openAPIV3Schema, converted to JSON Schema with unknown fields rejected wherever the CRD
lists properties and does not say x-kubernetes-preserve-unknown-fields.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
from referencing import Registry
from referencing import Resource as RefResource

from . import upstream, yamlio
from .model import Obj, Report, Resource, as_dict, as_list

# Kubernetes 1.35: taken as minikube 1.38's default (kubernetes-validate ships 1.33-1.37).
K8S_VERSION = os.environ.get("VALIDATE_K8S_VERSION", "1.35")
MAX_ERRORS_PER_RESOURCE = 10
DEFS_ID = "https://kubernetes.io/api/_definitions.json"

# kind -> pinned CRD file (relative to shared/upstream)
CRD_FILES: dict[str, str] = {
    "Workflow": f"{upstream.AW}/crds/argoproj.io_workflows.yaml",
    "CronWorkflow": f"{upstream.AW}/crds/argoproj.io_cronworkflows.yaml",
    "WorkflowTemplate": f"{upstream.AW}/crds/argoproj.io_workflowtemplates.yaml",
    "ClusterWorkflowTemplate": f"{upstream.AW}/crds/argoproj.io_clusterworkflowtemplates.yaml",
    "WorkflowEventBinding": f"{upstream.AW}/crds/argoproj.io_workfloweventbindings.yaml",
    "WorkflowTaskResult": f"{upstream.AW}/crds/argoproj.io_workflowtaskresults.yaml",
    "WorkflowTaskSet": f"{upstream.AW}/crds/argoproj.io_workflowtasksets.yaml",
    "WorkflowArtifactGCTask": f"{upstream.AW}/crds/argoproj.io_workflowartifactgctasks.yaml",
    "Application": f"{upstream.ACD}/crds/application-crd.yaml",
    "ApplicationSet": f"{upstream.ACD}/crds/applicationset-crd.yaml",
    "AppProject": f"{upstream.ACD}/crds/appproject-crd.yaml",
}
# API groups served by Kubernetes itself (validated with kubernetes-validate).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "certificates.k8s.io",
        "resource.k8s.io",
        "apiregistration.k8s.io",
    }
)


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


# ---------------------------------------------------------------- Kubernetes built-in kinds


@cache
def _kv_dir() -> Path:
    base = Path(kv.__file__).parent / "kubernetes-json-schema"
    version = [v for v in kv.all_versions() if kv.major_minor(v) <= K8S_VERSION][-1]
    return base / f"v{version}-local-strict"


@cache
def _defs() -> Obj:
    with (_kv_dir() / "_definitions.json").open() as fh:
        data: Obj = json.load(fh)
    return data


@cache
def _registry() -> Registry:
    return RefResource.from_contents(_defs()) @ Registry()


@cache
def _patch_registry() -> Registry:
    """Definitions with every `required` removed: for partial objects such as podSpecPatch."""
    defs = copy.deepcopy(_defs())
    _drop_required(defs)
    return RefResource.from_contents(defs) @ Registry()


def _drop_required(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("required", None)
        for v in node.values():
            _drop_required(v)
    elif isinstance(node, list):
        for v in node:
            _drop_required(v)


@cache
def _k8s_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    import re

    av = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    f = _kv_dir() / f"{kind.lower()}-{av}.json"
    if not f.is_file():
        return None
    with f.open() as fh:
        schema = json.load(fh)
    return jsonschema.validators.Draft202012Validator(schema, registry=_registry())


@cache
def definition_validator(defname: str, partial: bool = False) -> jsonschema.protocols.Validator:
    """Validator for one Kubernetes definition, e.g. io.k8s.api.core.v1.PodSpec."""
    schema = {"$ref": f"{DEFS_ID}#/$defs/{defname}"}
    reg = _patch_registry() if partial else _registry()
    return jsonschema.validators.Draft202012Validator(schema, registry=reg)


def has_definition(defname: str) -> bool:
    return defname in _defs().get("$defs", {})


# ---------------------------------------------------------------- CRD schemas


def crd_to_jsonschema(node: Any, top: bool = True) -> Any:
    """openAPIV3Schema -> JSON Schema (2020-12) with unknown fields rejected."""
    if isinstance(node, list):
        return [crd_to_jsonschema(x, False) for x in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties", "$defs", "definitions"):
            out[k] = {pk: crd_to_jsonschema(pv, False) for pk, pv in as_dict(v).items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = crd_to_jsonschema(v, False) if isinstance(v, dict | list) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [crd_to_jsonschema(x, False) for x in as_list(v)]
        elif k.startswith("x-kubernetes-") or k in ("description", "nullable", "format"):
            continue  # annotations; handled below or not checked offline (e.g. CEL rules)
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for f in ("apiVersion", "kind"):
            props.setdefault(f, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in out and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _cache_dir() -> Path:
    return upstream.CACHE_DIR.parent / "validate"


@cache
def _crd_doc(rel: str) -> Obj:
    path = upstream.local_path(rel)
    digest = upstream.file_digest(path)
    cached = _cache_dir() / f"crd-{digest[:24]}.json"
    if cached.is_file():
        with cached.open() as fh:
            data: Obj = json.load(fh)
        return data
    doc = yamlio.load(path.read_text())
    versions = {}
    for v in as_list(as_dict(doc.get("spec")).get("versions")):
        sch = as_dict(as_dict(v.get("schema")).get("openAPIV3Schema"))
        versions[v.get("name")] = {
            "served": bool(v.get("served")),
            "schema": crd_to_jsonschema(sch),
        }
    data = {"group": as_dict(doc.get("spec")).get("group"), "versions": versions}
    with contextlib.suppress(OSError):  # a read-only checkout still validates, only slower
        yamlio.write_atomic(cached, json.dumps(data))
    return data


def crd_from_object(crd: Obj) -> Obj:
    versions = {}
    for v in as_list(as_dict(crd.get("spec")).get("versions")):
        sch = as_dict(as_dict(v.get("schema")).get("openAPIV3Schema"))
        versions[v.get("name")] = {
            "served": bool(v.get("served")),
            "schema": crd_to_jsonschema(sch),
        }
    return {"group": as_dict(crd.get("spec")).get("group"), "versions": versions}


@cache
def _crd_validator(rel: str, version: str) -> jsonschema.protocols.Validator:
    schema = _crd_doc(rel)["versions"][version]["schema"]
    return jsonschema.validators.Draft202012Validator(schema)


# ---------------------------------------------------------------- validation


def errors(
    validator: jsonschema.protocols.Validator, data: Any, prefix: str = ""
) -> Iterator[tuple[str, str]]:
    errs = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for e in errs[:MAX_ERRORS_PER_RESOURCE]:
        path = prefix
        for p in e.absolute_path:
            path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
        yield path, _message(e)


def _message(e: jsonschema.ValidationError) -> str:
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        allowed = set(as_dict(e.schema).get("properties", {}))
        extra = sorted(k for k in e.instance if k not in allowed)
        return f"unknown field(s) {', '.join(map(repr, extra))} (not in the schema)"
    if e.validator in ("oneOf", "anyOf"):
        best = jsonschema.exceptions.best_match(e.context or [])
        if best is not None:
            return str(best.message)
    return str(e.message)


def validate_objectmeta(meta: Any) -> Iterator[tuple[str, str]]:
    v = definition_validator("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    yield from errors(v, meta, "metadata")


def check(resources: list[Resource], report: Report, allowed_kinds: set[str]) -> None:
    """Schema-validate repo objects (and upstream objects this repo modified)."""
    inline_crds: dict[str, Obj] = {}
    for r in resources:
        if r.kind == "CustomResourceDefinition":
            names = as_dict(r.spec.get("names"))
            if names.get("kind"):
                inline_crds[str(names["kind"])] = r.obj
    for r in resources:
        if r.upstream and not r.modified:
            continue  # pinned release content as published: trusted, see docs/validation.md
        check_one(r, report, inline_crds, allowed_kinds)


def check_one(
    r: Resource, report: Report, inline_crds: dict[str, Obj], allowed_kinds: set[str]
) -> None:
    av, kind = r.obj.get("apiVersion"), r.obj.get("kind")
    if not isinstance(av, str) or not isinstance(kind, str):
        report.add("schema", r, "", "missing apiVersion or kind")
        return
    meta = r.obj.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        report.add("schema", r, "metadata.name", "missing metadata.name")
    group = group_of(av)
    if kind == "CustomResourceDefinition" and not r.upstream and kind not in allowed_kinds:
        report.add(
            "schema",
            r,
            "",
            "CRD authored in this repo: only the pinned upstream CRDs are allowed "
            "(add the kind to allowed_kinds in scripts/validate-config.yaml with a reason)",
        )
    if group in BUILTIN_GROUPS:
        validator = _k8s_validator(kind, av)
        if validator is None:
            report.add(
                "schema",
                r,
                "apiVersion",
                f"no {kind} in {av} for Kubernetes {K8S_VERSION} "
                "(wrong apiVersion or kind, or an API that was removed)",
            )
            return
        for path, msg in errors(validator, r.obj):
            report.add("schema", r, path, msg)
        return
    if kind in CRD_FILES:
        rel = CRD_FILES[kind]
        doc = _crd_doc(rel)
        _check_crd_kind(r, report, doc, av, lambda ver: _crd_validator(rel, ver))
        return
    if kind in inline_crds:
        doc = crd_from_object(inline_crds[kind])
        _check_crd_kind(
            r,
            report,
            doc,
            av,
            lambda ver: jsonschema.validators.Draft202012Validator(doc["versions"][ver]["schema"]),
        )
        return
    if kind in allowed_kinds:
        return
    report.add(
        "schema",
        r,
        "kind",
        f"unknown kind {kind} ({av}): no Kubernetes or pinned CRD schema; not validated "
        "(add it to allowed_kinds in scripts/validate-config.yaml with a reason if intended)",
    )


def _check_crd_kind(r: Resource, report: Report, doc: Obj, av: str, get_validator: Any) -> None:
    group = doc.get("group")
    served = sorted(k for k, v in doc["versions"].items() if v["served"])
    g, _, ver = av.partition("/")
    if g != group or ver not in served:
        report.add(
            "schema",
            r,
            "apiVersion",
            f"{av} is not served by the pinned CRD for {r.kind} "
            f"(served: {', '.join(f'{group}/{s}' for s in served)})",
        )
        return
    for path, msg in errors(get_validator(ver), r.obj):
        report.add("schema", r, path, msg)
    for path, msg in validate_objectmeta(r.obj.get("metadata")):
        report.add("schema", r, path, msg)
