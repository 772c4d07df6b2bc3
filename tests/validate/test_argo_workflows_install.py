"""What infrastructure/argo-workflows installs, rendered offline from the pinned release: Argo
Workflows without the quick-start's MinIO and httpbin (nor anything pointing at them), and the
executor as Argo's non-root image of the controller's own release."""

from __future__ import annotations

import yaml
from validate_lib import render, upstream
from validate_lib.model import Report, Resource

REPO = upstream.REPO_ROOT


def rendered() -> list[Resource]:
    renderer = render.Renderer(REPO)
    try:
        report = Report()
        out = renderer.render(REPO / "infrastructure" / "argo-workflows", "infra", report)
    finally:
        renderer.close()
    assert out is not None, [p.format() for p in report.problems]
    return out


def test_quick_start_demo_backends_are_not_deployed_and_executor_is_nonroot() -> None:
    resources = rendered()
    names = {(r.kind, r.name) for r in resources}
    assert ("Deployment", "workflow-controller") in names and ("Deployment", "argo-server") in names
    for gone in (
        ("Deployment", "minio"), ("Service", "minio"), ("Secret", "my-minio-cred"),
        ("Deployment", "httpbin"), ("Service", "httpbin"), ("Secret", "my-httpbin-cred"),
        ("ConfigMap", "artifact-repositories"),
    ):  # fmt: skip
        assert gone not in names, gone
    text = yaml.safe_dump_all([r.obj for r in resources if r.kind != "CustomResourceDefinition"])
    assert "minio" not in text.lower() and "httpbin" not in text.lower()

    cm = next(r for r in resources if r.name == "workflow-controller-configmap")
    executor = yaml.safe_load(cm.obj["data"]["executor"])
    controller = next(
        r for r in resources if (r.kind, r.name) == ("Deployment", "workflow-controller")
    )
    image = controller.obj["spec"]["template"]["spec"]["containers"][0]["image"]
    tag = image.rsplit(":", 1)[1]
    assert executor["image"] == f"quay.io/argoproj/argoexec:{tag}-nonroot"
    assert executor["securityContext"]["runAsNonRoot"] is True
