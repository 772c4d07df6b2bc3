"""Argo Workflows objects: what `argo lint` (argolint.py) does not check."""

from __future__ import annotations

from typing import Any

import yaml

from . import fanout
from .model import Obj, Report, Resource, as_dict, as_list, jpath
from .podchecks import Index
from .pods import ARGO_WF_KINDS, effective_spec, own_workflow_spec, parse_patch, workflow_spec_path

CONTROLLER_NAMESPACE = "argo"


def check(r: Resource, idx: Index, report: Report) -> None:
    if r.kind not in ARGO_WF_KINDS:
        return
    own_path = workflow_spec_path(r)
    spec, via = effective_spec(r, idx.resources)
    own = own_workflow_spec(r)
    if via is not None:
        _check_ref_arguments(r, own, own_path, via, report)
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
    wf_values = {
        str(as_dict(p).get("name")): str(as_dict(p).get("value", as_dict(p).get("default")))
        for p in as_list(as_dict(spec.get("arguments")).get("parameters"))
        if "value" in as_dict(p) or "default" in as_dict(p)
    }
    fanout.check(r, own, own_path, wf_values, report)
    # argo lint takes a podSpecPatch that is no JSON or YAML; the controller fails every pod.
    patches = [(jpath(own_path, "podSpecPatch"), own.get("podSpecPatch"))] + [
        (jpath(own_path, "templates", i, "podSpecPatch"), as_dict(t).get("podSpecPatch"))
        for i, t in enumerate(as_list(own.get("templates")))
    ]
    for path, raw in patches:
        if isinstance(raw, str):
            _parse_or_report(r, raw, path, report)


def _check_ref_arguments(r: Resource, own: Obj, path: str, via: Resource, report: Report) -> None:
    """Arguments a workflowTemplateRef passes must be parameters of the WorkflowTemplate: Argo
    (and argo lint) accept any name, so a typo silently leaves the template's default in place."""
    declared = {
        str(as_dict(p).get("name"))
        for p in as_list(as_dict(via.spec.get("arguments")).get("parameters"))
    }
    for i, p in enumerate(as_list(as_dict(own.get("arguments")).get("parameters"))):
        n = as_dict(p).get("name")
        if n not in declared:
            report.add(
                "semantics",
                r,
                jpath(path, "arguments", "parameters", i, "name"),
                f"argument {n!r} is not a parameter of {via.kind} {via.name!r}: no step sees it "
                f"and the template's own value stays; name one of "
                f"{', '.join(sorted(declared)) or '(it declares none)'}",
            )


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
