"""Argo's executor (the init and wait containers of every workflow pod): its image and security
context in the controller's configmap, and the RBAC and token its ServiceAccount needs."""

from __future__ import annotations

import re

from . import yamlio
from .config import Config
from .model import Obj, Report, Resource, as_dict, as_list, jpath, psa_levels
from .podchecks import Index
from .pods import ARGO_WF_KINDS, PodUnit, own_workflow_spec
from .rbac import sa_grants


def _executor_config(cm: Resource) -> Obj:
    """The `executor` settings of workflow-controller-configmap (its own key, or in `config`)."""
    data = as_dict(cm.obj.get("data"))
    if "executor" in data:
        return as_dict(yamlio.load(str(data["executor"])))
    return as_dict(as_dict(yamlio.load(str(data.get("config") or "{}"))).get("executor"))


NONROOT_EXECUTOR = re.compile(
    r"^(?:[^/]+/)*argoexec:(?P<tag>v[0-9][^@]*)-nonroot(?:@sha256:[0-9a-f]{64})?$"
)
CONTROLLER_TAG = re.compile(r"^(?:[^/]+/)*workflow-controller:(?P<tag>[^@]+)")


def check_image(renders: dict[str, list[Resource]], report: Report) -> None:
    """The controller's executor image must be Argo's non-root build (argoexec:<v>-nonroot) of
    the controller's own release: the default argoexec image runs as root, so the init/wait
    containers of any Workflow that sets no runAsUser would be refused by runAsNonRoot."""
    for v in renders.values():
        controllers = [r for r in v if r.kind == "Deployment" and r.name == "workflow-controller"]
        tags = {
            m.group("tag")
            for r in controllers
            for c in as_list(as_dict(as_dict(r.spec.get("template")).get("spec")).get("containers"))
            if (m := CONTROLLER_TAG.match(str(as_dict(c).get("image", ""))))
        }
        for r in controllers:
            pod = as_dict(as_dict(r.spec.get("template")).get("spec"))
            for c in as_list(pod.get("containers")):
                args = [str(a) for a in as_list(as_dict(c).get("args"))]
                if any(a.startswith("--executor-image") for a in args):
                    report.add(
                        "semantics",
                        r,
                        "spec.template.spec.containers.args",
                        "--executor-image overrides the configmap's executor.image: set the "
                        "non-root executor image in workflow-controller-configmap instead",
                    )
        for cm in v:
            if cm.kind != "ConfigMap" or cm.name != "workflow-controller-configmap":
                continue
            image = str(_executor_config(cm).get("image") or "")
            m = NONROOT_EXECUTOR.match(image)
            if m is None:
                got = f"got {image!r}" if image else "none set, so the root default argoexec"
                report.add(
                    "semantics",
                    cm,
                    "data.executor.image",
                    f"executor image must be Argo's non-root build argoexec:<version>-nonroot "
                    f"({got}): Argo's init/wait containers would run as root in every Workflow "
                    "that sets no runAsUser",
                )
            elif tags and m.group("tag") not in tags:
                report.add(
                    "semantics",
                    cm,
                    "data.executor.image",
                    f"executor image {image} is not the controller's release "
                    f"({', '.join(sorted(tags))})",
                )


