"""The gate's declarative inputs: scripts/validate-config.yaml and scripts/external-objects.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlio
from .model import Obj, as_dict, as_list


@dataclass
class ExternalObject:
    kind: str
    name: str
    namespace: str | None
    keys: list[str] | None
    reason: str


@dataclass
class Config:
    external: list[ExternalObject] = field(default_factory=list)
    repo_images: list[str] = field(default_factory=list)  # regexes of repositories built here
    repo_image_tag: str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
    upstream_images: list[Obj] = field(default_factory=list)  # {repository, tag, reason}
    profiles: dict[str, Obj] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)  # kustomization path -> profile
    manifests: list[str] = field(default_factory=list)  # plain manifest files, no kustomization
    checkov_skips: list[Obj] = field(default_factory=list)
    allowed_kinds: dict[str, str] = field(default_factory=dict)  # kind -> reason
    allowed_secrets: list[Obj] = field(default_factory=list)
    hostpath_namespaces: list[str] = field(default_factory=list)
    forbidden_hostpaths: list[str] = field(default_factory=list)

    def external_obj(self, kind: str, name: str, namespace: str | None) -> ExternalObject | None:
        for e in self.external:
            if e.kind == kind and e.name == name and (e.namespace or None) == (namespace or None):
                return e
        return None

    def profile_for(self, label: str) -> str | None:
        return self.targets.get(label.rstrip("/"))


def load(scripts_dir: Path) -> Config:
    cfg_raw: Any = yamlio.load((scripts_dir / "validate-config.yaml").read_text()) or {}
    ext_raw: Any = yamlio.load((scripts_dir / "external-objects.yaml").read_text()) or {}
    cfg = Config()
    for e in as_list(as_dict(ext_raw).get("objects")):
        e = as_dict(e)
        cfg.external.append(
            ExternalObject(
                kind=str(e.get("kind")),
                name=str(e.get("name")),
                namespace=e.get("namespace"),
                keys=e.get("keys"),
                reason=str(e.get("reason", "")),
            )
        )
    c = as_dict(cfg_raw)
    cfg.repo_images = [str(x) for x in as_list(c.get("repo_images"))]
    if c.get("repo_image_tag"):
        cfg.repo_image_tag = str(c["repo_image_tag"])
    cfg.upstream_images = [as_dict(x) for x in as_list(c.get("upstream_images"))]
    cfg.profiles = {str(k): as_dict(v) for k, v in as_dict(c.get("profiles")).items()}
    cfg.targets = {str(k).rstrip("/"): str(v) for k, v in as_dict(c.get("targets")).items()}
    cfg.manifests = [str(x) for x in as_list(c.get("manifests"))]
    cfg.checkov_skips = [as_dict(x) for x in as_list(c.get("checkov_skips"))]
    cfg.allowed_kinds = {str(k): str(v) for k, v in as_dict(c.get("allowed_kinds")).items()}
    cfg.allowed_secrets = [as_dict(x) for x in as_list(c.get("allowed_secrets"))]
    cfg.hostpath_namespaces = [str(x) for x in as_list(c.get("hostpath_namespaces"))]
    cfg.forbidden_hostpaths = [str(x) for x in as_list(c.get("forbidden_hostpaths"))]
    return cfg
