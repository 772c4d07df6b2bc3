"""Resources under validation and the problems found in them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "PersistentVolume",
        "ClusterWorkflowTemplate",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "IngressClass",
        "CSIDriver",
        "Node",
    }
)


@dataclass
class Resource:
    obj: Obj
    source: str  # kustomization dir or file, repo-relative ("-" for stdin)
    origin: str  # file the object came from (repo-relative), or the pinned upstream URL
    upstream: bool = False  # rendered from a pinned upstream release file
    modified: bool = False  # upstream object changed by this repo (patch, namespace, labels)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "?"))

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", "?"))

    @property
    def group(self) -> str:
        """API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def meta(self) -> Obj:
        m = self.obj.get("metadata")
        return m if isinstance(m, dict) else {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.meta.get("generateName") or "?")

    @property
    def namespace(self) -> str | None:
        ns = self.meta.get("namespace")
        return str(ns) if ns else None

    @property
    def spec(self) -> Obj:
        s = self.obj.get("spec")
        return s if isinstance(s, dict) else {}

    @property
    def ident(self) -> str:
        """Kind/namespace/name (namespace omitted for cluster-scoped objects)."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Problem:
    layer: str  # render | schema | semantics | policy
    source: str
    resource: str  # Kind/namespace/name or "-"
    path: str  # field path, e.g. spec.templates[0].podSpecPatch
    reason: str
    origin: str = ""

    def format(self) -> str:
        where = f" ({self.origin})" if self.origin and self.origin != self.source else ""
        path = self.path or "-"
        return f"[{self.layer}] {self.source}: {self.resource}{where}: {path}: {self.reason}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, layer: str, res: Resource | None, path: str, reason: str, source: str = ""
    ) -> None:
        if res is None:
            self.problems.append(Problem(layer, source or "-", "-", path, reason))
            return
        self.problems.append(
            Problem(layer, source or res.source, res.ident, path, reason, res.origin)
        )

    def extend(self, other: Report) -> None:
        self.problems.extend(other.problems)

    def unique(self) -> list[Problem]:
        seen: set[Problem] = set()
        out = []
        for p in self.problems:
            if p not in seen:
                seen.add(p)
                out.append(p)
        return out


def jpath(*parts: str | int) -> str:
    """Join field path parts: ("spec", "templates", 0, "name") -> spec.templates[0].name."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.startswith("["):
            out += p
        elif out:
            out += "." + p
        else:
            out = p
    return out


def walk_strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string value under node with its field path."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, jpath(path, str(k)) if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")


def as_dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


def psa_levels(resources: list[Resource]) -> dict[str, str]:
    """Namespace -> the Pod Security level it enforces ("" if none)."""
    return {
        r.name: str(as_dict(r.meta.get("labels")).get(PSA_ENFORCE, ""))
        for r in resources
        if r.kind == "Namespace"
    }
