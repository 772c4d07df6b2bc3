"""scripts/validate: render, schema-check, semantics and policy for the GitOps repo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import (
    argocd,
    config,
    executor,
    patchcheck,
    policy,
    render,
    schemas,
    semantics,
    tools,
    upstream,
)
from .model import CLUSTER_SCOPED, Report, Resource, as_dict, as_list
from .pods import PodUnit, made_pods

MAX_CRD_ANNOTATION = 262144  # client-side apply stores the object in an annotation


def _label(p: Path) -> str:
    rp = p.resolve()
    if rp.is_relative_to(upstream.REPO_ROOT):
        return str(rp.relative_to(upstream.REPO_ROOT)) or "."
    return str(p)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (upstream.UpstreamError, tools.ToolError) as exc:
        # No traceback: one line saying what is missing and how to get it.
        print(f"scripts/validate: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/validate",
        description="Offline validation gate (docs/validation.md). No PATH: every kustomization "
        "in the repo. '-': rendered YAML on stdin. PATH: a kustomization dir or a YAML file.",
    )
    ap.add_argument("paths", nargs="*", metavar="PATH|-")
    ap.add_argument(
        "--profile",
        help="runtime-class profile to apply (default: by path, "
        "see targets in scripts/validate-config.yaml)",
    )
    ap.add_argument("--no-checkov", action="store_true", help="skip layer 4 (checkov)")
    ap.add_argument(
        "--list-pods",
        action="store_true",
        help="print every pod the render would create with its runtime class",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    scripts_dir = Path(__file__).resolve().parents[1]
    cfg = config.load(scripts_dir)
    report = Report()
    renderer = render.Renderer(upstream.REPO_ROOT)
    renders: dict[str, list[Resource]] = {}
    dirs_of: dict[Path, str] = {}
    nested_ok = 0
    units_all: dict[str, list[PodUnit]] = {}
    repo_mode = not args.paths
    try:
        targets: list[tuple[str, Path | None]] = []
        if repo_mode:
            found = render.discover(upstream.REPO_ROOT)
            tops, nested = render.roots(found)
            for d in nested:
                if render.is_component(d):
                    continue
                rendered_nested = renderer.render(d, _label(d), report)
                if rendered_nested is not None:
                    nested_ok += 1
                    patchcheck.check(d, rendered_nested, _label(d), report)
                dirs_of[d.resolve()] = _label(d)
            targets = [(_label(d), d) for d in tops if not render.is_component(d)]
            # Manifests applied as files, not through a kustomization (the root Application).
            targets += [(m, upstream.REPO_ROOT / m) for m in cfg.manifests]
        else:
            for a in args.paths:
                if a == "-":
                    targets.append(("-", None))
                else:
                    targets.append((_label(Path(a)), Path(a)))
        for label, path in targets:
            if path is None or path.is_file():
                resources = render.load_file(path, label, report)
            elif path.is_dir():
                resources = renderer.render(path, label, report)
                dirs_of[path.resolve()] = label
                if resources:
                    patchcheck.check(path, resources, label, report)
            else:
                report.add("render", None, "", "no such file or directory", source=label)
                continue
            if resources is None:
                continue
            if not resources:
                report.add("render", None, "", "rendered no objects", source=label)
                continue
            renders[label] = resources
            profile = args.profile or cfg.profile_for(label)
            units_all[label] = semantics.check(resources, cfg, report, profile, label)
        _global_checks(renders, dirs_of, renderer, cfg, report)
        _schema_checks(renders, units_all, cfg, report)
        ck = policy.CheckovResult(ran=False)
        if not args.no_checkov and renders:
            ck = policy.run(renders, units_all, cfg, report)
            if repo_mode and ck.ran:
                policy.unused_skips(cfg, ck, report)
    finally:
        renderer.close()
    if args.list_pods:
        for label, units in units_all.items():
            print(f"# {label}")
            print(semantics.dump_units(units))
    problems = report.unique()
    for p in problems:
        print(p.format())
    n_res = sum(len(v) for v in renders.values())
    n_up = sum(1 for v in renders.values() for r in v if r.upstream)
    n_mod = sum(1 for v in renders.values() for r in v if r.upstream and r.modified)
    summary = (
        f"{len(renders)} render(s)"
        + (f" + {nested_ok} nested kustomization(s) rendered" if repo_mode else "")
        + f", {n_res} objects ({n_up} from pinned upstream releases, {n_mod} of them modified)"
        + (
            f", checkov {ck.passed} passed / {ck.failed} failed / {ck.skipped} skipped by config"
            if ck.ran
            else ", checkov not run"
        )
        + f", {time.monotonic() - t0:.1f}s"
    )
    if problems:
        print(f"FAILED: {len(problems)} problem(s); {summary}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"OK: {summary}")
    return 0


def _schema_checks(
    renders: dict[str, list[Resource]],
    units: dict[str, list[PodUnit]],
    cfg: config.Config,
    report: Report,
) -> None:
    """One kubeconform run: the objects of this repo (and the upstream ones it modified), and
    the Pod each Argo template makes (its podSpecPatch applied)."""
    items = [(r, r.obj, "") for v in renders.values() for r in v if not r.upstream or r.modified]
    items += [(u.res, pod, f"{where}: ") for v in units.values() for u, pod, where in made_pods(v)]
    schemas.validate(items, report, frozenset(cfg.allowed_kinds))


def _global_checks(
    renders: dict[str, list[Resource]],
    dirs_of: dict[Path, str],
    renderer: render.Renderer,
    cfg: config.Config,
    report: Report,
) -> None:
    """Checks across renders: what each Application applies, Argo executor vs Pod Security."""
    renders_extra: dict[str, list[Resource]] = {}
    apps = [r for v in renders.values() for r in v if r.kind == "Application" and not r.upstream]
    projects = {r.name: r for v in renders.values() for r in v if r.kind == "AppProject"}
    for app, _field, d in argocd.app_paths(apps):
        if render.kustomization_file(d) is None:
            continue  # not a kustomization: the Application check reports a missing path
        label = dirs_of.get(d) or _label(d)
        rendered = renders.get(label)
        if rendered is None:
            rendered = renderer.render(d, label, Report()) or []
            renders_extra[label] = rendered
        proj = projects.get(str(app.spec.get("project")))
        argocd.check_project_kinds(app, proj, rendered, report, CLUSTER_SCOPED)
        kz = as_dict(as_dict(app.spec.get("source")).get("kustomize"))
        for i, p in enumerate(as_list(kz.get("patches"))):
            target = as_dict(as_dict(p).get("target"))
            if target and not any(patchcheck.target_matches(target, r) for r in rendered):
                report.add(
                    "semantics",
                    app,
                    f"spec.source.kustomize.patches[{i}].target",
                    f"selects no object of {label}: Argo CD's kustomize skips the patch silently",
                )
        big = [
            r.name
            for r in rendered
            if r.kind == "CustomResourceDefinition" and len(str(r.obj)) > MAX_CRD_ANNOTATION
        ]
        opts = [str(o) for o in as_list(as_dict(app.spec.get("syncPolicy")).get("syncOptions"))]
        if big and "ServerSideApply=true" not in opts and "Replace=true" not in opts:
            report.add(
                "semantics",
                app,
                "spec.syncPolicy.syncOptions",
                f"applies CRDs too large for client-side apply ({', '.join(big[:3])}...): "
                "needs ServerSideApply=true",
            )
    executor.check_pod_security(renders, report)
    executor.check_image(renders, report)
