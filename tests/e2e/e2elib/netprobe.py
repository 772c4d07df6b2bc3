"""One TCP connection attempt from a throwaway pod with chosen labels (NetworkPolicy checks).

The pod meets Pod Security "restricted" (it runs in event-pipeline too) and uses the
generator image's Python: `socket.create_connection((host, port), 3)`; Succeeded = connected.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from . import kube

# Policies are enforced asynchronously (kube-router programs a new pod's rules after it sees the
# pod), so, as Kubernetes' own NetworkPolicy e2e tests do, the probe retries until it sees the
# expected outcome or its deadline passes, and reports the attempts it took.
CONNECT = (
    "import socket,sys,time\n"
    "host, port, want, deadline = sys.argv[1], int(sys.argv[2]), sys.argv[3], time.time() + 30\n"
    "attempt = 0\n"
    "while True:\n"
    "    attempt += 1\n"
    "    try:\n"
    "        socket.create_connection((host, port), 3).close()\n"
    "        seen = 'connected'\n"
    "    except OSError as e:\n"
    "        seen = f'blocked: {e}'\n"
    "    if seen.startswith(want) or time.time() > deadline:\n"
    "        print(f'{seen} (attempt {attempt})'); sys.exit(0 if seen == 'connected' else 1)\n"
    "    time.sleep(1)\n"
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


def connect(
    ns: str, labels: dict[str, str], host: str, port: int, allow: bool, timeout: float = 120
) -> str:
    """'connected (attempt N)' or 'blocked: ... (attempt N)' as the pod saw it, retrying for up
    to 30 s until it sees what the policies say (allow: connected)."""
    name = f"np-{uuid.uuid4().hex[:10]}"  # unique: probes run in parallel
    want = "connected" if allow else "blocked"
    pod = pod_manifest(ns, name, labels, ["python3", "-c", CONNECT, host, str(port), want])
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
