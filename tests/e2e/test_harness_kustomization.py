"""The harness deploys what a user deploys, except image names (tests/e2e/harness/).

Each Application path is rendered twice, as a user's Argo CD renders it (the pinned release
URL mapped to its local copy, as scripts/validate does) and as the harness serves it
(e2elib.served.prepare); the two are compared object by object, field by field. Argo CD's
install.yaml likewise, with and without the Component.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2elib import objdiff, served
from validate_lib.model import Report
from validate_lib.render import Renderer

REPO = Path(__file__).resolve().parents[2]
LOCAL = "esp.local/e2e/"
EXECUTOR_ARG = f"--executor-image={LOCAL}argoexec:v4.0.5-nonroot"
CONTROLLER_ARGS = "/spec/template/spec/containers/0/args/0"

# What the Component must change per Application path: (kind/name, new image) pairs.
EXPECTED_IMAGES = {
    "infrastructure/argo-workflows": {
        ("Deployment/workflow-controller", f"{LOCAL}argo-workflow-controller:v4.0.5"),
        ("Deployment/argo-server", f"{LOCAL}argocli:v4.0.5"),
    },
    "overlays/minikube": {("StatefulSet/postgres", f"{LOCAL}postgres:17-trixie")},
    "overlays/no-gvisor": {("StatefulSet/postgres", f"{LOCAL}postgres:17-trixie")},
}


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


def _image_changes(diffs: list[objdiff.Difference]) -> set[tuple[str, str]]:
    return {
        (f"{d.key[1]}/{d.key[3]}", str(d.after)) for d in diffs if objdiff.is_image_field(d.path)
    }


def _not_images(diffs: list[objdiff.Difference]) -> list[objdiff.Difference]:
    out = []
    for d in diffs:
        if objdiff.is_image_field(d.path) and str(d.after).startswith(LOCAL):
            continue
        if d.key[3] == "workflow-controller" and d.path == CONTROLLER_ARGS:
            assert d.before is None and d.after == EXECUTOR_ARG
            continue
        out.append(d)
    return out


def test_every_application_path_is_covered(served_tree: Path) -> None:
    assert set(served.app_dirs(served_tree)) == set(EXPECTED_IMAGES)


@pytest.mark.slow  # kustomize takes about a minute on the 12 MB release file
@pytest.mark.parametrize("app", sorted(EXPECTED_IMAGES))
def test_served_rendering_differs_only_in_image_names(app: str, served_tree: Path) -> None:
    user = _objs(Renderer(REPO), REPO / app)
    harness = _objs(Renderer(served_tree), served_tree / app)
    only_user, only_harness, diffs = objdiff.compare(user, harness)
    assert only_user == [] and only_harness == []
    assert _not_images(diffs) == []
    assert _image_changes(diffs) == EXPECTED_IMAGES[app]
    if app == "infrastructure/argo-workflows":
        assert any(d.path == CONTROLLER_ARGS for d in diffs), "executor image not set"


def test_served_tree_has_no_remote_resources(served_tree: Path) -> None:
    for app in served.app_dirs(served_tree):
        data = yaml.safe_load((served_tree / app / "kustomization.yaml").read_text())
        assert all("://" not in str(r) for r in data.get("resources") or []), app


def _kustomize(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]


def test_argocd_install_differs_only_in_image_names(tmp_path: Path) -> None:
    with_component = served.argocd_install(tmp_path / "with")
    pristine = tmp_path / "without"
    pristine.mkdir()
    (pristine / "install.yaml").write_bytes((with_component / "install.yaml").read_bytes())
    (pristine / "kustomization.yaml").write_text("resources: [install.yaml]\n")
    raw = [d for d in yaml.safe_load_all((pristine / "install.yaml").read_text()) if d]
    before, after = _kustomize(pristine), _kustomize(with_component)
    assert objdiff.compare(raw, before) == ([], [], [])  # kustomize alone changes nothing
    only_before, only_after, diffs = objdiff.compare(before, after)
    assert only_before == [] and only_after == []
    assert _not_images(diffs) == []
    changed = {image for _, image in _image_changes(diffs)}
    assert changed == {f"{LOCAL}argocd:v3.5.1", f"{LOCAL}redis:trixie"}


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
    assert (clone / served.RELEASE_DIR / served.RELEASE_FILE).stat().st_size > 1_000_000
    wt = (clone / "base/isolation-demo/workflowtemplate.yaml").read_text()
    assert "dev.gvisor.flag.overlay2" not in wt
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert rev == head
    # A second publish replaces the branch (safe to run twice).
    assert served.publish(REPO, bare, "e2e", None) != head
