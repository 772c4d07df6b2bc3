"""Prove each piece of the running e2e cluster (tests/e2e/start), one row per check: node Ready;
a runc pod and a gVisor pod (RuntimeClass gvisor) run, the gVisor one seeing gVisor's kernel; a
multi-container pod (init + two containers sharing a volume) under gVisor; cluster DNS; a PVC
bound by the default StorageClass; a NetworkPolicy that allows and denies; an image pulled by
its upstream name through the cluster's registry; kubectl from the host through
`ip netns exec`; the host unchanged. Works in namespace e2e-cluster-check, deleted at the end.

    python -m e2elib cluster-check      exit 1 if any row fails
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from string import Template
from typing import Any

from . import host_state, kube
from .report import Row

NS = "e2e-cluster-check"


def _k(*args: str, stdin: str | None = None, timeout: float = 180, check: bool = True) -> str:
    return kube.kubectl("-n", NS, *args, stdin=stdin, timeout=timeout, check=check)


def _apply(manifest: str, **values: str) -> None:
    """Apply manifest, its $NAMEs replaced by values and BUSYBOX_IMAGE by build.env's."""
    text = Template(manifest).substitute(BUSYBOX_IMAGE=os.environ["BUSYBOX_IMAGE"], **values)
    _k("apply", "-f", "-", stdin=text)


ONCE = """
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {check: $name}}
spec:
  $runtime_class
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: $BUSYBOX_IMAGE
      imagePullPolicy: IfNotPresent
      command: [sh, -c, '$script']
"""


def _once(name: str, script: str, runtime_class: str = "") -> None:
    """A busybox pod that runs script once."""
    rc = f"runtimeClassName: {runtime_class}" if runtime_class else ""
    _apply(ONCE, name=name, script=script, runtime_class=rc)


def _finished(name: str) -> str | None:
    """Pod name's log once it Succeeded; None (and what it shows, on stderr) if it did not."""
    try:
        _k("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}", "--timeout=120s")
        return _k("logs", name, "--all-containers").strip()
    except kube.KubeError:
        print(_k("get", "pod", name, "-o", "wide", check=False), file=sys.stderr)
        described = _k("describe", "pod", name, check=False).splitlines()
        print("\n".join(described[-20:]), file=sys.stderr)
        return None


def _one_line(text: str | None) -> str:
    return " ".join((text or "none").split("\n"))


def node_ready() -> Row:
    node = os.environ["E2E_NODE_NAME"]
    try:
        kube.kubectl("wait", "--for=condition=Ready", f"node/{node}", "--timeout=30s")
    except kube.KubeError:
        last = kube.kubectl("get", "node", "-o", "wide", check=False).strip().splitlines()
        return Row("node Ready", "failed", last[-1] if last else "no node")
    fields = kube.kubectl("get", "node", node, "--no-headers").split()
    return Row("node Ready", "passed", " ".join(fields[i] for i in (0, 1, 4)))


def runtimes(host_kernel: str) -> list[Row]:
    _once("runc-pod", "uname -r")
    _once("gvisor-pod", "uname -r; dmesg | head -n 1", "gvisor")
    out = _finished("runc-pod")
    if out == host_kernel:
        runc = Row("runc pod", "passed", f"uname -r = {out} (the host's kernel)")
    else:
        runc = Row(
            "runc pod", "failed", f"uname -r = '{out or 'no output'}', host has {host_kernel}"
        )
    out = _finished("gvisor-pod")
    kernel, dmesg = [*(out or "").splitlines(), "", ""][:2]
    if kernel and kernel != host_kernel and "gVisor" in dmesg:
        gvisor = Row("gVisor pod (runsc)", "passed", f"uname -r = {kernel}; dmesg: {dmesg}")
    else:
        gvisor = Row("gVisor pod (runsc)", "failed", f"output: {out or 'none'}")
    return [runc, gvisor]


MULTI = """
apiVersion: v1
kind: Pod
metadata: {name: gvisor-multi}
spec:
  runtimeClassName: gvisor
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{name: shared, emptyDir: {}}]
  initContainers:
    - name: init
      image: $BUSYBOX_IMAGE
      command: [sh, -c, 'echo from-init > /shared/init']
      volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
    - name: main
      image: $BUSYBOX_IMAGE
      command: [sh, -c, 'cat /shared/init; echo from-main > /shared/main']
      volumeMounts: [{name: shared, mountPath: /shared}]
    - name: wait
      image: $BUSYBOX_IMAGE
      command: [sh, -c, 'for i in $$(seq 1 60); do [ -e /shared/main ] && break; sleep 1; done;
        cat /shared/main; uname -r']
      volumeMounts: [{name: shared, mountPath: /shared}]
"""


