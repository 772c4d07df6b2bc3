"""One TCP connection attempt from a throwaway pod with chosen labels (NetworkPolicy checks).

The pod meets Pod Security "restricted" (it runs in event-pipeline too) and uses the
generator image's Python: `socket.create_connection((host, port), 3)`; Succeeded = connected.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from . import kube

CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), 4).close()\n"
    "except OSError as e:\n"
    "    print('blocked:', e); sys.exit(1)\n"
    "print('connected')\n"
)
SECURE = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def image() -> str:
    return (
        os.environ.get("GENERATOR_IMAGE")
        or "ghcr.io/sandboxed-event-pipeline/event-generator:0.1.0"
    )


def pod_manifest(
    ns: str, name: str, labels: dict[str, str], command: list[str], restart: str = "Never"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"esp-e2e/probe": "true", **labels}},
        "spec": {
            "restartPolicy": restart,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "probe",
                    "image": image(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "securityContext": SECURE,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }


def connect(ns: str, labels: dict[str, str], host: str, port: int, timeout: float = 120) -> str:
    """'connected' or 'blocked: ...' as the pod saw it."""
    name = f"np-{int(time.time() * 1000) % 10**9}"
    pod = pod_manifest(ns, name, labels, ["python3", "-c", CONNECT, host, str(port)])
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    try:

        def done() -> str | None:
            p = kube.get("-n", ns, "pod", name)
            ph = (p.get("status") or {}).get("phase")
            return str(ph) if ph in ("Succeeded", "Failed") else None

        kube.wait_for(f"probe pod {ns}/{name}", timeout, done, interval=2)
        return kube.kubectl("-n", ns, "logs", name).strip() or "no output"
    finally:
        kube.kubectl("-n", ns, "delete", "pod", name, "--wait=false", check=False)


def pod_ip(ns: str, selector: str) -> str:
    found = kube.items("-n", ns, "pods", "-l", selector)
    for p in found:
        ip = (p.get("status") or {}).get("podIP")
        if ip and (p.get("status") or {}).get("phase") == "Running":
            return str(ip)
    raise kube.KubeError(f"no running pod {ns}/{selector}")
