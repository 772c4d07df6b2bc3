"""NetworkPolicy selectors that select no pod are silently ineffective (or cut traffic off)."""

from __future__ import annotations

import re
from typing import Any

from .model import Obj, Report, Resource, as_dict, as_list, jpath
from .pods import PodUnit

NS_NAME_LABEL = "kubernetes.io/metadata.name"


def selects(selector: Any, labels: dict[str, str]) -> bool:
    """Label selector semantics; a label value "*" (set by Argo at run time) matches any value."""
    sel = as_dict(selector)
    for k, v in as_dict(sel.get("matchLabels")).items():
        have = labels.get(str(k))
        if have is None or (have != "*" and have != str(v)):
            return False
    for e in as_list(sel.get("matchExpressions")):
        e = as_dict(e)
        key, op = str(e.get("key")), e.get("operator")
        values = {str(v) for v in as_list(e.get("values"))}
        have = labels.get(key)
        if op == "Exists" and have is None:
            return False
        if op == "DoesNotExist" and have is not None:
            return False
        if op == "In" and (have is None or (have != "*" and have not in values)):
            return False
        if op == "NotIn" and have is not None and have != "*" and have in values:
            return False
    return True


def _pods_in(units: list[PodUnit], ns: str | None) -> list[PodUnit]:
    return [u for u in units if u.namespace == ns and not u.derived]


def check(resources: list[Resource], units: list[PodUnit], report: Report) -> None:
    namespaces = {r.name for r in resources if r.kind == "Namespace"}
    for r in resources:
        if r.kind != "NetworkPolicy" or r.upstream:
            continue
        pods = _pods_in(units, r.namespace)
        sel = r.spec.get("podSelector")
        if as_dict(sel) and not any(selects(sel, u.labels) for u in pods):
            report.add(
                "semantics",
                r,
                "spec.podSelector",
                f"selects no pod in namespace {r.namespace} (the policy has no effect)",
            )
        for i, rule in enumerate(as_list(r.spec.get("egress"))):
            _check_open_egress(r, as_dict(rule), jpath("spec", "egress", i), report)
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(as_list(r.spec.get(direction))):
                for j, peer in enumerate(as_list(as_dict(rule).get(peer_key))):
                    _check_peer(
                        r,
                        as_dict(peer),
                        jpath("spec", direction, i, peer_key, j),
                        units,
                        namespaces,
                        report,
                    )


ANYWHERE = ("0.0.0.0/0", "::/0")


def _check_open_egress(r: Resource, rule: Obj, path: str, report: Report) -> None:
    """An egress rule without peers (or to 0.0.0.0/0 with no exception) allows every address:
    any pod, any Service and the internet on its ports (the workflow pods' "API server" rule was
    one: on the e2e cluster it let a workflow pod reach a Service on 443 that is not the API
    server)."""
    peers = [as_dict(p) for p in as_list(rule.get("to"))]
    open_peer = not peers or any(
        str(as_dict(p.get("ipBlock")).get("cidr")) in ANYWHERE
        and not as_list(as_dict(p.get("ipBlock")).get("except"))
        for p in peers
    )
    if open_peer:
        ports = (
            ", ".join(str(as_dict(p).get("port", "all")) for p in as_list(rule.get("ports")))
            or "all ports"
        )
        report.add(
            "semantics",
            r,
            jpath(path, "to"),
            f"allows egress to every address (any pod, any Service, the internet) on {ports}: "
            "name the peers, or except the pod network from the ipBlock",
        )


def _check_peer(
    r: Resource, peer: Obj, path: str, units: list[PodUnit], namespaces: set[str], report: Report
) -> None:
    if "podSelector" not in peer or not as_dict(peer.get("podSelector")):
        return
    nsel = peer.get("namespaceSelector")
    if nsel is None:
        target_ns: str | None = r.namespace
    else:
        name = as_dict(as_dict(nsel).get("matchLabels")).get(NS_NAME_LABEL)
        if name is None or str(name) not in namespaces:
            return  # another namespace (e.g. kube-system): not in this render
        target_ns = str(name)
    if not any(selects(peer["podSelector"], u.labels) for u in _pods_in(units, target_ns)):
        report.add(
            "semantics",
            r,
            jpath(path, "podSelector"),
            f"selects no pod in namespace {target_ns}: this rule allows nothing",
        )


SELECTOR_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
SVC_HOST = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\b")


def check_services(resources: list[Resource], units: list[PodUnit], report: Report) -> None:
    """Workload selectors, Service selectors/ports, StatefulSet serviceName, *.svc hostnames."""
    services = {(r.namespace, r.name): r for r in resources if r.kind == "Service"}
    namespaces = {r.name for r in resources if r.kind == "Namespace"}
    for r in resources:
        if r.upstream:
            continue
        if r.kind in SELECTOR_KINDS:
            tmpl_labels = {
                str(k): str(v)
                for k, v in as_dict(
                    as_dict(as_dict(r.spec.get("template")).get("metadata")).get("labels")
                ).items()
            }
            sel = r.spec.get("selector")
            if as_dict(sel) and not selects(sel, tmpl_labels):
                report.add(
                    "semantics",
                    r,
                    "spec.selector",
                    "selector does not match the pod template's labels (the API server rejects it)",
                )
        if r.kind == "StatefulSet":
            svc = r.spec.get("serviceName")
            if svc and (r.namespace, str(svc)) not in services:
                report.add(
                    "semantics",
                    r,
                    "spec.serviceName",
                    f"Service {r.namespace}/{svc} is not in the render",
                )
        if r.kind == "Service" and as_dict(r.spec.get("selector")):
            sel = {"matchLabels": r.spec["selector"]}
            pods = [u for u in _pods_in(units, r.namespace) if selects(sel, u.labels)]
            if not pods:
                report.add(
                    "semantics",
                    r,
                    "spec.selector",
                    f"selects no pod in namespace {r.namespace} (no endpoints)",
                )
                continue
            named = {
                str(as_dict(p).get("name"))
                for u in pods
                for c in u.containers
                for p in as_list(c.obj.get("ports"))
            }
            for i, port in enumerate(as_list(r.spec.get("ports"))):
                tp = as_dict(port).get("targetPort")
                if isinstance(tp, str) and not tp.isdigit() and tp not in named:
                    report.add(
                        "semantics",
                        r,
                        jpath("spec", "ports", i, "targetPort"),
                        f"named targetPort {tp!r} is not a container port of the selected pods",
                    )
    for u in units:
        if u.derived or u.res.upstream:
            continue
        for c in u.containers:
            for i, e in enumerate(as_list(c.obj.get("env"))):
                value = as_dict(e).get("value")
                if not isinstance(value, str):
                    continue
                for m in SVC_HOST.finditer(value):
                    name, ns = m.group(1), m.group(3)
                    if ns in namespaces and (ns, name) not in services:
                        report.add(
                            "semantics",
                            u.res,
                            jpath(c.path, "env", i, "value"),
                            f"{m.group(0)}: no Service {ns}/{name} in the render",
                        )
