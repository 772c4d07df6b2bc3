"""Deploys this repository onto the running e2e cluster the way a user's cluster gets it, with a
local Git server in place of GitHub and a local registry in place of quay.io, ghcr.io, ...
(tests/e2e/start runs both and pushed every image to the registry under its upstream name):

1. the served repository: this checkout + one harness commit (served.py), branch main, on the
   HTTPS Git server at https://NODE_IP:E2E_GIT_PORT inside the netns; a push to it sends
   GitHub's push webhook to Argo CD (webhook.py);
2. on a cluster without Argo CD: `bootstrap/up --context` (make up's own code) with only the
   repository URL, its CA and the place install.yaml is read from (the pinned file) differing
   from what a user runs; then the webhook, as a user configures it on GitHub; on a cluster
   with Argo CD (a break, a restore): the push is the deploy, as for a user;
3. wait until Argo CD reports every Application Synced, Healthy and its last sync (hooks
   included) Succeeded at the served commit; a failed sync stops the wait with Argo CD's own
   message.

    python -m e2elib deploy      E2E_BREAK=NAME serves a deliberately broken repository
                                 (served.py BREAKS)

Safe to run twice: each step keeps what is already right.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from . import argocd, kube, served, webhook
from .harness import REPO_ROOT, Failed, log, state

GIT_REPO = "sandboxed-event-pipeline.git"


def _url() -> str:
    return f"https://{os.environ['E2E_NODE_IP']}:{os.environ['E2E_GIT_PORT']}/{GIT_REPO}"


def _git_ca() -> Path:
    return state() / "certs" / "git" / "ca.crt"


def _served_head(branch: str) -> str:
    argv = kube.in_ns(["env", f"GIT_SSL_CAINFO={_git_ca()}", "git", "ls-remote", _url(), branch])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def serve(branch: str, break_name: str | None) -> str:
    """Publish the served repository; returns its commit once the Git server serves it."""
    log(
        f"publishing the served repository (branch {branch}"
        f"{f', E2E_BREAK={break_name}' if break_name else ''})"
    )
    commit = served.publish(REPO_ROOT, state() / "git" / GIT_REPO, branch, break_name)
    log(f"  served commit {commit}")
    head = kube.wait_for(f"the Git server at {_url()}", 30, lambda: _served_head(branch), 0.5)
    log(f"  {_url()} serves {head[:12]}")
    return str(commit)


def bootstrap(branch: str, timeout: int) -> None:
    """make up's code path: bootstrap/up --context on the e2e cluster, inside its namespaces,
    with the built kubectl first on PATH. Argo CD's install.yaml is the pinned file, byte for
    byte."""
    install = served.argocd_install(state() / "argocd-install.yaml")
    log(
        f"bootstrap/up --context esp-e2e --repo-url {_url()} --revision {branch} "
        f"(Argo CD {os.environ['ARGOCD_VERSION']})"
    )
    path = f"{os.environ['KUBE_BIN_DIR']}:{os.environ['PATH']}"
    up = [str(REPO_ROOT / "bootstrap" / "up"), "--context", "esp-e2e", "--repo-url", _url(),
          "--revision", branch, "--repo-ca", str(_git_ca()), "--argocd-install", str(install),
          "--timeout", str(timeout)]  # fmt: skip
    env = [f"KUBECONFIG={os.environ['E2E_KUBECONFIG']}", f"PATH={path}"]
    argv = kube.in_ns(["env", *env, *up])
    log_file = state() / "logs" / "bootstrap-up.log"
    with (
        log_file.open("w") as out,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:  # as `| tee LOG >&2`
            out.write(line)
            sys.stderr.write(line)
    if proc.returncode != 0:
        print(
            kube.kubectl("-n", "argocd", "get", "pods", "-o", "wide", check=False), file=sys.stderr
        )
        raise Failed(f"bootstrap/up failed (log {log_file})")


def install_webhook() -> None:
    """GitHub's webhook, as a user adds it to their repository: https://ARGOCD/api/webhook,
    JSON, push."""
    ip = kube.kubectl(
        "-n",
        "argocd",
        "get",
        "service",
        "argocd-server",
        "-o",
        "jsonpath={.spec.clusterIP}",
        check=False,
    ).strip()
    if not ip:
        raise Failed("no ClusterIP for service argocd/argocd-server")
    webhook.install(
        state() / "git" / GIT_REPO, [f"https://{ip}/api/webhook"], _url().removesuffix(".git")
    )
    log(f"webhook: pushes to {_url()} are sent to https://{ip}/api/webhook")


def wait_synced(commit: str, timeout: int) -> None:
    log(f"waiting up to {timeout}s for Synced/Healthy/Succeeded at {commit}")
    try:
        argocd.wait(argocd.APPS, timeout, commit)
    except kube.KubeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        print(
            kube.kubectl("-n", "argocd", "get", "applications", "-o", "wide", check=False),
            file=sys.stderr,
        )
        raise Failed(f"Argo CD did not deploy {commit} (its message above)") from exc


def main() -> int:
    t0 = time.monotonic()
    branch = os.environ.get("E2E_BRANCH") or "main"
    break_name = os.environ.get("E2E_BREAK") or None
    timeout = int(os.environ.get("E2E_DEPLOY_TIMEOUT") or 1200)
    commit = serve(branch, break_name)
    argocd_installed = (
        subprocess.run(
            kube.kubectl_argv("-n", "argocd", "get", "application", "root"),
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )
    if argocd_installed:
        log(f"Argo CD is installed: the push to {_url()} is the deploy (webhook)")
    else:
        bootstrap(branch, timeout)
        install_webhook()
    wait_synced(commit, timeout)
    (state() / "deploy-mode").write_text(
        f"deployed by Argo CD {os.environ['ARGOCD_VERSION']} ({os.environ['ARGOCD_IMAGE']}, built "
        f"here) from {_url()}@{commit} (branch {branch}"
        f"{f', E2E_BREAK={break_name}' if break_name else ''})\n"
    )
    log(f"deployed in {time.monotonic() - t0:.0f}s: served commit {commit}")
    return 0
