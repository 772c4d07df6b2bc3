"""The repository the harness's Git server serves: this checkout plus one harness commit.

The harness commit changes one thing, which a cluster without internet needs: Argo CD's
repo-server cannot download the pinned Argo Workflows release file from github.com, so
infrastructure/argo-workflows takes the same bytes from tests/e2e/harness/release/ instead.
Images keep their upstream names (the harness registry serves them), so every Application
renders byte for byte what a user's Argo CD renders (tests/e2e/test_harness_kustomization.py).

`--break NAME` adds one more commit with a deliberate mistake (BREAKS), to prove that
`make e2e` fails on it. deploy.py publishes it (`publish`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from validate_lib import upstream  # noqa: E402

HARNESS_DIR = "tests/e2e/harness"
RELEASE_DIR = f"{HARNESS_DIR}/release"
RELEASE_FILE = "quick-start-minimal.yaml"
QUICK_START_URL = (
    "https://github.com/argoproj/argo-workflows/releases/download/v4.0.5/quick-start-minimal.yaml"
)
ARGOCD_INSTALL_URL = (
    "https://raw.githubusercontent.com/argoproj/argo-cd/v3.6.2/manifests/install.yaml"
)
ARGO_WORKFLOWS_APP = "infrastructure/argo-workflows"
AUTHOR = ["-c", "user.name=esp-e2e", "-c", "user.email=esp-e2e@localhost"]


def app_dirs(tree: Path) -> list[str]:
    """Kustomizations an Application renders: Argo Workflows and every overlay."""
    overlays = sorted(
        f"overlays/{p.parent.name}" for p in (tree / "overlays").glob("*/kustomization.yaml")
    )
    return [ARGO_WORKFLOWS_APP, *overlays]


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return data


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def prepare(tree: Path) -> list[str]:
    """Apply the harness change to a copy of the repository; returns what changed."""
    changes = []
    release = tree / RELEASE_DIR
    shutil.copyfile(upstream.local_path(upstream.PINNED[QUICK_START_URL]), release / RELEASE_FILE)
    changes.append(f"{RELEASE_DIR}/{RELEASE_FILE}: the pinned {QUICK_START_URL}")
    for rel in app_dirs(tree):
        kfile = tree / rel / "kustomization.yaml"
        data = _load(kfile)
        resources = [str(r) for r in data.get("resources") or []]
        for i, ref in enumerate(resources):
            if upstream.is_remote(ref):
                if ref != QUICK_START_URL:
                    raise ValueError(f"{rel}: no local copy for remote resource {ref}")
                resources[i] = os.path.relpath(release, tree / rel)
                changes.append(f"{rel}: resource {ref} -> {resources[i]}")
        if resources != [str(r) for r in data.get("resources") or []]:
            data["resources"] = resources
            _dump(kfile, data)
    return changes


def argocd_install(out: Path) -> Path:
    """The pinned Argo CD install.yaml, byte for byte (no pod here reaches GitHub)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(upstream.local_path(upstream.PINNED[ARGOCD_INSTALL_URL]), out)
    return out


def _templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["templates"])


def break_wrong_serviceaccount(tree: Path) -> str:
    path = tree / "base/pipeline/workflowtemplate.yaml"
    doc = _load(path)
    doc["spec"]["serviceAccountName"] = "default"
    doc["spec"]["executor"]["serviceAccountName"] = "default"
    _dump(path, doc)
    return "pipeline WorkflowTemplate runs as ServiceAccount default (no executor RBAC, no token)"


def break_netpol_blocks_postgres(tree: Path) -> str:
    path = tree / "base/network-policies/event-pipeline-postgres-ingress.yaml"
    doc = _load(path)
    for rule in doc["spec"]["ingress"]:
        for port in rule["ports"]:
            port["port"] = 5433
    _dump(path, doc)
    return "postgres-ingress allows port 5433 instead of 5432 (blocks every client)"


def break_no_gvisor_annotation_on_c(tree: Path) -> str:
    wt = tree / "base/isolation-demo/workflowtemplate.yaml"
    doc = _load(wt)
    for tmpl in _templates(doc):
        if tmpl["name"] == "probe-c":
            del tmpl["metadata"]["annotations"]
    _dump(wt, doc)
    return "variant C without dev.gvisor.flag.overlay2 (the WorkflowTemplate: cron and hook runs)"


