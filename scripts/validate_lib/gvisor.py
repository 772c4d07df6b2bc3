"""gVisor settings that cannot work beside Argo's own containers.

Argo runs every step as init + wait + main containers that share one emptyDir, var-run-argo:
init copies argoexec there, main runs it and leaves its exit code and stdout there, wait reads
them. runsc's `overlay2=all:*` (asked per pod by the annotation dev.gvisor.flag.overlay2) puts a
private overlay over every container's bind mounts, so each container sees its own
/var/run/argo and the step cannot start (seen on the e2e cluster: main does not find what init
copied; runsc/container/container.go, initGoferConfs). A pod
mount hint makes that one volume a tmpfs inside the sandbox, shared by the pod's containers
(dev.gvisor.spec.mount.var-run-argo.share=pod, .type=tmpfs; gVisor's shim fills in the source).
"""

from __future__ import annotations

from .model import Report
from .pods import PodUnit

OVERLAY_FLAG = "dev.gvisor.flag.overlay2"
ARGO_VOLUME = "var-run-argo"
HINTS = {
    f"dev.gvisor.spec.mount.{ARGO_VOLUME}.share": "pod",
    f"dev.gvisor.spec.mount.{ARGO_VOLUME}.type": "tmpfs",
}


def check(units: list[PodUnit], report: Report) -> None:
    for u in units:
        if not u.argo or u.derived or u.runtime_class != "gvisor":
            continue
        if not u.annotations.get(OVERLAY_FLAG, "").startswith("all:"):
            continue
        missing = {k: v for k, v in HINTS.items() if u.annotations.get(k) != v}
        if missing:
            report.add(
                "semantics",
                u.res,
                f"{u.path}.metadata.annotations",
                f"{u.key}: {OVERLAY_FLAG}={u.annotations[OVERLAY_FLAG]} gives each of Argo's "
                f"containers its own copy of /var/run/argo (emptyDir {ARGO_VOLUME}), so the step "
                "cannot start; add the pod mount hints "
                + ", ".join(f"{k}: {v}" for k, v in missing.items()),
            )
