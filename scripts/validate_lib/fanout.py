"""Layer 3 for Argo fan-out: loops (`{{item}}`, withSequence) and containerSet pods.

Mistakes here pass the schema and fail only at run time, or silently: `{{item}}` where no loop
is (Argo refuses the workflow: "failed to resolve {{item}}"), a withSequence with both count
and end, or whose count is not an integer; N looped pods on one ReadWriteOnce claim (they can
only run on the node it is attached to); a containerSet container that reads what another
writes without depending on it (they start together), a dependency on no container or a
cycle (the pod waits until its deadline), and a retry expression reading an exit code that
Argo only records for a container named `main`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .model import Obj, Report, Resource, as_dict, as_list, jpath, walk_strings
from .pods import POD_TEMPLATE_TYPES, VAR_RE

LOOP_KEYS = ("withItems", "withParam", "withSequence")
SEQUENCE_FIELDS = ("count", "start", "end")
WF_PARAM_TAG = re.compile(r"^\{\{\s*workflow\.parameters\.([A-Za-z0-9_-]+)\s*\}\}$")
MULTI_NODE_MODES = {"ReadWriteMany", "ReadOnlyMany"}


def check(r: Resource, spec: Obj, path: str, wf_values: dict[str, str], report: Report) -> None:
    """SPEC is the workflow spec defined on R (templates and claims), at field path PATH;
    WF_VALUES the workflow parameters' values (as the controller would run them)."""
    templates = [as_dict(t) for t in as_list(spec.get("templates"))]
    by_name = {str(t.get("name")): t for t in templates}
    claims = {
        str(as_dict(c.get("metadata")).get("name")): {
            str(m) for m in as_list(as_dict(c.get("spec")).get("accessModes"))
        }
        for c in map(as_dict, as_list(spec.get("volumeClaimTemplates")))
    }
    for i, t in enumerate(templates):
        tpath = jpath(path, "templates", i)
        calls = list(_calls(t, tpath))
        _check_items(r, t, tpath, calls, report)
        for cpath, call in calls:
            if isinstance(call.get("withSequence"), dict):
                _check_sequence(r, call["withSequence"], cpath, wf_values, report)
            if any(k in call for k in LOOP_KEYS):
                _check_loop_claims(r, call, cpath, by_name, claims, report)
        if isinstance(t.get("containerSet"), dict):
            _check_container_set(r, t, tpath, report)


def _calls(t: Obj, tpath: str) -> Iterator[tuple[str, Obj]]:
    """Every step and DAG task of template T, with its field path."""
    for g, group in enumerate(as_list(t.get("steps"))):
        for s, step in enumerate(as_list(group)):
            yield jpath(tpath, "steps", g, s), as_dict(step)
    for k, task in enumerate(as_list(as_dict(t.get("dag")).get("tasks"))):
        yield jpath(tpath, "dag", "tasks", k), as_dict(task)


def _item_refs(text: str) -> Iterator[str]:
    """`item` or `item.<key>` for each simple {{item...}} tag in TEXT."""
    for m in VAR_RE.finditer(text):
        expr = m.group(1)
        if expr == "item" or expr.startswith("item."):
            yield expr


def _check_items(
    r: Resource, t: Obj, tpath: str, calls: list[tuple[str, Obj]], report: Report
) -> None:
    for spath, text in walk_strings(t, tpath):
        for ref in _item_refs(text):
            owner = next(
                ((cp, c) for cp, c in calls if spath.startswith((cp + ".", cp + "["))), None
            )
            why = _item_problem(ref, owner[1] if owner else None, owner[0] if owner else "")
            if why:
                report.add("semantics", r, spath, f"{{{{{ref}}}}}: {why}")


def _item_problem(ref: str, call: Obj | None, path: str) -> str | None:
    if call is None:
        return (
            "only a looping step or task (withItems, withParam, withSequence) has an item; "
            "inside a template pass it as an input parameter (Argo: failed to resolve "
            "{{item}})"
        )
    loop = next((k for k in LOOP_KEYS if k in call), None)
    if loop is None:
        kind = "task" if ".dag.tasks[" in path else "step"
        return (
            f"{kind} {call.get('name')!r} has no withItems, withParam or withSequence: "
            "there is no item (Argo: failed to resolve {{item}})"
        )
    key = ref.partition(".")[2]
    if not key:
        return None
    if loop == "withSequence":
        return "withSequence items are plain numbers: they have no fields"
    if loop == "withItems":
        items = as_list(call.get("withItems"))
        if not all(isinstance(x, dict) and key.split(".")[0] in x for x in items):
            return f"not every withItems item has the key {key.split('.')[0]!r}"
    return None


def _check_sequence(
    r: Resource, seq: Obj, path: str, wf_values: dict[str, str], report: Report
) -> None:
    spath = jpath(path, "withSequence")
    if "count" in seq and "end" in seq:
        report.add(
            "semantics",
            r,
            spath,
            "only one of count or end can be defined in withSequence (Argo rejects it)",
        )
    if "count" not in seq and "end" not in seq:
        report.add("semantics", r, spath, "withSequence needs count or end")
    for k in SEQUENCE_FIELDS:
        if k not in seq:
            continue
        raw = str(seq[k])
        m = WF_PARAM_TAG.match(raw)
        value = wf_values.get(m.group(1)) if m else raw
        via = f" (workflow parameter {m.group(1)!r})" if m else ""
        if value is None or "{{" in value:
            continue  # known only at run time
        if not re.fullmatch(r"[0-9]+", value.strip()):
            report.add(
                "semantics",
                r,
                jpath(spath, k),
                f"withSequence.{k} is {value!r}{via}: not a non-negative integer, so Argo "
                "fails the workflow when it expands the sequence",
            )


