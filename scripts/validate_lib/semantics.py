"""Layer 3: cross-object semantics of one render, plus the overlay's runtime-class intent."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from . import argo, argocd, argolint, executor, gvisor, netpol, submit
from .config import Config
from .model import (
    CLUSTER_SCOPED,
    PSA_ENFORCE,
    Obj,
    Report,
    Resource,
    as_dict,
    as_list,
    jpath,
    psa_levels,
)
from .podchecks import Index, check_patches, check_units
from .pods import PodUnit, all_units

GVISOR_ANNOTATION_PREFIX = "dev.gvisor."


def check(
    resources: list[Resource], cfg: Config, report: Report, profile: str | None, label: str
) -> list[PodUnit]:
    idx = Index(resources)
    own = [r for r in resources if not r.upstream]
    psa = psa_levels(resources)
    for r in own:
        _check_object(r, idx, cfg, report)
        argo.check(r, idx, report)
        argocd.check(r, idx, report)
    argolint.check(resources, report)
    units = all_units(resources)
    check_units(units, idx, cfg, report, psa)
    for u in units:
        if not u.derived:
            check_patches(u, report)
    executor.check_rbac(units, idx, cfg, report)
    submit.check(units, idx, report)
    netpol.check(resources, units, report)
    gvisor.check(units, report)
    netpol.check_services(resources, units, report)
    if profile is not None:
        check_profile(units, cfg, profile, report, label)
    _check_upstream(resources, cfg, report)
    return units


def _check_object(r: Resource, idx: Index, cfg: Config, report: Report) -> None:
    meta = r.meta
    if meta.get("generateName"):
        report.add(
            "semantics",
            r,
            "metadata.generateName",
            "generateName cannot be applied by Argo CD (commit a named object, e.g. a "
            "WorkflowTemplate/CronWorkflow instead of a Workflow)",
        )
    if r.kind not in CLUSTER_SCOPED and not r.namespace and r.kind not in cfg.allowed_kinds:
        report.add(
            "semantics",
            r,
            "metadata.namespace",
            "namespaced object without a namespace (it would land in whatever namespace "
            "the Application targets)",
        )
    if (
        r.namespace
        and r.kind != "Namespace"
        and idx.get("Namespace", None, r.namespace) is None
        and cfg.external_obj("Namespace", r.namespace, None) is None
    ):
        report.add(
            "semantics",
            r,
            "metadata.namespace",
            f"namespace {r.namespace!r} is not in the render nor declared external",
        )
    for k in as_dict(meta.get("annotations")):
        if str(k).startswith(GVISOR_ANNOTATION_PREFIX) and r.kind != "Pod":
            report.add(
                "semantics",
                r,
                jpath("metadata", "annotations", str(k)),
                "gVisor annotations only work on the pod's own metadata "
                "(pod template / Argo template metadata), not on this object",
            )
    if r.kind == "Namespace":
        labels = as_dict(meta.get("labels"))
        level = labels.get(PSA_ENFORCE)
        if level is None:
            report.add(
                "semantics",
                r,
                "metadata.labels",
                "namespace without a Pod Security Admission enforce label",
            )
    if r.kind == "Secret" and (r.obj.get("data") or r.obj.get("stringData")):
        allowed = [
            a for a in cfg.allowed_secrets if fnmatch.fnmatchcase(r.ident, str(a.get("match", "")))
        ]
        if not allowed:
            report.add(
                "policy",
                r,
                "data",
                "Secret with data committed to Git: credentials must be created outside "
                "Git (declare them in scripts/external-objects.yaml)",
            )
    if r.kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = as_dict(r.obj.get("roleRef"))
        kind, name = str(ref.get("kind")), str(ref.get("name"))
        ns = r.namespace if kind == "Role" else None
        if idx.get(kind, ns, name) is None and cfg.external_obj(kind, name, ns) is None:
            report.add(
                "semantics",
                r,
                "roleRef",
                f"{kind} {name!r} is not in the render nor declared external",
            )
        for i, s in enumerate(as_list(r.obj.get("subjects"))):
            s = as_dict(s)
            if s.get("kind") == "ServiceAccount":
                sns = s.get("namespace") or r.namespace
                if (
                    idx.get("ServiceAccount", sns, str(s.get("name"))) is None
                    and cfg.external_obj("ServiceAccount", str(s.get("name")), sns) is None
                    and s.get("name") != "default"
                ):
                    report.add(
                        "semantics",
                        r,
                        jpath("subjects", i),
                        f"ServiceAccount {sns}/{s.get('name')} is not in the render",
                    )


def check_profile(
    units: list[PodUnit], cfg: Config, profile: str, report: Report, label: str
) -> None:
    """runtimeClassName (and pod annotations) exactly where the overlay intends."""
    prof = cfg.profiles.get(profile)
    if prof is None:
        report.add("semantics", None, "", f"unknown profile {profile!r}", source=label)
        return
    rules = [as_dict(x) for x in as_list(prof.get("rules"))]
    default = prof.get("default_runtime_class")
    used = [False] * len(rules)
    for u in units:
        want: Any = default
        want_ann: Obj = {}
        for i, rule in enumerate(rules):
            if fnmatch.fnmatchcase(u.key, str(rule.get("match"))):
                used[i] = True
                want = rule.get("runtimeClassName")
                want_ann = as_dict(rule.get("annotations"))
                break
        if u.runtime_class != want:
            got = u.runtime_class or "none (default runtime)"
            report.add(
                "semantics",
                u.res,
                u.runtime_class_path,
                f"profile {profile!r} expects runtimeClassName "
                f"{want or 'none (default runtime)'} for pod {u.key}, got {got}",
            )
        for k, v in want_ann.items():
            if u.annotations.get(str(k)) != str(v):
                report.add(
                    "semantics",
                    u.res,
                    jpath(u.path, "metadata", "annotations"),
                    f"profile {profile!r} expects pod annotation {k}: {v!r} for {u.key}, "
                    f"got {u.annotations.get(str(k))!r}",
                )
    for i, rule in enumerate(rules):
        if not used[i] and not rule.get("optional"):
            report.add(
                "semantics",
                None,
                "",
                f"profile {profile!r} rule {rule.get('match')!r} matches no pod "
                "(renamed or missing workload?)",
                source=label,
            )


def _check_upstream(resources: list[Resource], cfg: Config, report: Report) -> None:
    """Upstream objects this repo modified: images stay pinned."""
    for r in resources:
        if not (r.upstream and r.modified):
            continue
        for path, text in _images(r.obj, ""):
            if ":" not in text.rsplit("/", 1)[-1] and "@" not in text:
                report.add("semantics", r, path, f"image {text!r} has no tag")
            elif text.endswith(":latest"):
                report.add("semantics", r, path, f"image {text!r} uses :latest")


def _images(node: Any, path: str) -> list[tuple[str, str]]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            p = jpath(path, str(k)) if path else str(k)
            if k == "image" and isinstance(v, str):
                out.append((p, v))
            else:
                out.extend(_images(v, p))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_images(v, f"{path}[{i}]"))
    return out


def dump_units(units: list[PodUnit]) -> str:
    """Pod keys with runtime class: helps writing profile rules (--list-pods)."""
    rows = [
        {
            "pod": u.key,
            "runtimeClassName": u.runtime_class,
            "annotations": {
                k: v for k, v in u.annotations.items() if k.startswith(GVISOR_ANNOTATION_PREFIX)
            },
        }
        for u in units
    ]
    return json.dumps(rows, indent=1)
