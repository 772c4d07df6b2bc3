"""Layer 3 for pods that run Argo's CLI to submit a Workflow of a WorkflowTemplate
(`argo submit --from workflowtemplate/NAME`), as the isolation demo's PostSync hook Job does:
the template is in the render; every `--parameter` is one of its parameters (Argo accepts any
name, so a typo leaves the template's own value in place); the CLI waits (without `--wait` it
exits once the Workflow is created, and a sync hook succeeds whatever the run does); the pod
has a token, and its ServiceAccount may do exactly what the CLI does with the API, no more."""

from __future__ import annotations

from pathlib import PurePosixPath

from .model import Report, as_dict, as_list, jpath
from .podchecks import Index
from .pods import Container, PodUnit
from .rbac import bound_rules, sa_grants

TEMPLATE_KINDS = ("workflowtemplate", "workflowtemplates", "wftmpl", "WorkflowTemplate")
GROUP = "argoproj.io"
# What `argo submit --from workflowtemplate/NAME --wait` does with the Kubernetes API when it
# talks to no Argo Server (Argo Workflows v4.0.5: the CLI runs server/workflow/workflow_server.go
# itself): get the template (to validate the Workflow), create the Workflow, get it and watch it
# until it ends. (resource, verbs, limited to the template's name)
NEEDS = (("workflowtemplates", {"get"}, True), ("workflows", {"create", "get", "watch"}, False))
_ALIASES = {"-p": "--parameter", "-n": "--namespace", "-w": "--wait"}
_VALUED = {"--from", "--parameter", "--namespace", "--generate-name", "--labels", "-l"}


def parse(argv: list[str]) -> dict[str, list[str]] | None:
    """The options of an `argo submit` command line (flag -> values), None for any other."""
    if len(argv) < 2 or PurePosixPath(argv[0]).name != "argo" or argv[1] != "submit":
        return None
    opts: dict[str, list[str]] = {}
    i = 2
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        flag = _ALIASES.get(flag, flag)
        if not eq and flag in _VALUED and i + 1 < len(argv):
            i += 1
            value = argv[i]
        if flag.startswith("-"):
            opts.setdefault(flag, []).append(value)
        i += 1
    return opts


def check(units: list[PodUnit], idx: Index, report: Report) -> None:
    for u in units:
        if u.argo:
            continue
        for c in u.containers:
            argv = [str(x) for x in as_list(c.obj.get("command")) + as_list(c.obj.get("args"))]
            opts = parse(argv)
            if opts is not None:
                _check_submit(u, c, opts, idx, report)


def _check_submit(
    u: PodUnit, c: Container, opts: dict[str, list[str]], idx: Index, report: Report
) -> None:
    r, where = u.res, jpath(c.path, "args")
    ns = (opts.get("--namespace") or [u.namespace or ""])[-1]
    if ns != u.namespace:
        report.add(
            "semantics",
            r,
            where,
            f"argo submit into namespace {ns!r} from a pod in "
            f"{u.namespace!r}: keep the submitter in the namespace it submits into",
        )
        return
    kind, _, name = (opts.get("--from") or [""])[-1].partition("/")
    if kind not in TEMPLATE_KINDS:
        return
    tmpl = idx.get("WorkflowTemplate", ns, name)
    if tmpl is None:
        report.add(
            "semantics",
            r,
            where,
            f"--from {kind}/{name}: no WorkflowTemplate {ns}/{name} in the render",
        )
        return
    declared = {
        str(as_dict(p).get("name"))
        for p in as_list(as_dict(tmpl.spec.get("arguments")).get("parameters"))
    }
    for p in opts.get("--parameter", []):
        n = p.partition("=")[0]
        if n not in declared:
            report.add(
                "semantics",
                r,
                where,
                f"parameter {n!r} is not a parameter of "
                f"WorkflowTemplate {name!r}: Argo accepts any name and the template's own "
                f"value stays; name one of {', '.join(sorted(declared)) or '(none)'}",
            )
    if "--wait" not in opts:
        report.add(
            "semantics",
            r,
            where,
            "argo submit without --wait exits once the Workflow "
            "is created: the pod (a sync hook) succeeds whatever the run does",
        )
    _check_rbac(u, name, ns, idx, report)


def _check_rbac(u: PodUnit, template: str, ns: str, idx: Index, report: Report) -> None:
    r = u.res
    sa = str(u.pod.get("serviceAccountName") or "default")
    sa_obj = idx.get("ServiceAccount", ns, sa)
    sa_mounts = sa_obj is None or sa_obj.obj.get("automountServiceAccountToken") is not False
    if u.pod.get("automountServiceAccountToken", sa_mounts) is False:
        report.add(
            "semantics",
            r,
            jpath(u.path, "automountServiceAccountToken"),
            "argo submit needs the pod's token to reach the Kubernetes API, and it has none",
        )
    for resource, verbs, named in NEEDS:
        got = sa_grants(idx, ns, sa, GROUP, resource, verbs, template if named else None)
        if got != verbs:
            report.add(
                "semantics",
                r,
                jpath(u.path, "serviceAccountName"),
                f"ServiceAccount {ns}/{sa} lacks {resource} "
                f"{', '.join(sorted(verbs - got))} ({GROUP}), which `argo submit --from "
                f"workflowtemplate/{template} --wait` needs",
            )
    allowed = {res: verbs for res, verbs, _ in NEEDS}
    for role, i, rule in bound_rules(idx, ns, sa):
        resources = [str(x) for x in as_list(rule.get("resources"))]
        verbs = {str(x) for x in as_list(rule.get("verbs"))}
        groups = [str(x) for x in as_list(rule.get("apiGroups"))]
        extra = [
            f"{res} {', '.join(sorted(verbs - allowed.get(res, set())))}"
            for res in resources
            if groups != [GROUP] or not verbs <= allowed.get(res, set())
        ]
        if extra:
            report.add(
                "policy",
                role,
                jpath("rules", i),
                f"grants {'; '.join(extra)} "
                f"({', '.join(groups)}) to ServiceAccount {ns}/{sa}, which only submits "
                "Workflows with argo submit: least privilege, only what the CLI needs",
            )