def break_project_denies_configmap(tree: Path) -> str:
    (tree / "base/pipeline/settings-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pipeline-settings\n"
        "  namespace: event-pipeline\n"
        "data:\n  note: a kind AppProject event-pipeline does not allow\n"
    )
    path = tree / "base/pipeline/kustomization.yaml"
    doc = _load(path)
    doc["resources"] = [*doc["resources"], "settings-configmap.yaml"]
    _dump(path, doc)
    return "a ConfigMap in the pipeline, a kind AppProject event-pipeline does not allow"


def _replace(path: Path, old: str, new: str) -> None:
    """Replace text a break expects to find (ValueError when upstream text moved)."""
    text = path.read_text()
    if old not in text:
        raise ValueError(f"{path}: {old!r} not found")
    path.write_text(text.replace(old, new))


def break_bump_tag_not_built(tree: Path) -> str:
    path = tree / ".github/workflows/images.yml"
    _replace(path, 'tag="sha-${GITHUB_SHA::7}"', 'tag="sha-${GITHUB_SHA::8}"')
    return "the images workflow's bump job commits sha-<8 hex>, a tag the build job never pushed"


def break_argo_ui_base_href(tree: Path) -> str:
    path = tree / "infrastructure/argo-workflows/patches/argo-server-client-auth-only.yaml"
    old = "value: [server, --auth-mode, client]"
    _replace(path, old, "value: [server, --auth-mode, client, --base-href, /argo/]")
    return "argo-server --base-href /argo/ with no proxy that strips it: the UI's assets never load"


BREAKS: dict[str, Callable[[Path], str]] = {
    "project-denies-configmap": break_project_denies_configmap,
    "wrong-serviceaccount": break_wrong_serviceaccount,
    "netpol-blocks-postgres": break_netpol_blocks_postgres,
    "no-gvisor-annotation-on-c": break_no_gvisor_annotation_on_c,
    "bump-tag-not-built": break_bump_tag_not_built,
    "argo-ui-base-href": break_argo_ui_base_href,
}


def git(tree: Path, *args: str) -> str:
    """git with the harness identity, in tree; its stdout, stripped (fails on a non-zero exit)."""
    proc = subprocess.run(
        ["git", *AUTHOR, *args], cwd=tree, check=True, capture_output=True, text=True, timeout=120
    )
    return proc.stdout.strip()


def snapshot(src: Path, dest: Path) -> str:
    """Copy the checkout's files (tracked and untracked, not ignored) to dest; describe it."""
    files = git(src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in files:
        if rel and (src / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel, follow_symlinks=False)
    head = git(src, "rev-parse", "--short", "HEAD")
    dirty = git(src, "status", "--porcelain")
    return f"snapshot of {head}" + (" with local changes" if dirty else "")


def publish(src: Path, bare: Path, branch: str, break_name: str | None) -> str:
    """(Re)write branch in the bare repository; returns the served commit id."""
    if break_name is not None and break_name not in BREAKS:
        raise SystemExit(f"unknown break {break_name!r}; known: {', '.join(sorted(BREAKS))}")
    if not (bare / "HEAD").is_file():
        bare.mkdir(parents=True, exist_ok=True)
        git(bare, "init", "--bare", "--quiet", "--initial-branch", branch)
    with tempfile.TemporaryDirectory(prefix="esp-e2e-served-") as tmp:
        tree = Path(tmp)
        git(tree, "init", "--quiet", "--initial-branch", branch)
        title = snapshot(src, tree)
        git(tree, "add", "-A")
        git(tree, "commit", "--quiet", "-m", title)
        changes = prepare(tree)
        git(tree, "add", "-A")
        # Ignored in the checkout (downloaded upstream files are never committed to it).
        git(tree, "add", "--force", f"{RELEASE_DIR}/{RELEASE_FILE}")
        git(tree, "commit", "--quiet", "-m", "e2e harness: the pinned release file, local\n\n"
             + "\n".join(f"- {c}" for c in changes))  # fmt: skip
        if break_name is not None:
            what = BREAKS[break_name](tree)
            # -A: a break may add a file (commit -a alone would leave it out of the commit).
            git(tree, "add", "-A")
            git(tree, "commit", "--quiet", "-m", f"E2E_BREAK={break_name}: {what}")
        git(tree, "push", "--quiet", "--force", str(bare), f"HEAD:refs/heads/{branch}")
        return git(tree, "rev-parse", "HEAD")
