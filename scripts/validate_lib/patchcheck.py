"""kustomize silently skips a `patches:` entry whose target selects nothing: report it.

Targets are matched the way kustomize does it (anchored regular expressions for group,
version, kind, name and namespace; label and annotation selectors) against the objects the
kustomization renders. A component's patches are checked against the render that uses it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import render
from .model import Obj, Report, Resource, as_dict, as_list

_TERM = re.compile(r"\s*([^,()]+?(?:\s+(?:in|notin)\s*\([^)]*\))?)\s*(?:,|$)")


def _anchored(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return pattern == value


def parse_selector(sel: str) -> list[tuple[str, str, set[str]]]:
    """'a=b,c in (x,y),!d' -> [(key, op, values)]; op in = != in notin exists !exists."""
    out: list[tuple[str, str, set[str]]] = []
    for m in _TERM.finditer(sel):
        term = m.group(1).strip()
        if not term:
            continue
        sm = re.fullmatch(r"(\S+)\s+(in|notin)\s*\(([^)]*)\)", term)
        if sm:
            vals = {v.strip() for v in sm.group(3).split(",") if v.strip()}
            out.append((sm.group(1), sm.group(2), vals))
        elif "!=" in term:
            k, v = term.split("!=", 1)
            out.append((k.strip(), "!=", {v.strip()}))
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            out.append((k.strip(), "=", {v.strip()}))
        elif term.startswith("!"):
            out.append((term[1:].strip(), "!exists", set()))
        else:
            out.append((term, "exists", set()))
    return out


def _selector_matches(sel: str, labels: dict[str, Any]) -> bool:
    for key, op, vals in parse_selector(sel):
        have = labels.get(key)
        have_s = None if have is None else str(have)
        ok = {
            "=": have_s in vals,
            "!=": have_s not in vals,
            "in": have_s in vals,
            "notin": have_s not in vals,
            "exists": have is not None,
            "!exists": have is None,
        }[op]
        if not ok:
            return False
    return True


def target_matches(target: Obj, r: Resource) -> bool:
    av = r.api_version
    group, _, version = av.rpartition("/") if "/" in av else ("", "", av)
    checks = (
        ("group", group),
        ("version", version),
        ("kind", r.kind),
        ("name", r.name),
        ("namespace", r.namespace or ""),
    )
    for key, value in checks:
        pat = target.get(key)
        if pat is not None and pat != "" and not _anchored(str(pat), value):
            return False
    ls = target.get("labelSelector")
    if ls and not _selector_matches(str(ls), as_dict(r.meta.get("labels"))):
        return False
    anns = target.get("annotationSelector")
    return not (anns and not _selector_matches(str(anns), as_dict(r.meta.get("annotations"))))


def _patch_entries(d: Path) -> list[tuple[str, Obj]]:
    """(where, target) of every targeted patch of d and of the components d uses."""
    k = render.read_kustomization(d)
    out: list[tuple[str, Obj]] = []
    kf = render.kustomization_file(d)
    where = str(kf.name) if kf else "kustomization.yaml"
    for key in ("patches", "patchesJson6902"):
        for i, p in enumerate(as_list(k.get(key))):
            target = as_dict(as_dict(p).get("target"))
            if target:
                out.append((f"{where}: {key}[{i}]", target))
    for comp in as_list(k.get("components")):
        if isinstance(comp, str):
            cdir = (d / comp).resolve()
            if cdir.is_dir():
                out.extend((f"{comp}/{w}", t) for w, t in _patch_entries(cdir))
    return out


def check(d: Path, resources: list[Resource], label: str, report: Report) -> None:
    for where, target in _patch_entries(d):
        if not any(target_matches(target, r) for r in resources):
            sel = ", ".join(f"{k}={v}" for k, v in target.items())
            report.add(
                "render",
                None,
                where,
                f"patch target ({sel}) selects no object: kustomize silently skips the patch",
                source=label,
            )
