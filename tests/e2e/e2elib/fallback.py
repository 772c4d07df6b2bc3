"""Without Argo CD: apply each Application's rendered source as Argo CD would sync it.

Used only when Argo CD could not be built (build.env ARGOCD_IMAGE empty); the report's first
line then says so. What it does, per Application of apps/ in sync-wave order:
- fetch the served repository over HTTPS from the harness's Git server (as the repo-server does)
  and render the Application's path with kustomize;
- CreateNamespace=true creates the destination namespace;
- non-hook resources: by sync wave, then Argo CD's kind order, applied server-side; after each
  wave wait until its resources are healthy (Deployments available, StatefulSets ready, CRDs
  established, Jobs complete);
- PostSync hooks: by wave; hook-delete-policy BeforeHookCreation deletes the old object first,
  HookSucceeded deletes it after success; each hook Job must complete.
Not done: pruning (a resource removed from Git stays), AppProject restrictions, self-heal.

    python3 -m e2elib.fallback sync --url URL --branch e2e --ca CA.crt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from . import kube

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
STATE = Path(os.environ.get("E2E_STATE", "/run/esp-e2e"))
RESULT = STATE / "fallback-sync.json"
# gitops-engine's kind order within a wave (pkg/sync/sync_tasks.go).
KIND_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
    "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
    "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "IngressClass", "Ingress", "APIService",
]  # fmt: skip


def _ann(obj: dict[str, Any], key: str, default: str = "") -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(key, default))


def wave(obj: dict[str, Any]) -> int:
    return int(_ann(obj, WAVE, "0") or 0)


def order_key(obj: dict[str, Any]) -> tuple[int, int, str, str]:
    kind = str(obj.get("kind"))
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (wave(obj), rank, kind, str((obj.get("metadata") or {}).get("name")))


def render(tree: Path, path: str) -> list[dict[str, Any]]:
    kustomize = os.environ.get("KUSTOMIZE")
    cmd = [kustomize, "build", str(tree / path)] if kustomize else ["kubectl", "kustomize",
                                                                    str(tree / path)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    # libyaml's loader: the Argo Workflows release renders to 12 MB (28 s in pure Python, 6 s).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(out, Loader=loader) if isinstance(d, dict)]


class Failed(Exception):
    """A resource that cannot become healthy (a Job that failed): stop waiting for it.
    Not a KubeError, which kube.wait_for retries."""


def healthy(obj: dict[str, Any]) -> bool:
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    ns = ["-n", meta["namespace"]] if meta.get("namespace") else []
    if kind not in ("Deployment", "StatefulSet", "CustomResourceDefinition", "Job"):
        return True
    live = kube.get(*ns, str(kind).lower(), str(meta["name"]))
    st = live.get("status") or {}
    if kind == "Deployment":
        want = int((live.get("spec") or {}).get("replicas", 1))
        return int(st.get("availableReplicas") or 0) >= want and int(
            st.get("observedGeneration") or 0
        ) >= int(live["metadata"].get("generation") or 0)
    if kind == "StatefulSet":
        want = int((live.get("spec") or {}).get("replicas", 1))
        return int(st.get("readyReplicas") or 0) >= want
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    if kind == "Job":
        if conds.get("Failed") == "True":
            why = next(c for c in st["conditions"] if c.get("type") == "Failed")
            raise Failed(
                f"job {meta.get('name')} failed: {why.get('reason')}: {why.get('message')}"
            )
        return conds.get("Complete") == "True"
    return conds.get("Established") == "True"


def apply(objs: list[dict[str, Any]], default_ns: str) -> None:
    """Server-side apply; an object without a namespace goes to the destination namespace (as
    Argo CD does), one with its own namespace stays there (kubectl refuses a mismatched -n)."""
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        ns = str((o.setdefault("metadata", {})).get("namespace") or default_ns)
        by_ns.setdefault(ns, []).append(o)
    for ns, items in by_ns.items():
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        kube.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager",
                     "argocd-controller", "-n", ns, "-f", "-", stdin=json.dumps(doc),
                     timeout=300)  # fmt: skip


def run_hook(obj: dict[str, Any], ns: str) -> dict[str, Any]:
    meta = obj["metadata"]
    name, kind = meta["name"], str(obj["kind"]).lower()
    ns = meta.get("namespace") or ns
    policies = _ann(obj, DELETE_POLICY, "BeforeHookCreation").split(",")
    if "BeforeHookCreation" in policies:
        kube.kubectl("-n", ns, "delete", kind, name, "--ignore-not-found", "--wait=true",
                     "--cascade=foreground", timeout=180)  # fmt: skip
    kube.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(obj))
    t0 = time.monotonic()
    phase = "Succeeded"
    try:
        kube.wait_for(f"hook {kind}/{name}", 600, lambda: healthy(obj), interval=3)
    except (kube.KubeError, Failed) as exc:
        phase = f"Failed: {exc}"
    if phase == "Succeeded" and "HookSucceeded" in policies:
        kube.kubectl("-n", ns, "delete", kind, name, "--wait=false")
    return {"kind": obj["kind"], "name": name, "hookType": _ann(obj, HOOK), "hookPhase": phase,
            "seconds": round(time.monotonic() - t0)}  # fmt: skip


def sync_app(tree: Path, app: dict[str, Any]) -> dict[str, Any]:
    spec = app["spec"]
    ns = spec["destination"].get("namespace") or "default"
    opts = (spec.get("syncPolicy") or {}).get("syncOptions") or []
    if "CreateNamespace=true" in opts:
        kube.kubectl("create", "namespace", ns, check=False)
    objs = sorted(render(tree, spec["source"]["path"]), key=order_key)
    plain = [o for o in objs if not _ann(o, HOOK)]
    hooks = [o for o in objs if _ann(o, HOOK)]
    for w in sorted({wave(o) for o in plain}):
        batch = [o for o in plain if wave(o) == w]
        apply(batch, ns)
        for o in batch:
            kube.wait_for(f"{o['kind']}/{o['metadata']['name']} healthy", 600,
                          lambda o=o: healthy(o), interval=3)  # fmt: skip
    results = []
    for phase in ("PreSync", "Sync", "PostSync"):
        for w in sorted({wave(o) for o in hooks if _ann(o, HOOK) == phase}):
            for o in [o for o in hooks if _ann(o, HOOK) == phase and wave(o) == w]:
                results.append(run_hook(o, ns))
    ok = all(r["hookPhase"] == "Succeeded" for r in results)
    return {"objects": len(plain), "hooks": results, "phase": "Succeeded" if ok else "Failed"}


def sync(url: str, branch: str, ca: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="esp-e2e-fallback-") as tmp:
        tree = Path(tmp) / "repo"
        env = {**os.environ, "GIT_SSL_CAINFO": ca}
        subprocess.run(kube.in_ns(["git", "clone", "-q", "-b", branch, url, str(tree)]),
                       check=True, env=env, timeout=300)  # fmt: skip
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        apps = [o for o in render(tree, "apps") if o.get("kind") == "Application"]
        result: dict[str, Any] = {"revision": rev, "apps": {}, "started": time.time()}
        for app in sorted(apps, key=wave):
            name = app["metadata"]["name"]
            print(f"fallback sync: {name} ({app['spec']['source']['path']}) at {rev[:8]}",
                  flush=True)  # fmt: skip
            t0 = time.monotonic()
            result["apps"][name] = sync_app(tree, app)
            hooks = ", ".join(f"{h['name']} {h['seconds']}s" for h in result["apps"][name]["hooks"])
            print(f"  {name}: {result['apps'][name]['phase']} in {time.monotonic() - t0:.0f}s"
                  + (f" (hooks: {hooks})" if hooks else ""), flush=True)  # fmt: skip
        result["seconds"] = round(time.time() - result.pop("started"), 1)
        RESULT.write_text(json.dumps(result, indent=2))
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sync")
    s.add_argument("--url", required=True)
    s.add_argument("--branch", default="e2e")
    s.add_argument("--ca", required=True)
    args = parser.parse_args(argv)
    result = sync(args.url, args.branch, args.ca)
    ok = all(a["phase"] == "Succeeded" for a in result["apps"].values())
    print(result["revision"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