def multi_container() -> Row:
    """Argo's shape under gVisor: an init container, then main and wait beside it."""
    _apply(MULTI)
    out = _finished("gvisor-multi")
    name = "gVisor multi-container pod"
    if out and re.search(r"from-init.*from-main|from-main.*from-init", out, re.S):
        return Row(name, "passed", f"init + main + wait ran in one sandbox: {_one_line(out)}")
    return Row(name, "failed", f"output: {out or 'none'}")


def dns() -> Row:
    api_ip = os.environ["E2E_API_SERVICE_IP"]
    _once("dns-pod", "nslookup kubernetes.default.svc.cluster.local")
    out = _finished("dns-pod")
    if re.search(f"Address.*{re.escape(api_ip)}", out or ""):
        return Row("DNS (CoreDNS)", "passed", f"kubernetes.default.svc.cluster.local -> {api_ip}")
    return Row("DNS (CoreDNS)", "failed", f"nslookup: {_one_line(out)}")


PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: pvc-pod}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
  containers:
    - name: main
      image: $BUSYBOX_IMAGE
      command: [sh, -c, 'echo stored > /data/file && cat /data/file']
      volumeMounts: [{name: data, mountPath: /data}]
"""


def pvc() -> Row:
    _apply(PVC)
    out = _finished("pvc-pod")
    jsonpath = "jsonpath={.status.phase} {.spec.storageClassName}"
    phase = _k("get", "pvc", "data", "-o", jsonpath, check=False)
    name = "PVC (local-path default)"
    if out == "stored" and phase == "Bound local-path":
        return Row(name, "passed", f"PVC {phase}, pod wrote and read its volume")
    return Row(name, "failed", f"PVC '{phase}', pod output '{out or 'none'}'")


SERVER_AND_CLIENTS = """
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: $BUSYBOX_IMAGE
      command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www &&
        httpd -f -p 8081 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{name: a, port: 8080}, {name: b, port: 8081}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {role: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: $BUSYBOX_IMAGE, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {role: other}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: $BUSYBOX_IMAGE, command: [sleep, "3600"]}]
"""
POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{port: 8080}]
"""


def _reach(pod: str, port: int) -> bool:
    """Can pod fetch the server's page on port through its Service? (nc, not wget: the static
    busybox's wget crashes in glibc's resolver without NSS files)"""
    script = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 "$0" "$1"'
    host = f"server.{NS}.svc.cluster.local"
    try:
        out = _k("exec", pod, "--", "sh", "-c", script, host, str(port), timeout=30)
    except (kube.KubeError, subprocess.TimeoutExpired):
        return False
    return out.strip().splitlines()[-1:] == ["ok"]


def _tries(probe: Any, count: int = 5) -> bool:
    for i in range(count):
        if probe():
            return True
        if i < count - 1:
            time.sleep(2)
    return False


def network_policy() -> Row:
    _apply(SERVER_AND_CLIENTS)
    _k("wait", "--for=condition=Ready", "pod/server", "pod/client", "pod/other", "--timeout=120s")
    # Before any policy both must get through, once the Service's endpoints are programmed
    # (kube-proxy) and the names resolve: a few tries.
    yn = {True: "y", False: "n"}
    before = (
        f"client:8080={yn[_tries(lambda: _reach('client', 8080))]} "
        f"other:8080={yn[_tries(lambda: _reach('other', 8080))]}"
    )
    _apply(POLICY)
    time.sleep(3)  # kube-router syncs on the policy's watch event
    seen = {"allowed": False, "denied_pod": False, "denied_port": False}

    def policy_holds() -> bool:
        seen["allowed"] |= _reach("client", 8080)
        seen["denied_pod"] |= not _reach("other", 8080)
        seen["denied_port"] |= not _reach("client", 8081)
        return all(seen.values())

    _tries(policy_holds)
    detail = (
        f"before policy: {before}; with it: client:8080 allowed={yn[seen['allowed']]}, "
        f"other:8080 denied={yn[seen['denied_pod']]}, "
        f"client:8081 denied={yn[seen['denied_port']]}"
    )
    ok = before == "client:8080=y other:8080=y" and all(seen.values())
    return Row("NetworkPolicy (kube-router)", "passed" if ok else "failed", detail)


PULL = """
apiVersion: v1
kind: Pod
metadata: {name: registry-pull}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: $ref
      imagePullPolicy: Always
      command: [/e2e-pull-only-no-such-command]
"""


