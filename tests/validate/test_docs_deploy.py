"""docs/deploy.md's table of what deletes workflow pods states the values the manifests set
(and the controller's retention policy as the pinned release ships it)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from validate_lib import upstream

REPO = upstream.REPO_ROOT
DOC = (REPO / "docs" / "deploy.md").read_text()


def spec(path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / path).read_text())["spec"]
    return data


def row(label_start: str) -> list[str]:
    """The pipeline and demo cells of the table row whose first cell starts with label_start."""
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(label_start):
            return cells[1:3]
    raise AssertionError(f"docs/deploy.md has no row {label_start!r}")


def test_pod_and_workflow_retention_table_matches_the_manifests() -> None:
    wt = {d: spec(f"base/{d}/workflowtemplate.yaml") for d in ("pipeline", "isolation-demo")}
    cron = {d: spec(f"base/{d}/cronworkflow.yaml") for d in ("pipeline", "isolation-demo")}
    order = ("pipeline", "isolation-demo")
    assert row("pods of a successful run") == [wt[d]["podGC"]["deleteDelayDuration"] for d in order]
    assert all(wt[d]["podGC"]["strategy"] == "OnWorkflowSuccess" for d in order)
    assert row("successful Workflow deleted") == [
        f"{wt[d]['ttlStrategy']['secondsAfterSuccess']} s" for d in order
    ]
    assert row("failed Workflow deleted") == [
        f"{wt[d]['ttlStrategy']['secondsAfterFailure']} s" for d in order
    ]
    assert row("newest Workflows each CronWorkflow keeps") == [
        f"{cron[d]['successfulJobsHistoryLimit']} / {cron[d]['failedJobsHistoryLimit']}"
        for d in order
    ]


def test_controller_retention_policy_is_the_released_one_and_documented() -> None:
    release = upstream.local_path(f"{upstream.AW}/quick-start-minimal.yaml").read_text()
    # The 12 MB release is too slow to parse whole: its only retentionPolicy block, by text.
    blocks = re.findall(r"^  retentionPolicy: \|\n((?:    .*\n)+)", release, flags=re.MULTILINE)
    assert len(blocks) == 1
    policy = yaml.safe_load(blocks[0])
    documented = row("newest Workflows the controller keeps")[0]
    assert documented == f"{policy['completed']} / {policy['failed']} / {policy['errored']}"
    # Not overridden by this repo's controller-config patches.
    patches = (REPO / "infrastructure" / "argo-workflows" / "controller-config").rglob("*.yaml")
    assert not any(re.search(r"retentionPolicy", p.read_text()) for p in patches)
    assert "one day" not in DOC
