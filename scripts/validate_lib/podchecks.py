"""Layer 3 for every pod: resources, security context, images, volumes, references."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from .config import Config
from .model import Obj, Report, Resource, as_dict, as_list, jpath
from .pods import PodUnit

SENSITIVE_HOSTPATHS = (
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/boot",
    "/var/run",
    "/run",
    "/var/lib/kubelet",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/home",
)


class Index:
    """Objects of one render, by kind/namespace/name."""

    def __init__(self, resources: list[Resource]) -> None:
        self.resources = resources
        self.by_key: dict[tuple[str, str | None, str], Resource] = {}
        for r in resources:
            self.by_key[(r.kind, r.namespace, r.name)] = r

    def get(self, kind: str, namespace: str | None, name: str) -> Resource | None:
        return self.by_key.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]


def image_problem(image: str, cfg: Config) -> str | None:
    if not image:
        return "no image"
    if "{{" in image:
        return None if "}}" in image else "unbalanced {{ in image"
    repo, digest = image, ""
    if "@" in image:
        repo, digest = image.split("@", 1)
    tag = ""
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = repo.rsplit(":", 1)
    if not tag and not digest:
        if "/" not in repo:
            return (
                f"image {image!r} has no tag (a logical name that kustomize `images:` did not "
                "rewrite? check the configurations: fieldSpec for Argo CRs)"
            )
        return f"image {image!r} has no tag: pin a version"
    if tag == "latest":
        return f"image {image!r} uses :latest: pin a version"
    for rx in cfg.repo_images:
        if re.fullmatch(rx, repo):
            if tag and not re.fullmatch(cfg.repo_image_tag, tag):
                return f"image {image!r}: tag {tag!r} does not match {cfg.repo_image_tag}"
            return None
    for u in cfg.upstream_images:
        if repo == u.get("repository") or (
            repo.startswith("docker.io/")
            and repo.split("/", 1)[1] in (u.get("repository"), f"library/{u.get('repository')}")
        ):
            if digest or re.fullmatch(str(u.get("tag", ".+")), tag):
                return None
            return (
                f"image {image!r}: tag {tag!r} is not the pinned upstream tag "
                f"(allowed: {u.get('tag')})"
            )
    return (
        f"image {image!r} is neither built by this repo nor a declared upstream image "
        "(upstream_images in scripts/validate-config.yaml)"
    )


def check_units(
    units: list[PodUnit], idx: Index, cfg: Config, report: Report, psa: dict[str, str]
) -> None:
    for u in units:
        if u.derived:
            continue
        _PodChecks(u, idx, cfg, report, psa.get(u.namespace or "", "")).run()


@dataclass
class _PodChecks:
    """The checks of one pod; `ref` checks that a referenced object exists."""

    u: PodUnit
    idx: Index
    cfg: Config
    report: Report
    level: str  # the Pod Security level its namespace enforces ("" if none)

    def exists(self, kind: str, ns: str | None, name: str) -> bool:
        found = self.idx.get(kind, ns, name)
        return found is not None or self.cfg.external_obj(kind, name, ns) is not None

    def run(self) -> None:
        u, cfg, report, level = self.u, self.cfg, self.report, self.level
        r = u.res
        pod = u.pod
        if r.kind in ("Job", "CronJob") and pod.get("restartPolicy") not in ("Never", "OnFailure"):
            report.add(
                "semantics",
                r,
                jpath(u.path, "restartPolicy"),
                "a Job's pods need restartPolicy Never or OnFailure "
                "(the API server rejects others)",
            )
        # Volumes
        for i, v in enumerate(as_list(pod.get("volumes"))):
            v = as_dict(v)
            vpath = jpath(u.path, "volumes", i)
            hp = as_dict(v.get("hostPath"))
            if hp:
                p = str(hp.get("path", "")).rstrip("/") or "/"
                if u.namespace not in cfg.hostpath_namespaces:
                    report.add(
                        "semantics",
                        r,
                        jpath(vpath, "hostPath"),
                        f"hostPath outside the namespaces allowed to use it "
                        f"({', '.join(cfg.hostpath_namespaces) or 'none'})",
                    )
                if p in SENSITIVE_HOSTPATHS or any(
                    fnmatch.fnmatchcase(p, f) for f in cfg.forbidden_hostpaths
                ):
                    report.add(
                        "semantics",
                        r,
                        jpath(vpath, "hostPath", "path"),
                        f"hostPath {p!r} exposes the node's {'root ' if p == '/' else ''}"
                        "filesystem: use a dedicated directory",
                    )
                if level in ("baseline", "restricted"):
                    report.add(
                        "semantics",
                        r,
                        jpath(vpath, "hostPath"),
                        f"namespace {u.namespace} enforces Pod Security {level!r}, "
                        "which rejects hostPath volumes",
                    )
            sec = as_dict(v.get("secret"))
            if sec and not sec.get("optional"):
                self.ref("Secret", sec.get("secretName"), jpath(vpath, "secret", "secretName"))
            cm = as_dict(v.get("configMap"))
            if cm and not cm.get("optional"):
                self.ref("ConfigMap", cm.get("name"), jpath(vpath, "configMap", "name"))
            pvc = as_dict(v.get("persistentVolumeClaim"))
            if pvc and pvc.get("claimName") not in u.claim_templates:
                self.ref(
                    "PersistentVolumeClaim",
                    pvc.get("claimName"),
                    jpath(vpath, "persistentVolumeClaim", "claimName"),
                )
            for j, src in enumerate(as_list(as_dict(v.get("projected")).get("sources"))):
                src = as_dict(src)
                for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                    ref = as_dict(src.get(key))
                    if ref and not ref.get("optional"):
                        self.ref(
                            kind,
                            ref.get("name"),
                            jpath(vpath, "projected", "sources", j, key, "name"),
                        )
        for i, s in enumerate(as_list(pod.get("imagePullSecrets"))):
            self.ref("Secret", as_dict(s).get("name"), jpath(u.path, "imagePullSecrets", i, "name"))
        # Service account
        sa = pod.get("serviceAccountName")
        if sa and sa != "default" and not self.exists("ServiceAccount", u.namespace, str(sa)):
            report.add(
                "semantics",
                r,
                jpath(u.path, "serviceAccountName"),
                f"ServiceAccount {u.namespace}/{sa} is not in the render nor declared external",
            )
        # Runtime class
        if u.runtime_class and not self.exists("RuntimeClass", None, u.runtime_class):
            report.add(
                "semantics",
                r,
                u.runtime_class_path,
                f"RuntimeClass {u.runtime_class!r} is not in the render nor declared external",
            )
        # Containers
        for c in u.containers:
            self.container(c.obj, c.path, c.role)

    def ref(self, kind: str, name: Any, path: str, key: Any = None) -> None:
        idx, cfg, report, r, ns = self.idx, self.cfg, self.report, self.u.res, self.u.namespace
        if not name:
            report.add("semantics", r, path, f"{kind} reference without a name")
            return
        name = str(name)
        if "{{" in name:
            return
        found = idx.get(kind, ns, name)
        if found is not None:
            if key is not None:
                data = set(as_dict(found.obj.get("data"))) | set(
                    as_dict(found.obj.get("stringData"))
                )
                data |= set(as_dict(found.obj.get("binaryData")))
                if str(key) not in data:
                    report.add("semantics", r, path, f"{kind} {ns}/{name} has no key {key!r}")
            return
        ext = cfg.external_obj(kind, name, ns)
        if ext is None:
            report.add(
                "semantics",
                r,
                path,
                f"{kind} {ns}/{name} is not in the render nor declared in "
                "scripts/external-objects.yaml",
            )
            return
        if key is not None and ext.keys is not None and str(key) not in ext.keys:
            report.add(
                "semantics",
                r,
                path,
                f"{kind} {ns}/{name} (external) is declared without key {key!r}",
            )

    def container(self, c: Obj, path: str, role: str) -> None:
        """What checkov does not check: the image policy, Argo's command, references."""
        u, cfg, report = self.u, self.cfg, self.report
        r = u.res
        prob = image_problem(str(c.get("image") or ""), cfg)
        if prob:
            report.add("semantics", r, jpath(path, "image"), prob)
        if u.argo and role == "main" and not c.get("command") and path.endswith("container"):
            report.add(
                "semantics",
                r,
                jpath(path, "command"),
                "no command: Argo's emissary executor then looks the image's entrypoint up in its "
                "registry, which fails for images built into minikube; set command",
            )
        # Probes naming a port must name one of this container's ports.
        port_names = {str(as_dict(p).get("name")) for p in as_list(c.get("ports"))}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = as_dict(c.get(probe))
            for handler in ("httpGet", "tcpSocket", "grpc"):
                port = as_dict(pr.get(handler)).get("port")
                if isinstance(port, str) and not port.isdigit() and port not in port_names:
                    report.add(
                        "semantics",
                        r,
                        jpath(path, probe, handler, "port"),
                        f"probe port {port!r} is not a named port of this container",
                    )
        # Volume mounts
        for i, m in enumerate(as_list(c.get("volumeMounts"))):
            m = as_dict(m)
            vname = str(m.get("name"))
            if vname not in u.volume_names:
                report.add(
                    "semantics",
                    r,
                    jpath(path, "volumeMounts", i, "name"),
                    f"volumeMount {vname!r} has no matching volume "
                    f"(volumes: {', '.join(sorted(u.volume_names)) or 'none'})",
                )
        # Env references
        for i, e in enumerate(as_list(c.get("env"))):
            vf = as_dict(as_dict(e).get("valueFrom"))
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                ref = as_dict(vf.get(key))
                if ref and not ref.get("optional"):
                    self.ref(
                        kind,
                        ref.get("name"),
                        jpath(path, "env", i, "valueFrom", key),
                        ref.get("key"),
                    )
        for i, e in enumerate(as_list(c.get("envFrom"))):
            e = as_dict(e)
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                ref = as_dict(e.get(key))
                if ref and not ref.get("optional"):
                    self.ref(kind, ref.get("name"), jpath(path, "envFrom", i, key, "name"))


def check_patches(u: PodUnit, report: Report) -> None:
    """podSpecPatch is a mapping whose containers are the pod's (kubeconform checks its fields
    on the Pod Argo creates: pods.argo_pod)."""
    for ppath, parsed in u.patches:
        if not isinstance(parsed, dict):
            report.add("semantics", u.res, ppath, "podSpecPatch is not a mapping")
            continue
        allowed = {c.name for c in u.containers} | {"main", "wait", "init"}
        for i, c in enumerate(as_list(parsed.get("containers"))):
            cname = as_dict(c).get("name")
            if cname not in allowed:
                report.add(
                    "semantics",
                    u.res,
                    f"{ppath} (containers[{i}].name)",
                    f"podSpecPatch container {cname!r} matches no container of the pod "
                    f"({', '.join(sorted(allowed))}); it would add an invalid container",
                )
