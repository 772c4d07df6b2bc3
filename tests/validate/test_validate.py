"""The validation gate rejects every broken fixture with its reason, and passes the repo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "scripts" / "validate"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BROKEN = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("_"))


def run_gate(
    *args: str, stdin: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GATE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def fixture_args(d: Path) -> list[str]:
    args = (d / "args.txt").read_text().split() if (d / "args.txt").is_file() else []
    expect = (d / "expect.txt").read_text()
    # checkov takes seconds per run: only fixtures whose expected reason is a checkov finding
    # pay for it (the baseline test below runs the full gate, checkov included).
    if "CKV" not in expect:
        args.append("--no-checkov")
    target = d / "input.yaml" if (d / "input.yaml").is_file() else d
    return [*args, str(target)]


def test_fixture_count() -> None:
    assert len(BROKEN) >= 25


def test_readme_states_the_fixture_count() -> None:
    readme = (REPO / "README.md").read_text()
    m = re.search(r"`scripts/validate` rejects (\d+) broken fixtures", readme)
    assert m, "README no longer says how many broken fixtures the gate rejects"
    assert int(m.group(1)) == len(BROKEN)


def test_baseline_passes_whole_gate() -> None:
    p = run_gate(str(FIXTURES / "_good"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "checkov" in p.stdout and "0 failed" in p.stdout


@pytest.fixture(scope="module")
def fixture_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every broken fixture through the gate, a few at a time (each run is one process)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = pool.map(lambda d: run_gate(*fixture_args(d)), BROKEN)
        return {d.name: p for d, p in zip(BROKEN, runs, strict=True)}


@pytest.mark.parametrize("fixture", BROKEN, ids=[p.name for p in BROKEN])
def test_broken_fixture_rejected(
    fixture: Path, fixture_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    expected = [ln for ln in (fixture / "expect.txt").read_text().splitlines() if ln.strip()]
    assert expected, f"{fixture.name}/expect.txt names no reason"
    p = fixture_runs[fixture.name]
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    for e in expected:
        assert e in p.stdout, f"expected {e!r} in:\n{out}"


def test_stdin_mode_reads_rendered_yaml() -> None:
    text = (FIXTURES / "rendered-yaml-input" / "input.yaml").read_text()
    p = run_gate("--no-checkov", "-", stdin=text, timeout=300)
    assert p.returncode == 1
    assert "[semantics] -: CronJob/isolation-demo/cleanup" in p.stdout
    assert "spec.schedule: cron schedule 0 25 * * * is malformed: end of range (25)" in p.stdout


def test_problem_lines_name_file_resource_path_and_reason() -> None:
    p = run_gate("--no-checkov", str(FIXTURES / "volumemount-without-volume"))
    line = next(ln for ln in p.stdout.splitlines() if "has no matching volume" in ln)
    assert line.startswith("[semantics] tests/validate/fixtures/volumemount-without-volume: ")
    assert "WorkflowTemplate/event-pipeline/pipeline" in line
    assert "(tests/validate/fixtures/_good/resources/workflowtemplate.yaml)" in line
    assert "spec.templates[2].container.volumeMounts[1].name" in line


def test_repo_passes() -> None:
    """The whole repo (every kustomization, checkov included) passes the gate."""
    p = run_gate()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("OK: ")


def test_runs_directly_through_its_shebang() -> None:
    """`scripts/validate` works without naming the venv's interpreter."""
    p = subprocess.run(
        [str(GATE), "--no-checkov", str(FIXTURES / "_good")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_strict_schemas_agree_with_kubernetes_validate() -> None:
    """kubeconform on the gate's local schemas gives kubernetes-validate's own strict verdict."""
    import kubernetes_validate.utils as kv
    from validate_lib import schemas
    from validate_lib.model import Report, Resource

    def render(d: Path) -> list[dict[str, object]]:
        out = subprocess.run(
            ["kubectl", "kustomize", str(d)], capture_output=True, text=True, check=True
        ).stdout
        return [x for x in yaml.safe_load_all(out) if x]

    cases = [(o, True) for o in render(FIXTURES / "_good")]
    cases += [
        (o, False)
        for o in render(FIXTURES / "container-unknown-field")
        if o["kind"] == "Deployment"
    ]
    builtin = [(o, valid) for o, valid in cases if "argoproj.io" not in str(o["apiVersion"])]
    assert len(builtin) >= 10
    for obj, valid in builtin:
        try:
            kv.validate(obj, schemas.K8S_VERSION, strict=True)
            theirs = True
        except kv.ValidationError:
            theirs = False
        report = Report()
        schemas.validate([(Resource(obj=obj, source="t", origin="t"), obj, "")], report)
        assert theirs == (not report.problems) == valid, (obj["kind"], report.problems)


def test_docs_fixture_table_lists_every_fixture() -> None:
    doc = (REPO / "docs" / "validation.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, flags=re.MULTILINE))
    assert {p.name for p in BROKEN} == listed


def test_root_application_from_bootstrap_passes() -> None:
    """The root Application bootstrap/up applies (bootstrap/root-app.yaml with a fork's URL and
    revision set) passes the gate too; the file itself is in the repo-mode gate's `manifests`."""
    cfg = yaml.safe_load((REPO / "scripts" / "validate-config.yaml").read_text())
    assert "bootstrap/root-app.yaml" in cfg["manifests"]
    root = subprocess.run(
        [
            str(REPO / "bootstrap" / "up"),
            "--print-root-app",
            "--repo-url",
            "https://github.com/example/fork.git",
            "--revision",
            "main",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    ).stdout
    assert "kind: Application" in root
    p = run_gate("--no-checkov", "-", stdin=root, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def _with_shards(rendered: str, value: str) -> str:
    """RENDERED with the pipeline's `shards` parameter set to VALUE (as `-p shards=VALUE`
    on submit, or a CronWorkflow's own arguments, would set it)."""
    docs = list(yaml.safe_load_all(rendered))
    wf = next(
        d
        for d in docs
        if d and d["kind"] == "WorkflowTemplate" and d["metadata"]["name"] == "event-pipeline"
    )
    param = next(p for p in wf["spec"]["arguments"]["parameters"] if p["name"] == "shards")
    param["value"] = value
    return str(yaml.safe_dump_all(docs, sort_keys=False))


@pytest.mark.parametrize("overlay", ["minikube", "no-gvisor"])
def test_pipeline_with_four_shards_passes(overlay: str) -> None:
    """The rendered overlay with `shards: 4` passes the gate with the overlay's runtime
    profile (gVisor on every pipeline pod under minikube, shard pods included); the same
    render with a shard count that is not a number fails it."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    args = ("--no-checkov", "--profile", overlay, "-")
    ok = run_gate(*args, stdin=_with_shards(rendered, "4"), timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_gate(*args, stdin=_with_shards(rendered, "4 shards"), timeout=300)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "withSequence.count is '4 shards' (workflow parameter 'shards')" in bad.stdout
