"""What a ServiceAccount may do through the Roles and RoleBindings of a render."""

from __future__ import annotations

from .model import Obj, Resource, as_dict, as_list
from .podchecks import Index


def _grants(rule: Obj, group: str, resource: str, verbs: set[str], name: str | None) -> set[str]:
    groups = [str(x) for x in as_list(rule.get("apiGroups"))]
    resources = [str(x) for x in as_list(rule.get("resources"))]
    if not (group in groups or "*" in groups) or not (resource in resources or "*" in resources):
        return set()
    names = [str(x) for x in as_list(rule.get("resourceNames"))]
    if names and name not in names:
        return set()  # a rule limited to named objects grants nothing on others (or on create)
    rv = {str(x) for x in as_list(rule.get("verbs"))}
    return verbs if "*" in rv else verbs & rv


def bound_rules(idx: Index, ns: str | None, sa: str) -> list[tuple[Resource, int, Obj]]:
    """(Role or ClusterRole, rule index, rule) of every rule ServiceAccount ns/sa is bound to
    in namespace ns through the render."""
    out = []
    for b in idx.resources:
        if b.kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if b.kind == "RoleBinding" and b.namespace != ns:
            continue
        if not any(
            as_dict(s).get("kind") == "ServiceAccount"
            and as_dict(s).get("name") == sa
            and (as_dict(s).get("namespace") or b.namespace) == ns
            for s in as_list(b.obj.get("subjects"))
        ):
            continue
        ref = as_dict(b.obj.get("roleRef"))
        role = idx.get(
            str(ref.get("kind")), ns if ref.get("kind") == "Role" else None, str(ref.get("name"))
        )
        if role is not None:
            out += [
                (role, i, as_dict(rule)) for i, rule in enumerate(as_list(role.obj.get("rules")))
            ]
    return out


def sa_grants(
    idx: Index,
    ns: str | None,
    sa: str,
    group: str,
    resource: str,
    verbs: set[str],
    name: str | None = None,
) -> set[str]:
    """Verbs of `verbs` that ServiceAccount ns/sa has on group/resource (the object NAME, if
    the request names one) through the render."""
    got: set[str] = set()
    for _, _, rule in bound_rules(idx, ns, sa):
        got |= _grants(rule, group, resource, verbs, name)
    return got
