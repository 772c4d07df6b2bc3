"""The harness deploys what a user deploys, byte for byte.

Each Application path is rendered twice, as a user's Argo CD renders it (the pinned release
URL mapped to its local copy, as scripts/validate does) and as the harness serves it
(e2elib.served.prepare: the same release bytes from tests/e2e/harness/release/); the two
renderings must be identical, object for object and in order. Images keep their upstream names
(the harness registry serves them), and Argo CD's install.yaml is the pinned file itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2elib import objdiff, served
from validate_lib import upstream
from validate_lib.model import Report
from validate_lib.render import Renderer

REPO = Path(__file__).resolve().parents[2]
APPS = {"infrastructure/argo-workflows", "overlays/minikube", "overlays/no-gvisor"}


def _objs(renderer: Renderer, kdir: Path) -> list[dict[str, Any]]:
    report = Report()
    resources = renderer.render(kdir, str(kdir), report)
    assert resources is not None, [p.reason for p in report.problems]
    assert not report.problems, [p.reason for p in report.problems]
    return [r.obj for r in resources]


@pytest.fixture(scope="module")
def served_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("served")
    served.snapshot(REPO, tree)
    served.prepare(tree)
    return tree


def test_every_application_path_is_covered(served_tree: Path) -> None:
    assert set(served.app_dirs(served_tree)) == APPS


@pytest.mark.slow  # kustomize takes about a minute on the 12 MB release file
@pytest.mark.parametrize("app", sorted(APPS))
def test_served_rendering_is_what_a_user_renders(app: str, served_tree: Path) -> None:
    user = _objs(Renderer(REPO), REPO / app)
    harness = _objs(Renderer(served_tree), served_tree / app)
    assert objdiff.compare(user, harness) == ([], [], [])
    assert yaml.safe_dump_all(user) == yaml.safe_dump_all(harness)


def test_only_the_release_reference_changes(served_tree: Path) -> None:
    """prepare() touches one line of one file; every other file is the checkout's."""
    changed = []
    for app in sorted(APPS):
        if (served_tree / app / "kustomization.yaml").read_bytes() != (
            REPO / app / "kustomization.yaml"
        ).read_bytes():
            changed.append(app)
    assert changed == [served.ARGO_WORKFLOWS_APP]
    data = yaml.safe_load(
        (served_tree / served.ARGO_WORKFLOWS_APP / "kustomization.yaml").read_text()
    )
    assert all("://" not in str(r) for r in data.get("resources") or [])
    release = served_tree / served.RELEASE_DIR / served.RELEASE_FILE
    pinned = upstream.local_path(upstream.PINNED[served.QUICK_START_URL])
    assert release.read_bytes() == pinned.read_bytes()


def test_harness_renames_no_image() -> None:
    assert not (REPO / served.HARNESS_DIR / "kustomization.yaml").exists()


def test_argocd_install_is_the_pinned_file(tmp_path: Path) -> None:
    out = served.argocd_install(tmp_path / "install.yaml")
    pinned = upstream.local_path(upstream.PINNED[served.ARGOCD_INSTALL_URL])
    assert out.read_bytes() == pinned.read_bytes()
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in yaml.safe_load_all(out.read_text())
              if d and d.get("kind") in ("Deployment", "StatefulSet")}  # fmt: skip
    assert "quay.io/argoproj/argocd:v3.6.2" in images


def test_compare_reports_a_changed_field() -> None:
    a = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": [1, 2]}}]
    b = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": [1, 3]}}]
    assert [d.path for d in objdiff.compare(a, b)[2]] == ["/spec/x/1"]
    assert objdiff.compare(a, [])[0] == [objdiff.key_of(a[0])]


def test_publish_serves_the_checkout_plus_the_harness_commit(tmp_path: Path) -> None:
    bare = tmp_path / "served.git"
    head = served.publish(REPO, bare, "e2e", "no-gvisor-annotation-on-c")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "e2e", str(bare), str(clone)], check=True)
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log[0].startswith("E2E_BREAK=no-gvisor-annotation-on-c")
    assert log[1].startswith("e2e harness:") and log[2].startswith("snapshot of ")
    changed = subprocess.run(["git", "diff", "--name-only", "HEAD~2", "HEAD~1"], cwd=clone,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert changed == [f"{served.ARGO_WORKFLOWS_APP}/kustomization.yaml",
                       f"{served.RELEASE_DIR}/{served.RELEASE_FILE}"]  # fmt: skip
    assert (clone / served.RELEASE_DIR / served.RELEASE_FILE).stat().st_size > 1_000_000
    wt = (clone / "base/isolation-demo/workflowtemplate.yaml").read_text()
    assert "dev.gvisor.flag.overlay2" not in wt
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert rev == head
    # A second publish replaces the branch (safe to run twice).
    assert served.publish(REPO, bare, "e2e", None) != head


def test_a_break_that_adds_a_file_commits_it(tmp_path: Path) -> None:
    bare = tmp_path / "served.git"
    served.publish(REPO, bare, "e2e", "project-denies-configmap")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "e2e", str(bare), str(clone)], check=True)
    kustomization = yaml.safe_load((clone / "base/pipeline/kustomization.yaml").read_text())
    assert "settings-configmap.yaml" in kustomization["resources"]
    assert (clone / "base/pipeline/settings-configmap.yaml").is_file()