def _smallest_pushed() -> tuple[str, str] | None:
    """(ref, registry path) of the smallest image start pushed (not one of the harness's own
    esp.local/ ones), the path as the push log says it went."""
    refs = []
    for line in Path(os.environ["IMAGES_LIST"]).read_text().splitlines():
        ref, _, tar = line.partition(" ")
        if ref and not ref.startswith(("#", "esp.local/")):
            refs.append((Path(tar.strip()).stat().st_size, ref))
    if not refs:
        return None
    ref = min(refs)[1]
    pushes = (Path(os.environ["E2E_STATE"]) / "logs" / "image-push.log").read_text()
    found = re.search(
        rf"^{re.escape(ref)}: (?:pushed as|already in the registry as) (\S+) ", pushes, re.M
    )
    return (ref, found[1].removeprefix(os.environ["E2E_REGISTRY"] + "/")) if found else (ref, "")


def registry_pull() -> Row:
    """The smallest pushed image is removed from containerd's store, then a pod asks for it by
    its upstream name (imagePullPolicy Always); its command does not exist: the pod pulls and
    runs nothing. The row shows the kubelet's Pulled event and the registry's access-log line
    for the manifest, under the upstream host's prefix."""
    name = "registry: pull by upstream name"
    pushed = _smallest_pushed()
    if pushed is None:
        images = os.environ["IMAGES_LIST"]
        return Row(name, "failed", f"no pushed image in {images} (only esp.local/ ones)")
    ref, dest = pushed
    if not dest:
        return Row(name, "failed", f"{ref}: not in image-push.log")
    repo, tag = dest.rsplit(":", 1)
    ctr = [
        f"{os.environ['CONTAINERD_BIN_DIR']}/ctr",
        "--address",
        "/run/containerd/containerd.sock",
    ]
    rm = kube.in_ns([*ctr, "-n", "k8s.io", "images", "rm", "--sync", ref])
    subprocess.run(rm, capture_output=True, timeout=60, check=False)
    reglog = Path(os.environ["E2E_STATE"]) / "logs" / "registry.log"
    before = len(reglog.read_text(errors="replace").splitlines())
    _apply(PULL, ref=ref)
    pulled = "involvedObject.name=registry-pull,reason=Pulled"
    msg = ""
    for _ in range(120):
        msg = _k("get", "events", "--field-selector", pulled, "-o", "jsonpath={.items[0].message}",
                 check=False)  # fmt: skip
        if msg:
            break
        time.sleep(1)
    new = [
        line
        for line in reglog.read_text(errors="replace").splitlines()[before:]
        if '" 200 ' in line and "containerd" in line
    ]
    line = next((x for x in new if f"/v2/{repo}/manifests/{tag}" in x), "")
    blobs = sum(f'"GET /v2/{repo}/blobs/' in x for x in new)
    _k("delete", "pod", "registry-pull", "--wait=false", check=False)
    if msg and line:
        return Row(
            name,
            "passed",
            f"{msg.removesuffix('.')}; registry {os.environ['E2E_REGISTRY']} "
            f"log: {line} (+ {blobs} blobs)",
        )
    pod = " ".join(_k("get", "pod", "registry-pull", "--no-headers", check=False).split())
    return Row(
        name,
        "failed",
        f"{ref}: Pulled event '{msg or 'none'}'; registry log line for "
        f"/v2/{repo}/manifests/{tag}: '{line or 'none'}'; pod: {pod}",
    )


def kubectl_from_host() -> Row:
    """kubectl from the host, as the report tells users."""
    netns, kubeconfig = os.environ["E2E_NETNS"], os.environ["E2E_KUBECONFIG"]
    argv = ["ip", "netns", "exec", netns, os.environ["KUBECTL"], "--kubeconfig", kubeconfig,
            "get", "nodes", "--no-headers"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return Row("kubectl via ip netns exec", "failed", out)
    return Row(
        "kubectl via ip netns exec",
        "passed",
        f"ip netns exec {netns} kubectl --kubeconfig {kubeconfig} get nodes: {out}",
    )


def host_unchanged() -> Row:
    before = Path(os.environ["E2E_HOST_BEFORE"])
    if before.is_file() and host_state.unchanged(before, running=True, quiet=True):
        what = "ip link/addr/route, iptables (nft+legacy), nft, sysctls, mounts as before start"
        return Row("host unchanged", "passed", what)
    see = f"see: python -m e2elib host-state --compare {before} --running"
    return Row("host unchanged", "failed", see)


def main() -> int:
    kube.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", timeout=300)
    kube.kubectl("create", "namespace", NS)
    rows: list[Row] = []

    def done(*new: Row) -> None:
        for row in new:
            print(row.line(), flush=True)
            rows.append(row)

    done(node_ready())
    done(*runtimes(os.uname().release))
    done(multi_container())
    done(dns())
    done(pvc())
    done(network_policy())
    done(registry_pull())
    done(kubectl_from_host())
    kube.kubectl("delete", "namespace", NS, "--wait=false")
    done(host_unchanged())
    return 0 if all(r.status == "passed" for r in rows) else 1