def check_pod_security(renders: dict[str, list[Resource]], report: Report) -> None:
    """Argo's init/wait containers take their securityContext from the controller's executor
    config; in a namespace enforcing Pod Security 'restricted' they must comply too."""
    restricted = {
        ns for v in renders.values() for ns, level in psa_levels(v).items() if level == "restricted"
    }
    argo_ns = {
        r.namespace
        for v in renders.values()
        for r in v
        if r.kind in ARGO_WF_KINDS and not r.upstream
    }
    affected = sorted(n for n in argo_ns & restricted if n)
    if not affected:
        return
    cms = [
        r
        for v in renders.values()
        for r in v
        if r.kind == "ConfigMap" and r.name == "workflow-controller-configmap"
    ]
    if not cms:
        return  # the controller config is not part of this repo's renders
    for cm in cms:
        sc = as_dict(_executor_config(cm).get("securityContext"))
        missing = []
        if sc.get("allowPrivilegeEscalation") is not False:
            missing.append("allowPrivilegeEscalation: false")
        if "ALL" not in [str(x) for x in as_list(as_dict(sc.get("capabilities")).get("drop"))]:
            missing.append("capabilities.drop [ALL]")
        if sc.get("runAsNonRoot") is not True:
            missing.append("runAsNonRoot: true")
        if as_dict(sc.get("seccompProfile")).get("type") != "RuntimeDefault":
            missing.append("seccompProfile RuntimeDefault")
        if missing:
            report.add(
                "semantics",
                cm,
                "data.executor.securityContext",
                f"workflows run in namespace(s) {', '.join(affected)} enforcing Pod "
                f"Security 'restricted', but Argo's init/wait containers lack "
                f"{', '.join(missing)}",
            )


def check_rbac(units: list[PodUnit], idx: Index, cfg: Config, report: Report) -> None:
    """Argo's executor (wait container) writes WorkflowTaskResults with the pod's token."""
    need = {"create", "patch"}
    for u in units:
        if not u.argo:
            continue
        own = own_workflow_spec(u.res)
        if u.derived and not any(
            k in own for k in ("serviceAccountName", "executor", "automountServiceAccountToken")
        ):
            continue  # same pods as the referenced WorkflowTemplate, reported there
        executor_sa = as_dict(u.pod.get("executor")).get("serviceAccountName")
        sa = executor_sa or u.pod.get("serviceAccountName")
        where = "executor.serviceAccountName" if executor_sa else "serviceAccountName"
        if u.pod.get("automountServiceAccountToken") is False and not executor_sa:
            report.add(
                "semantics",
                u.res,
                jpath(u.path, "automountServiceAccountToken"),
                "automountServiceAccountToken false without executor.serviceAccountName: "
                "Argo rejects the workflow",
            )
        if executor_sa:
            _check_token_secret(u, str(executor_sa), idx, cfg, report)
        if not sa:
            report.add(
                "semantics",
                u.res,
                jpath(u.path, "serviceAccountName"),
                "no serviceAccountName: pods run as `default`, which has no "
                "workflowtaskresults create/patch RBAC (the wait container fails)",
            )
            continue
        got = sa_grants(idx, u.namespace, str(sa), "argoproj.io", "workflowtaskresults", need)
        if got != need:
            missing = ", ".join(sorted(need - got))
            report.add(
                "semantics",
                u.res,
                jpath(u.path, where),
                f"ServiceAccount {u.namespace}/{sa} lacks workflowtaskresults {missing} "
                "(argoproj.io) through a Role/RoleBinding in its namespace",
            )


def _check_token_secret(u: PodUnit, sa: str, idx: Index, cfg: Config, report: Report) -> None:
    """With executor.serviceAccountName Argo mounts the executor's token from the Secret
    `<sa>.service-account-token` (Kubernetes >= 1.24 creates none by itself)."""
    name = f"{sa}.service-account-token"
    sec = idx.get("Secret", u.namespace, name)
    if sec is None:
        if cfg.external_obj("Secret", name, u.namespace) is None:
            report.add(
                "semantics",
                u.res,
                jpath(u.path, "executor", "serviceAccountName"),
                f"executor.serviceAccountName {sa}: Argo mounts the executor token from Secret "
                f"{u.namespace}/{name}, which is not in the render nor declared external",
            )
        return
    ann = as_dict(sec.meta.get("annotations")).get("kubernetes.io/service-account.name")
    if sec.obj.get("type") != "kubernetes.io/service-account-token" or ann != sa:
        report.add(
            "semantics",
            sec,
            "type",
            f"must be type kubernetes.io/service-account-token with annotation "
            f"kubernetes.io/service-account.name: {sa} (the token controller fills it)",
        )
