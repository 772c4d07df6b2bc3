"""bootstrap/up, scripts/switch-overlay: what can be checked without a cluster.

`bootstrap/up --dry-run` prints every command instead of running it; `--print-root-app`
prints the root Application. The repoURL mechanism is checked the way Argo CD applies it:
the root's `spec.source.kustomize.patches` added to a kustomization over apps/, rendered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "bootstrap" / "up"
FORK = "https://github.com/someone/fork.git"


def run(*args: str, check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REPO_URL": "", "REPO_REVISION": ""}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, check=check)


def require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        unavailable("kubectl is not installed (bootstrap renders overlays with it)")


def git_overlay() -> str:
    app = yaml.safe_load((ROOT / "apps" / "event-pipeline.yaml").read_text())
    path: str = app["spec"]["source"]["path"]
    return path.removeprefix("overlays/")


def rendered_images(overlay: str) -> set[str]:
    out = run("kubectl", "kustomize", str(ROOT / "overlays" / overlay)).stdout
    return {
        line.split("image:", 1)[1].strip()
        for line in out.splitlines()
        if line.strip().startswith("image:") and "/event-" in line
    }


def test_dry_run_prints_every_step_with_pinned_versions() -> None:
    require_kubectl()
    p = run(str(UP), "--dry-run", "--overlay", "minikube", "--repo-url", FORK, "--revision", "dev")
    out = p.stdout
    assert "minikube start -p event-pipeline --container-runtime=containerd" in out
    assert "minikube addons enable gvisor" in out
    assert "install -d -m 1777 /var/lib/isolation-demo" in out
    assert (
        "apply --server-side --force-conflicts -n argocd -f "
        "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml"
    ) in out
    # The images are built under exactly the names the overlay renders, then loaded.
    for ref in rendered_images("minikube"):
        assert f"docker build -t {ref} " in out
        assert f"minikube image load -p event-pipeline {ref}" in out
    assert "runtimeClassName: gvisor" in out  # the smoke-test pod
    assert "postgres-credentials" in out and "<random, 32 chars>" in out
    assert f"repoURL: {FORK}" in out and "targetRevision: dev" in out


def test_dry_run_no_gvisor_skips_the_addon_and_pins_the_overlay() -> None:
    require_kubectl()
    out = run(str(UP), "--dry-run", "--overlay", "no-gvisor", "--repo-url", FORK).stdout
    assert "addons enable gvisor" not in out
    assert "runtimeClassName: gvisor" not in out
    if git_overlay() != "no-gvisor":
        assert "value: overlays/no-gvisor" in out


def test_unknown_overlay_is_refused() -> None:
    p = run(str(UP), "--dry-run", "--overlay", "gvisor-please", "--repo-url", FORK, check=False)
    assert p.returncode != 0
    assert "unknown overlay 'gvisor-please'" in p.stderr


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("git@github.com:someone/fork.git", FORK),
        ("ssh://git@github.com/someone/fork.git", FORK),
        ("ssh://git@github.com:22/someone/fork.git", FORK),
        ("https://someone:token@github.com/someone/fork.git", FORK),
        ("http://github.com/someone/fork.git", FORK),
        (FORK, FORK),
    ],
)
def test_origin_remote_becomes_https_without_credentials(remote: str, expected: str) -> None:
    script = f'source <(sed -n "/^to_https_url() {{/,/^}}/p" {UP}); to_https_url "$1"'
    p = run("bash", "-c", script, "_", remote)
    assert p.stdout.strip() == expected


def test_root_app_patches_point_children_at_the_roots_repository(tmp_path: Path) -> None:
    """Render apps/ with the root Application's kustomize patches, as Argo CD does."""
    require_kubectl()
    other = "minikube" if git_overlay() == "no-gvisor" else "no-gvisor"
    root_yaml = run(
        str(UP), "--print-root-app", "--repo-url", FORK, "--revision", "dev", "--overlay", other
    ).stdout
    root = yaml.safe_load(root_yaml)
    assert root["kind"] == "Application" and root["spec"]["source"]["path"] == "apps"
    assert root["spec"]["source"]["repoURL"] == FORK
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "apps", tmp_path)],
        "patches": root["spec"]["source"]["kustomize"]["patches"],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    docs = [d for d in yaml.safe_load_all(run("kubectl", "kustomize", str(tmp_path)).stdout) if d]
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}
    projects = [d for d in docs if d["kind"] == "AppProject"]
    assert set(apps) == {"argo-workflows", "event-pipeline"}
    assert projects, "apps/ renders no AppProject"
    for app in apps.values():
        assert app["spec"]["source"]["repoURL"] == FORK
        assert app["spec"]["source"]["targetRevision"] == "dev"
    for project in projects:
        assert project["spec"]["sourceRepos"] == [FORK]
    assert apps["event-pipeline"]["spec"]["source"]["path"] == f"overlays/{other}"
    assert apps["argo-workflows"]["spec"]["source"]["path"] == "infrastructure/argo-workflows"


def test_root_app_without_overlay_change_has_no_path_patch() -> None:
    out = run(str(UP), "--print-root-app", "--repo-url", FORK, "--overlay", git_overlay()).stdout
    assert "/spec/source/path" not in out


def copy_for_switch(tmp_path: Path) -> Path:
    for rel in ("apps", "overlays", "scripts/switch-overlay"):
        src, dst = ROOT / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    return tmp_path


def test_switch_overlay_changes_exactly_one_line(tmp_path: Path) -> None:
    repo = copy_for_switch(tmp_path)
    app = repo / "apps" / "event-pipeline.yaml"
    before = app.read_text().splitlines()
    target = "minikube" if git_overlay() == "no-gvisor" else "no-gvisor"
    run(str(repo / "scripts" / "switch-overlay"), target, cwd=repo)
    after = app.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [(f"    path: overlays/{git_overlay()}", f"    path: overlays/{target}")]
    # Switching back restores the file byte for byte.
    run(str(repo / "scripts" / "switch-overlay"), git_overlay(), cwd=repo)
    assert app.read_text().splitlines() == before


def test_switch_overlay_refuses_unknown_names(tmp_path: Path) -> None:
    repo = copy_for_switch(tmp_path)
    app = repo / "apps" / "event-pipeline.yaml"
    before = app.read_text()
    for bad in ("gvisor", "../base", "minikube/patches"):
        p = run(str(repo / "scripts" / "switch-overlay"), bad, check=False, cwd=repo)
        assert p.returncode != 0, bad
        assert "unknown overlay" in p.stderr
    assert app.read_text() == before
