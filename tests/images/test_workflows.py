"""The GitHub workflows agree with the repository: the images workflow builds exactly the
images base/kustomization.yaml maps (targets of its Dockerfile) and bumps exactly those
names; every action is pinned by full commit SHA with a version comment; CI runs the same
entry point as local CI. (zizmor and the workflow JSON schema run in scripts/lint.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def base_image_names() -> set[str]:
    kustomization = yaml.safe_load((REPO / "base" / "kustomization.yaml").read_text())
    return {i["name"] for i in kustomization["images"]}


def test_images_workflow_builds_and_bumps_what_base_maps() -> None:
    wf = load("images.yml")
    matrix = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert {m["image"] for m in matrix} == base_image_names()
    build = next(
        s for s in wf["jobs"]["build"]["steps"] if "build-push-action" in s.get("uses", "")
    )
    assert (REPO / build["with"]["context"]).is_dir()
    # One Dockerfile; each image is the target of its name.
    assert build["with"]["target"] == "${{ matrix.image }}"
    stages = re.findall(r"^FROM \S+ AS (\S+)$", (REPO / build["with"]["file"]).read_text(), re.M)
    assert base_image_names() <= set(stages), stages
    bump = "\n".join(s.get("run", "") for s in wf["jobs"]["bump"]["steps"])
    assert "kustomize edit set image" in bump
    for name in base_image_names():
        assert f'"{name}=ghcr.io/${{owner}}/{name}:${{tag}}"' in bump, name
    assert "[skip ci]" in bump


def test_every_action_is_pinned_by_sha_with_a_version_comment() -> None:
    found = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            m = USES.match(line)
            if not m:
                continue
            found += 1
            ref, rest = m.groups()
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", ref), (
                f"{path.name}: {ref}"
            )
            assert re.search(r"#\s*v\d+\.\d+\.\d+", rest), (
                f"{path.name}: {ref} has no version comment"
            )
    assert found >= 6


def test_workflows_grant_nothing_by_default_and_checkouts_keep_no_token() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {}, path.name
        for job_name, job in wf["jobs"].items():
            assert "permissions" in job, f"{path.name}:{job_name}"
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}:{job_name}"


def test_ci_workflow_runs_the_local_ci_entry_point() -> None:
    steps = load("ci.yml")["jobs"]["test"]["steps"]
    assert any(s.get("run", "").strip() == "bash .ci/run" for s in steps)
    assert (REPO / ".ci" / "run").is_file()
