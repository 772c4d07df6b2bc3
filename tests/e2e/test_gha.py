"""The GitHub Actions runner of the delivery-loop row (e2elib/gha.py), offline: expressions,
file commands, matrix, triggers, metadata tags, and the repository's own images workflow run
with recording stand-ins."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2elib import gha

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "images.yml"
SHA = "0123456789abcdef0123456789abcdef01234567"


def _ctx(ref: str = "refs/heads/main") -> gha.Context:
    return gha.Context(
        sha=SHA,
        ref=ref,
        repository_owner="Example-Org",
        repository="Example-Org/repo",
        secrets={"GITHUB_TOKEN": "t"},
    )


def test_expressions() -> None:
    scope = {"github": {"ref": "refs/heads/main"}, "matrix": {"image": "a"}}
    assert gha.substitute("x-${{ matrix.image }}-${{matrix.image}}", scope) == "x-a-a"
    assert gha.evaluate("github.ref == 'refs/heads/main'", scope) == "true"
    assert gha.evaluate("github.ref != 'refs/heads/main'", scope) == "false"
    assert gha.evaluate("'it''s'", scope) == "it's"
    with pytest.raises(gha.GhaError, match=r"unknown context value 'matrix\.nope'"):
        gha.substitute("${{ matrix.nope }}", scope)
    with pytest.raises(gha.GhaError, match="not supported"):
        gha.evaluate("toJSON(matrix)", scope)


def test_file_commands() -> None:
    text = "a=1\nb=x=y\nmulti<<EOF\nline 1\nline 2\nEOF\n"
    assert gha.parse_file_commands(text) == {"a": "1", "b": "x=y", "multi": "line 1\nline 2"}
    with pytest.raises(gha.GhaError, match="no closing"):
        gha.parse_file_commands("m<<EOF\nnever closed\n")
    with pytest.raises(gha.GhaError, match="malformed"):
        gha.parse_file_commands("just words\n")


def test_matrix_forms() -> None:
    assert gha.matrix({}) == [{}]
    include = {"strategy": {"matrix": {"include": [{"image": "a", "n": 1}, {"image": "b"}]}}}
    assert gha.matrix(include) == [{"image": "a", "n": "1"}, {"image": "b"}]
    axes = {"strategy": {"matrix": {"x": [1, 2], "y": ["a"]}}}
    assert gha.matrix(axes) == [{"x": "1", "y": "a"}, {"x": "2", "y": "a"}]
    with pytest.raises(gha.GhaError, match="not supported"):
        gha.matrix({"strategy": {"matrix": {"x": [1], "exclude": [{"x": 1}]}}})


def test_images_workflow_triggers() -> None:
    wf = gha.load(IMAGES_WORKFLOW)
    main = "refs/heads/main"
    assert gha.push_triggers(wf, main, ["images/pipeline/src/event_pipeline/__init__.py"])
    assert gha.push_triggers(wf, main, [".github/workflows/images.yml"])
    assert not gha.push_triggers(wf, main, ["README.md", "base/kustomization.yaml"])
    assert not gha.push_triggers(wf, "refs/heads/feature", ["images/Dockerfile"])
    assert gha.push_triggers(wf, "refs/tags/v1.2.3", ["README.md"])  # paths: not for tags
    assert not gha.push_triggers(wf, "refs/tags/release", ["images/x"])


def test_metadata_tags_branch_and_semver() -> None:
    inputs = {
        "images": "ghcr.io/o/img",
        "tags": "type=sha,prefix=sha-,format=short\n"
        "type=semver,pattern={{version}}\ntype=semver,pattern={{major}}.{{minor}}\n",
    }
    branch = gha.metadata_tags(inputs, _ctx())
    assert branch["tags"] == "ghcr.io/o/img:sha-0123456"
    assert f"org.opencontainers.image.revision={SHA}" in branch["labels"].splitlines()
    tag = gha.metadata_tags(inputs, _ctx("refs/tags/v1.2.3"))
    assert tag["tags"].splitlines() == [
        "ghcr.io/o/img:sha-0123456",
        "ghcr.io/o/img:1.2.3",
        "ghcr.io/o/img:1.2",
        "ghcr.io/o/img:latest",
    ]
    with pytest.raises(gha.GhaError, match="tag type 'edge'"):
        gha.metadata_tags({"images": "x", "tags": "type=edge"}, _ctx())


def _workflow(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "wf.yml"
    path.write_text(textwrap.dedent(text))
    return gha.load(path)


def test_run_steps_outputs_env_and_failures(tmp_path: Path) -> None:
    wf = _workflow(
        tmp_path,
        """
        on: {push: {branches: [main]}}
        env: {LEVEL: workflow, KEEP: w}
        jobs:
          j:
            env: {LEVEL: job}
            strategy: {matrix: {include: [{n: one}, {n: two}]}}
            steps:
              - uses: example/checkout@0000
                with: {path: "${{ matrix.n }}"}
              - id: first
                run: |
                  echo "name=${{ matrix.n }}-$GITHUB_SHA" >>"$GITHUB_OUTPUT"
                  echo "FROM_STEP=set" >>"$GITHUB_ENV"
              - name: second ${{ steps.first.outputs.name }}
                env: {LEVEL: step}
                run: echo "$LEVEL $KEEP $FROM_STEP ${{ steps.first.outputs.name }} $(pwd)"
          skipped:
            if: github.ref == 'refs/heads/other'
            steps: [{run: "exit 1"}]
          broken:
            steps:
              - run: |
                  echo before
                  false
                  echo after
        """,
    )
    seen: list[dict[str, str]] = []

    def checkout(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        seen.append(inputs)
        return {}

    stand_ins = {"example/checkout": checkout}
    runs = gha.run_job(wf, "j", _ctx(), stand_ins, tmp_path / "w", log=lambda _: None)
    assert seen == [{"path": "one"}, {"path": "two"}]
    assert [r[0].kind for r in runs] == ["stand-in for example/checkout"] * 2
    last = runs[1][2]
    assert last.name == f"second two-{SHA}"
    assert last.log.strip() == f"step w set two-{SHA} {tmp_path / 'w' / 'j-1'}"
    assert gha.run_job(wf, "skipped", _ctx(), stand_ins, tmp_path / "s", log=lambda _: None) == []
    with pytest.raises(gha.GhaError, match=r"exited with 1:\nbefore$"):
        gha.run_job(wf, "broken", _ctx(), stand_ins, tmp_path / "b", log=lambda _: None)
    with pytest.raises(gha.GhaError, match="no stand-in for example/checkout"):
        gha.run_job(wf, "j", _ctx(), {}, tmp_path / "n", log=lambda _: None)


def test_images_build_job_with_recording_stand_ins(tmp_path: Path) -> None:
    """Every expression of the real build job evaluates here; the image name is lower-cased by
    its own run step; the push gets the metadata stand-in's tags and the matrix's target."""
    wf = gha.load(IMAGES_WORKFLOW)
    pushed: list[dict[str, str]] = []

    def record(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        pushed.append(inputs)
        return {"digest": "sha256:0"}

    def nothing(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        return {}

    stand_ins = {
        "actions/checkout": nothing,
        "docker/setup-buildx-action": nothing,
        "docker/login-action": nothing,
        "docker/metadata-action": lambda i, w, c: gha.metadata_tags(i, c),
        "docker/build-push-action": record,
    }
    gha.run_job(wf, "build", _ctx(), stand_ins, tmp_path, log=lambda _: None)
    assert all(p["push"] == "true" for p in pushed)  # YAML `push: true`, as GitHub passes it
    assert [(p["file"], p["target"], p["tags"], p["context"]) for p in pushed] == [
        (
            "images/Dockerfile",
            "event-generator",
            "ghcr.io/example-org/event-generator:sha-0123456",
            "images",
        ),
        (
            "images/Dockerfile",
            "event-aggregator",
            "ghcr.io/example-org/event-aggregator:sha-0123456",
            "images",
        ),
    ]
    assert yaml.safe_load(IMAGES_WORKFLOW.read_text())["jobs"]["bump"]["if"] == (
        "github.ref == 'refs/heads/main'"
    )
