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


def other_overlay() -> str:
    return "minikube" if git_overlay() == "no-gvisor" else "no-gvisor"


def test_dry_run_prints_every_step_with_pinned_versions() -> None:
    require_kubectl()
    if git_overlay() != "minikube":
        pytest.skip("apps/event-pipeline.yaml points at no-gvisor: no gVisor steps to check")
    p = run(str(UP), "--dry-run", "--overlay", "minikube", "--repo-url", FORK, "--revision", "dev")
    out = p.stdout
    assert "minikube start -p event-pipeline --container-runtime=containerd" in out
    assert "minikube addons enable gvisor" in out
    assert "install -d -m 1777 /var/lib/isolation-demo" in out
    assert (
        "apply --server-side --force-conflicts -n argocd -f "
        "https://raw.githubusercontent.com/argoproj/argo-cd/v3.6.2/manifests/install.yaml"
    ) in out
    # The images are built under exactly the names the overlay renders, then loaded.
    for ref in rendered_images("minikube"):
        target = ref.rsplit("/", 1)[-1].split(":")[0]  # the image is the target of its name
        assert f"docker build -t {ref} -f {ROOT}/images/Dockerfile --target {target} " in out
        assert f"minikube image load -p event-pipeline {ref}" in out
    assert "runtimeClassName: gvisor" in out  # the smoke-test pod
    assert "postgres-credentials" in out and "<random, 32 chars>" in out
    assert f"repoURL: {FORK}" in out and "targetRevision: dev" in out


@pytest.mark.parametrize("mode", ["--dry-run", "--print-root-app", "--context=kind-x"])
def test_overlay_other_than_git_is_refused_with_how_to_switch_it(mode: str) -> None:
    """Bootstrap never overrides Git in the cluster: another overlay stops before anything."""
    other = other_overlay()
    app = ROOT / "apps" / "event-pipeline.yaml"
    before = app.read_text()
    p = run(str(UP), mode, "--overlay", other, "--repo-url", FORK, check=False)
    assert p.returncode == 1
    assert p.stdout == ""
    assert f"overlay '{other}' is not the one in Git" in p.stderr
    assert f"make overlay OVERLAY={other}" in p.stderr
    assert "git commit -m 'Switch to overlay" in p.stderr and "git push" in p.stderr
    assert "/spec/source/path" not in p.stderr
    assert app.read_text() == before


def test_overlay_given_as_in_git_is_accepted() -> None:
    p = run(str(UP), "--print-root-app", "--overlay", git_overlay(), "--repo-url", FORK)
    assert p.returncode == 0 and "kind: Application" in p.stdout


def test_context_deploys_onto_an_existing_cluster_without_minikube(tmp_path: Path) -> None:
    """--context: no minikube, no gVisor addon, no minikube ssh, no image build or load; the
    rest as on minikube, every kubectl through that context."""
    install = tmp_path / "install.yaml"
    install.write_text("# a local copy of Argo CD's install.yaml\n")
    args = ("--dry-run", "--repo-url", FORK, "--revision", "dev", "--argocd-install", str(install))
    out = run(str(UP), *args, "--context", "kind-e2e").stdout
    lines = [x for x in out.splitlines() if x.startswith("+ ") and not x.startswith("+ #")]
    assert lines
    for word in ("minikube", "docker", "gvisor-smoke", "crictl", "image load"):
        assert not [x for x in lines if word in x], word
    kubectl = [x for x in lines if "kubectl" in x]
    assert kubectl and all("kubectl --context kind-e2e " in x for x in kubectl)
    assert not [x for x in lines if "--context event-pipeline" in x]
    assert f"apply --server-side --force-conflicts -n argocd -f {install}" in out
    assert "create secret generic postgres-credentials" in out
    assert "repoURL: " + FORK in out and "argocd get application event-pipeline" in out
    if git_overlay() == "minikube":  # gVisor is the cluster's own: only looked at
        assert "+ kubectl --context kind-e2e get runtimeclass gvisor -o name" in lines
    # From Argo CD's install on, every command is the minikube run's, through the other context.
    mk = run(str(UP), *args).stdout.replace("--context event-pipeline ", "--context kind-e2e ")
    first = "+ kubectl --context kind-e2e create namespace argocd\n"
    assert out[out.index(first) : out.index("\nDone:")] == mk[mk.index(first) : mk.index("\nDone:")]
    assert "Done: context 'kind-e2e'" in out


