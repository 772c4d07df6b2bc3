"""The `images` GitHub workflow bumps tags with `kustomize edit set image` in base/. Prove that
such an edit reaches the container images of the Argo CRs (WorkflowTemplate, CronWorkflow) in
both overlays, and that it is the `configurations:` fieldSpec that makes it so: without it,
kustomize's image transformer leaves Argo CR images alone (an upstream pitfall).

The kustomize binary is not installable on this machine (no PyPI/Debian package), so the edit
is made the way `kustomize edit set image NAME=NEWNAME:TAG` writes it (kustomize
commands/edit/set/setimage.go: the entry for NAME is replaced by {name, newName, newTag} and
the list sorted by name). The images workflow runs the real command on GitHub's runner and
renders both overlays afterwards, checking the same thing there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ["minikube", "no-gvisor"]
LOGICAL = ["event-aggregator", "event-generator"]
ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate", "Workflow"}
NEW_TAG = "sha-0123abc"


def new_ref(name: str) -> str:
    return f"ghcr.io/test-owner/{name}:{NEW_TAG}"


def set_image(kustomization: Path, assignments: dict[str, str]) -> None:
    """What `kustomize edit set image name=newName:newTag ...` writes."""
    data = yaml.safe_load(kustomization.read_text())
    images = {i["name"]: i for i in data.get("images", [])}
    for name, ref in assignments.items():
        new_name, new_tag = ref.rsplit(":", 1)
        images[name] = {"name": name, "newName": new_name, "newTag": new_tag}
    data["images"] = sorted(images.values(), key=lambda i: i["name"])
    kustomization.write_text(yaml.safe_dump(data, sort_keys=False))


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _templates_images(templates: list[dict[str, Any]]) -> list[str]:
    images = []
    for t in templates:
        for key in ("container", "script"):
            if key in t and "image" in t[key]:
                images.append(t[key]["image"])
        for key in ("initContainers", "sidecars"):
            images += [c["image"] for c in t.get(key, []) if "image" in c]
    return images


def argo_images(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Container images of every Argo CR, by 'Kind/name'."""
    found: dict[str, list[str]] = {}
    for d in docs:
        if d.get("kind") not in ARGO_KINDS:
            continue
        spec = d.get("spec", {})
        templates = spec.get("templates", []) + spec.get("workflowSpec", {}).get("templates", [])
        images = _templates_images(templates)
        if images:
            found[f"{d['kind']}/{d['metadata']['name']}"] = images
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the kustomize tree (base/ and overlays/) to edit freely."""
    for part in ("base", "overlays"):
        shutil.copytree(REPO / part, tmp_path / part)
    return tmp_path


def _ours(image: str) -> str | None:
    """The logical name if IMAGE is one of this repo's images (by last path component)."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return name if name in LOGICAL else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_set_image_reaches_argo_container_images(tree: Path, overlay: str) -> None:
    set_image(tree / "base" / "kustomization.yaml", {n: new_ref(n) for n in LOGICAL})
    found = argo_images(render(tree / "overlays" / overlay))
    assert "WorkflowTemplate/event-pipeline" in found, found
    ours = [(where, img) for where, imgs in found.items() for img in imgs if _ours(img)]
    assert {_ours(img) for _, img in ours} == set(LOGICAL), ours
    for where, img in ours:
        assert img == new_ref(_ours(img) or ""), f"{where}: {img} was not rewritten"
    # Before the edit, the new tag is nowhere in the rendered output.
    assert (
        NEW_TAG
        not in subprocess.run(
            ["kubectl", "kustomize", str(REPO / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_without_the_fieldspec_argo_images_stay_unchanged(tree: Path, overlay: str) -> None:
    kustomization = tree / "base" / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    assert data.get("configurations"), "base/kustomization.yaml has no configurations: fieldSpec"
    del data["configurations"]
    kustomization.write_text(yaml.safe_dump(data, sort_keys=False))
    set_image(kustomization, {n: new_ref(n) for n in LOGICAL})
    found = argo_images(render(tree / "overlays" / overlay))
    images = found["WorkflowTemplate/event-pipeline"]
    assert images and all(NEW_TAG not in img for img in images), images