def _pod_templates(name: str, by_name: dict[str, Obj], seen: set[str]) -> Iterator[Obj]:
    """The pod templates (container, script, containerSet) template NAME runs."""
    if name in seen or name not in by_name:
        return
    seen.add(name)
    t = by_name[name]
    if any(k in t for k in POD_TEMPLATE_TYPES):
        yield t
    for _, call in _calls(t, ""):
        if call.get("template"):
            yield from _pod_templates(str(call["template"]), by_name, seen)


def _mounts(t: Obj) -> Iterator[Obj]:
    for key in ("container", "script"):
        yield from map(as_dict, as_list(as_dict(t.get(key)).get("volumeMounts")))
    cs = as_dict(t.get("containerSet"))
    yield from map(as_dict, as_list(cs.get("volumeMounts")))
    for c in as_list(cs.get("containers")):
        yield from map(as_dict, as_list(as_dict(c).get("volumeMounts")))


def _check_loop_claims(
    r: Resource,
    call: Obj,
    path: str,
    by_name: dict[str, Obj],
    claims: dict[str, set[str]],
    report: Report,
) -> None:
    if not call.get("template"):
        return
    for t in _pod_templates(str(call["template"]), by_name, set()):
        for m in _mounts(t):
            name = str(m.get("name"))
            if name in claims and not claims[name] & MULTI_NODE_MODES:
                modes = ", ".join(sorted(claims[name])) or "no access mode"
                report.add(
                    "semantics",
                    r,
                    jpath(path, "template"),
                    f"loops over template {t.get('name')!r}, whose pods mount the workflow's "
                    f"claim {name!r} ({modes}): every pod of the loop then needs the one node "
                    "that claim is attached to (the others fail with a Multi-Attach error); "
                    "give each pod its own volume (e.g. an emptyDir in a containerSet) or use "
                    "ReadWriteMany",
                )
                return


def _check_container_set(r: Resource, t: Obj, tpath: str, report: Report) -> None:
    cs = as_dict(t["containerSet"])
    cpath = jpath(tpath, "containerSet")
    containers = [as_dict(c) for c in as_list(cs.get("containers"))]
    names = [str(c.get("name")) for c in containers]
    deps: dict[str, set[str]] = {}
    for j, c in enumerate(containers):
        n = names[j]
        if names.count(n) > 1 and names.index(n) != j:
            report.add(
                "semantics", r, jpath(cpath, "containers", j, "name"), f"duplicate container {n!r}"
            )
        deps[n] = set()
        for d in as_list(c.get("dependencies")):
            if str(d) not in names:
                report.add(
                    "semantics",
                    r,
                    jpath(cpath, "containers", j, "dependencies"),
                    f"dependency {d!r} is not a container of this containerSet "
                    f"(containers: {', '.join(names)}): the container would wait forever",
                )
            else:
                deps[n].add(str(d))
    ancestors = {n: _ancestors(n, deps) for n in deps}
    for j, n in enumerate(names):
        if n in ancestors[n]:
            report.add(
                "semantics",
                r,
                jpath(cpath, "containers", j, "dependencies"),
                f"container {n!r} depends on itself through its dependencies: it never starts",
            )
    _check_data_order(r, cs, containers, names, ancestors, cpath, report)
    _check_main(r, t, names, tpath, report)


def _ancestors(name: str, deps: dict[str, set[str]]) -> set[str]:
    out: set[str] = set()
    todo = list(deps.get(name, ()))
    while todo:
        d = todo.pop()
        if d not in out:
            out.add(d)
            todo.extend(deps.get(d, ()))
    return out


def _check_data_order(
    r: Resource,
    cs: Obj,
    containers: list[Obj],
    names: list[str],
    ancestors: dict[str, set[str]],
    cpath: str,
    report: Report,
) -> None:
    """A container mounting a volume read-only reads what a container mounting it read-write
    writes: it must depend on that writer, or both start at once and it reads nothing."""
    shared = [as_dict(m) for m in as_list(cs.get("volumeMounts"))]
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[tuple[int, str]]] = {}
    for j, c in enumerate(containers):
        for m in shared + [as_dict(x) for x in as_list(c.get("volumeMounts"))]:
            vol = str(m.get("name"))
            if m.get("readOnly"):
                readers.setdefault(vol, []).append((j, names[j]))
            else:
                writers.setdefault(vol, []).append(names[j])
    for vol, rs in readers.items():
        for j, reader in rs:
            for writer in writers.get(vol, []):
                if writer != reader and writer not in ancestors.get(reader, set()):
                    report.add(
                        "semantics",
                        r,
                        jpath(cpath, "containers", j, "dependencies"),
                        f"container {reader!r} reads volume {vol!r} (readOnly) that container "
                        f"{writer!r} writes, but does not depend on {writer!r}: containers "
                        "without dependencies start together",
                    )


def _check_main(r: Resource, t: Obj, names: list[str], tpath: str, report: Report) -> None:
    """Argo records a containerSet pod's exit code and outputs from its `main` container."""
    if "main" in names:
        return
    expr = str(as_dict(t.get("retryStrategy")).get("expression", ""))
    if "exitCode" in expr:
        report.add(
            "semantics",
            r,
            jpath(tpath, "retryStrategy", "expression"),
            "reads lastRetry.exitCode, which Argo takes from the container named main only; "
            f"no container of this containerSet is named main ({', '.join(names)}), so the "
            "exit code is never set and the rule never matches",
        )
    outs = as_dict(t.get("outputs"))
    if as_list(outs.get("parameters")) or as_list(outs.get("artifacts")):
        report.add(
            "semantics",
            r,
            jpath(tpath, "outputs"),
            "a containerSet's outputs come from its container named main, and none is",
        )