def test_context_and_profile_are_exclusive() -> None:
    p = run(str(UP), "--dry-run", "--context", "kind-x", "--profile", "p", check=False)
    assert p.returncode == 1 and "give one of them" in p.stderr


def test_repo_ca_goes_to_ls_remote_and_argocd_tls_certs_cm(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    url = "https://10.10.0.2:8443/sandboxed-event-pipeline.git"
    out = run(
        str(UP),
        "--dry-run",
        "--context",
        "e2e",
        "--repo-url",
        url,
        "--revision",
        "e2e",
        "--repo-ca",
        str(ca),
    ).stdout
    assert f"GIT_SSL_CAINFO={ca} git -c credential.helper= ls-remote --exit-code {url}" in out
    # Argo CD's documented way: ConfigMap argocd-tls-certs-cm, key = the host name (no port).
    assert (
        "+ kubectl --context e2e -n argocd create configmap argocd-tls-certs-cm "
        f"--from-file=10.10.0.2={ca} --dry-run=client -o yaml | kubectl --context e2e apply "
        "--server-side --force-conflicts --field-manager=bootstrap-up -f -"
    ) in out
    # Before the install, so that the repo-server starts with it.
    assert out.index("argocd-tls-certs-cm") < out.index("-n argocd -f ")
    assert "argocd-tls-certs-cm" not in run(str(UP), "--dry-run", "--repo-url", url).stdout


def test_unreadable_repo_ca_or_install_file_is_refused(tmp_path: Path) -> None:
    for opt in ("--repo-ca", "--argocd-install"):
        p = run(str(UP), "--dry-run", opt, str(tmp_path / "missing"), check=False)
        assert p.returncode == 1 and f"{opt}: cannot read" in p.stderr


def test_help_documents_the_options_and_login_without_sso() -> None:
    out = run(str(UP), "--help").stdout
    for opt in ("--context NAME", "--repo-ca FILE", "--argocd-install PATH_OR_URL", "KUBECONFIG"):
        assert opt in out
    assert "no SSO" in out and "argocd-dex-server" in out and "admin" in out


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
    root_yaml = run(str(UP), "--print-root-app", "--repo-url", FORK, "--revision", "dev").stdout
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
    # The overlay is Git's: the root does not patch it.
    assert apps["event-pipeline"]["spec"]["source"]["path"] == f"overlays/{git_overlay()}"
    assert apps["argo-workflows"]["spec"]["source"]["path"] == "infrastructure/argo-workflows"


def test_root_app_is_the_file_in_git_with_only_url_and_revision_set() -> None:
    """--print-root-app prints bootstrap/root-app.yaml with the repository URL and revision
    replaced, nothing else; the dry run applies exactly that."""
    in_git = (ROOT / "bootstrap" / "root-app.yaml").read_text()
    app = yaml.safe_load(in_git)
    upstream, revision = app["spec"]["source"]["repoURL"], app["spec"]["source"]["targetRevision"]
    out = run(str(UP), "--print-root-app", "--repo-url", FORK, "--revision", "dev").stdout
    expected = [
        line.replace(upstream, FORK)
        .replace(f"targetRevision: {revision}", "targetRevision: dev")
        .replace(f"value: {revision}", "value: dev")
        for line in in_git.splitlines()
    ]
    assert out.splitlines() == expected
    changed = [a for a, b in zip(in_git.splitlines(), out.splitlines(), strict=True) if a != b]
    assert len(changed) == 5, changed  # repoURL x3, revision x2
    assert "/spec/source/path" not in out
    dry = run(str(UP), "--dry-run", "--repo-url", FORK, "--revision", "dev").stdout
    heredoc = dry.split("+ kubectl --context event-pipeline apply -f - <<'EOF'\n")
    assert any(part.startswith(out + "EOF\n") for part in heredoc[1:]), "applied != printed"


def test_root_app_file_is_not_part_of_the_apps_kustomization() -> None:
    kustomization = yaml.safe_load((ROOT / "apps" / "kustomization.yaml").read_text())
    assert not [r for r in kustomization["resources"] if "root" in r]
    assert not (ROOT / "apps" / "root-app.yaml").exists()


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
