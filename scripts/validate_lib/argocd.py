"""Layer 3 for Argo CD objects: paths, projects, sync options, hooks."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from . import upstream
from .model import Obj, Report, Resource, as_dict, as_list, jpath
from .podchecks import Index

SYNC_OPTIONS = {
    "Validate": ("true", "false"),
    "CreateNamespace": ("true", "false"),
    "PruneLast": ("true", "false"),
    "ApplyOutOfSyncOnly": ("true", "false"),
    "ServerSideApply": ("true", "false"),
    "Replace": ("true", "false"),
    "Force": ("true", "false"),
    "RespectIgnoreDifferences": ("true", "false"),
    "FailOnSharedResource": ("true", "false"),
    "SkipDryRunOnMissingResource": ("true", "false"),
    "Prune": ("true", "false", "confirm"),
    "Delete": ("true", "false", "confirm"),
    "PrunePropagationPolicy": ("foreground", "background", "orphan"),
    "ClientSideApplyMigration": ("true", "false"),
}
HOOKS = ("PreSync", "Sync", "PostSync", "SyncFail", "PostDelete", "Skip")
HOOK_DELETE = ("HookSucceeded", "HookFailed", "BeforeHookCreation")


def _sync_options(r: Resource, opts: object, path: str, report: Report) -> None:
    for i, o in enumerate(as_list(opts)):
        key, _, val = str(o).partition("=")
        if key not in SYNC_OPTIONS:
            report.add(
                "semantics", r, f"{path}[{i}]", f"unknown sync option {key!r}: Argo CD ignores it"
            )
        elif val not in SYNC_OPTIONS[key]:
            report.add(
                "semantics",
                r,
                f"{path}[{i}]",
                f"{key}={val!r}: expected one of {', '.join(SYNC_OPTIONS[key])}",
            )


def sources(app: Resource) -> list[tuple[str, Obj]]:
    spec = app.spec
    if isinstance(spec.get("source"), dict):
        return [("spec.source", spec["source"])]
    return [(f"spec.sources[{i}]", as_dict(s)) for i, s in enumerate(as_list(spec.get("sources")))]


def check(r: Resource, idx: Index, report: Report) -> None:
    ann = as_dict(r.meta.get("annotations"))
    hook = ann.get("argocd.argoproj.io/hook")
    if hook is not None:
        for i, h in enumerate(str(hook).split(",")):
            if h.strip() not in HOOKS:
                report.add(
                    "semantics",
                    r,
                    "metadata.annotations.argocd.argoproj.io/hook",
                    f"unknown hook {h!r} (item {i})",
                )
    hdp = ann.get("argocd.argoproj.io/hook-delete-policy")
    if hdp is not None:
        for h in str(hdp).split(","):
            if h.strip() not in HOOK_DELETE:
                report.add(
                    "semantics",
                    r,
                    "metadata.annotations.argocd.argoproj.io/hook-delete-policy",
                    f"unknown hook delete policy {h!r}",
                )
    opts = ann.get("argocd.argoproj.io/sync-options")
    if opts is not None:
        _sync_options(r, str(opts).split(","), "metadata.annotations.sync-options", report)
    if r.kind != "Application":
        return
    spec = r.spec
    _sync_options(
        r, as_dict(spec.get("syncPolicy")).get("syncOptions"), "spec.syncPolicy.syncOptions", report
    )
    project = str(spec.get("project", ""))
    proj = None
    if project and project != "default":
        proj = idx.get("AppProject", r.namespace, project)
        if proj is None:
            report.add(
                "semantics",
                r,
                "spec.project",
                f"AppProject {project!r} is not in the render (namespace {r.namespace})",
            )
    srcs = sources(r)
    for path, src in srcs:
        repo = str(src.get("repoURL", ""))
        if proj is not None:
            allowed = [str(x) for x in as_list(proj.spec.get("sourceRepos"))]
            if not any(fnmatch.fnmatchcase(repo, a) for a in allowed):
                report.add(
                    "semantics",
                    r,
                    jpath(path, "repoURL"),
                    f"repoURL {repo!r} not permitted by AppProject {project} sourceRepos {allowed}",
                )
        p = src.get("path")
        if p is not None and "chart" not in src and repo not in upstream.PINNED:
            d = upstream.REPO_ROOT / str(p)
            if not d.is_dir():
                report.add(
                    "semantics", r, jpath(path, "path"), f"path {p!r} does not exist in this repo"
                )
            elif not any(d.glob("*.yaml")) and not any(d.glob("*.yml")):
                report.add("semantics", r, jpath(path, "path"), f"path {p!r} has no manifests")
    dest = as_dict(spec.get("destination"))
    if proj is not None:
        ok = False
        for dd in as_list(proj.spec.get("destinations")):
            dd = as_dict(dd)
            server_ok = (
                fnmatch.fnmatchcase(str(dest.get("server", "")), str(dd.get("server", "")))
                if dd.get("server")
                else fnmatch.fnmatchcase(str(dest.get("name", "")), str(dd.get("name", "")))
            )
            ns_ok = fnmatch.fnmatchcase(
                str(dest.get("namespace", "")), str(dd.get("namespace", "*"))
            )
            ok = ok or (server_ok and ns_ok)
        if not ok:
            report.add(
                "semantics",
                r,
                "spec.destination",
                f"destination {dest} not permitted by AppProject {project}",
            )


def app_paths(apps: list[Resource]) -> list[tuple[Resource, str, Path]]:
    """(Application, source field path, repo dir) for sources that are paths in this repo."""
    out = []
    for app in apps:
        for path, src in sources(app):
            p = src.get("path")
            if p is not None and "chart" not in src:
                out.append((app, path, (upstream.REPO_ROOT / str(p)).resolve()))
    return out


def check_project_kinds(
    app: Resource,
    proj: Resource | None,
    rendered: list[Resource],
    report: Report,
    cluster_scoped: frozenset[str],
) -> None:
    """Every kind the Application would apply is permitted by its AppProject."""
    if proj is None:
        return
    cw = [as_dict(x) for x in as_list(proj.spec.get("clusterResourceWhitelist"))]
    nw = proj.spec.get("namespaceResourceWhitelist")
    nb = [as_dict(x) for x in as_list(proj.spec.get("namespaceResourceBlacklist"))]

    def match(lst: list[Obj], group: str, kind: str) -> bool:
        return any(
            fnmatch.fnmatchcase(group, str(x.get("group", "")))
            and fnmatch.fnmatchcase(kind, str(x.get("kind", "")))
            for x in lst
        )

    dests = [as_dict(x) for x in as_list(proj.spec.get("destinations"))]
    app_ns = str(as_dict(app.spec.get("destination")).get("namespace", ""))
    bad_ns: set[str] = set()
    for r in rendered:
        if r.kind in cluster_scoped:
            continue
        ns = r.namespace or app_ns
        if ns in bad_ns:
            continue
        if not any(fnmatch.fnmatchcase(ns, str(d.get("namespace", "*"))) for d in dests):
            bad_ns.add(ns)
            report.add(
                "semantics",
                app,
                "spec.project",
                f"AppProject {proj.name} destinations do not permit namespace {ns!r}, "
                f"where this Application applies {r.ident}",
            )
    seen: set[tuple[str, str]] = set()
    for r in rendered:
        key = (r.group, r.kind)
        if key in seen:
            continue
        seen.add(key)
        group, kind = key
        if kind in cluster_scoped:
            if not match(cw, group, kind):
                report.add(
                    "semantics",
                    app,
                    "spec.project",
                    f"AppProject {proj.name} does not whitelist cluster-scoped "
                    f"{kind} ({group or 'core'}), which this Application applies",
                )
        else:
            if nw is not None and not match([as_dict(x) for x in as_list(nw)], group, kind):
                report.add(
                    "semantics",
                    app,
                    "spec.project",
                    f"AppProject {proj.name} namespaceResourceWhitelist lacks {kind} "
                    f"({group or 'core'}), which this Application applies",
                )
            if match(nb, group, kind):
                report.add(
                    "semantics",
                    app,
                    "spec.project",
                    f"AppProject {proj.name} blacklists {kind}, which this Application applies",
                )
