"""bootstrap/up for real against stubbed kubectl/minikube/docker/git (tests/bootstrap/stubs/):
the real run executes exactly what --dry-run prints (on minikube and with --context), gVisor
must be proven before images are loaded and a gVisor that fails stops the run (no fallback), an
unreadable repository stops before anything is applied, a failed sync stops the wait at once
with Argo CD's message, and a clone without an https origin still dry-runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
STUB = Path(__file__).resolve().parent / "stubs" / "fake-tool"
FORK = "https://github.com/someone/fork.git"
STUBBED = ("kubectl", "minikube", "docker", "git")
# What the real run asks before acting, to be safe to repeat (a running profile, an existing
# namespace or Secret): queries a fresh machine answers "no", which --dry-run assumes.
IDEMPOTENCY_CHECKS = (
    ["minikube", "status"],
    ["docker", "info"],
    ["kubectl", "config", "get-contexts"],
    ["kubectl", "get", "namespace"],  # kubectl's words after `--context NAME`
    ["kubectl", "-n", "event-pipeline", "get", "secret"],
)

Call = dict[str, Any]
PIPED = "<stdin from the previous command of a pipeline>"


def git_overlay() -> str:
    app = yaml.safe_load((ROOT / "apps" / "event-pipeline.yaml").read_text())
    return str(app["spec"]["source"]["path"]).removeprefix("overlays/")


def tools() -> dict[str, str]:
    found = {t: shutil.which(t) for t in ("kubectl", "git")}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (bootstrap renders with kubectl)")
    return {t: str(p) for t, p in found.items()}


def up(
    tmp_path: Path, *args: str, repo: Path = ROOT, **scenario: str
) -> tuple[subprocess.CompletedProcess[str], list[Call]]:
    """bootstrap/up ARGS with the stubs first on PATH; (process, the stubs' calls in order)."""
    real = tools()
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for tool in STUBBED:
            (bin_dir / tool).symlink_to(STUB)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STUB_", "REPO_"))},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_REAL_KUBECTL": real["kubectl"],
        "STUB_REAL_GIT": real["git"],
        **scenario,
    }
    p = subprocess.run(
        [str(repo / "bootstrap" / "up"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return p, calls


def dry_run_calls(stdout: str) -> list[Call]:
    """Every stubbed command the dry run prints, pipelines split, heredocs as stdin."""
    calls: list[Call] = []
    lines = stdout.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("+ ") or line.startswith("+ #"):
            continue
        heredoc = None
        if line.endswith(" <<'EOF'"):
            line = line.removesuffix(" <<'EOF'")
            end = lines.index("EOF", i)
            heredoc = "".join(f"{x}\n" for x in lines[i:end])
            i = end + 1
        words = shlex.split(line[2:])
        stages: list[list[str]] = [[]]
        for w in words:
            if w == "|":
                stages.append([])
            else:
                stages[-1].append(w)
        for n, argv in enumerate(stages):
            if argv[0] == "env":  # env VAR=value ... CMD
                argv = argv[1:]
                while "=" in argv[0]:
                    argv = argv[1:]
            if argv[0] in STUBBED:
                calls.append({"argv": argv, "stdin": heredoc if n == 0 else PIPED})
    return calls


def acting(calls: list[Call]) -> list[Call]:
    """The real run's calls without the real tools and the idempotency checks."""
    out = []
    for c in calls:
        argv = c["argv"]
        if argv[:2] == ["kubectl", "--context"]:
            argv = argv[:1] + argv[3:]
        if any(argv[: len(q)] == q for q in IDEMPOTENCY_CHECKS):
            continue
        out.append(c)
    return out


def e2e_args(tmp_path: Path) -> tuple[str, ...]:
    """What the e2e deploy (e2elib/deploy.py) passes: its cluster's context, its Git server, CA
    and install file."""
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    install = tmp_path / "install.yaml"
    install.write_text("# Argo CD's install.yaml, rendered by the e2e\n")
    return (
        "--context",
        "e2e",
        "--repo-url",
        "https://10.10.0.2:8443/sandboxed-event-pipeline.git",
        "--revision",
        "e2e",
        "--repo-ca",
        str(ca),
        "--argocd-install",
        str(install),
    )


@pytest.mark.parametrize("cluster", ["minikube", "context"])
def test_real_run_executes_exactly_what_the_dry_run_prints(tmp_path: Path, cluster: str) -> None:
    if cluster == "minikube":
        common: tuple[str, ...] = (
            "--overlay",
            "minikube",
            "--repo-url",
            FORK,
            "--revision",
            "main",
        )
    else:
        common = e2e_args(tmp_path)
    dry, dry_stub_calls = up(tmp_path, "--dry-run", *common)
    assert dry.returncode == 0, dry.stderr
    assert dry_stub_calls == [], "the dry run ran a command"
    real, calls = up(tmp_path, *common)
    assert real.returncode == 0, real.stderr
    printed = dry_run_calls(dry.stdout)
    ran = acting(calls)
    assert [c["argv"] for c in ran] == [c["argv"] for c in printed]
    for r, d in zip(ran, printed, strict=True):
        if d["stdin"] == PIPED:
            continue
        if d["stdin"] is None:
            assert r["stdin"] is None or r["stdin"] == "", r["argv"]
        elif "<random, 32 chars>" in d["stdin"]:
            pattern = re.escape(d["stdin"]).replace(
                re.escape("<random, 32 chars>"), "[A-Za-z0-9]{32}"
            )
            assert re.fullmatch(pattern, r["stdin"]), r["stdin"]
        else:
            assert r["stdin"] == d["stdin"], r["argv"]
    # The password went through stdin only, never through argv.
    secrets = [c for c in ran if "--from-env-file=/dev/stdin" in c["argv"]]
    assert len(secrets) == 2
    password = re.search(r"PGPASSWORD=(\S+)", secrets[0]["stdin"]).group(1)  # type: ignore[union-attr]
    assert all(password not in " ".join(c["argv"]) for c in calls)
    ls_remote = [c for c in ran if "ls-remote" in c["argv"]]
    assert ls_remote and ls_remote[0]["git_terminal_prompt"] == "0"
    assert "credential.helper=" in ls_remote[0]["argv"]
    if cluster == "context":
        assert not [c for c in calls if c["argv"][0] in ("minikube", "docker")]
        assert ls_remote[0]["git_ssl_cainfo"] == str(tmp_path / "ca.crt")
        assert "Done: context 'e2e'" in real.stdout


@pytest.mark.parametrize("force", [False, True])
def test_gvisor_is_proven_before_images_load_else_the_run_stops(
    tmp_path: Path, force: bool
) -> None:
    """No fallback to another overlay than Git's: a gVisor that fails stops with what to do."""
    args = ["--overlay", "minikube", "--repo-url", FORK, "--revision", "main"]
    args += ["--gvisor-timeout", "0", *(["--force-gvisor"] if force else [])]
    p, calls = up(tmp_path, *args, STUB_NO_RUNSC="1")
    assert p.returncode == 1
    assert (
        "gVisor is not usable: after 0s containerd on the node still has no runsc runtime"
        in p.stderr
    )
    assert "sudo crictl info" in p.stderr  # says how to look
    assert "make overlay OVERLAY=no-gvisor" in p.stderr and "git push" in p.stderr
    assert "FALLING BACK" not in p.stderr
    assert not [c for c in calls if c["argv"][1:3] == ["image", "load"]], "images loaded anyway"
    assert not [c for c in calls if "apply" in c["argv"]], "applied something anyway"


def test_context_without_runtimeclass_gvisor_stops_before_argo_cd(tmp_path: Path) -> None:
    if git_overlay() != "minikube":
        pytest.skip("apps/event-pipeline.yaml points at no-gvisor")
    p, calls = up(tmp_path, *e2e_args(tmp_path), STUB_NO_RUNTIMECLASS="1")
    assert p.returncode == 1
    assert "has no RuntimeClass gvisor" in p.stderr
    assert "make overlay OVERLAY=no-gvisor" in p.stderr
    assert not [c for c in calls if "apply" in c["argv"] or "create" in c["argv"]]


def test_unknown_context_stops_before_anything(tmp_path: Path) -> None:
    p, calls = up(tmp_path, *e2e_args(tmp_path), STUB_NO_CONTEXT="1")
    assert p.returncode == 1
    assert "kubectl has no context 'e2e'" in p.stderr
    assert acting(calls) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            "128",
            [
                "could not read https://github.com/someone/fork.git anonymously",
                "terminal prompts disabled",
                "make the repository public",
            ],
        ),
        (
            "2",
            [
                "https://github.com/someone/fork.git has no branch or tag 'main'",
                "git push origin main",
            ],
        ),
    ],
)
def test_unreadable_repository_stops_before_anything_runs(
    tmp_path: Path, status: str, expected: list[str]
) -> None:
    p, calls = up(tmp_path, "--repo-url", FORK, "--revision", "main", STUB_LS_REMOTE=status)
    assert p.returncode == 1
    for e in expected:
        assert e in p.stderr
    assert [c["argv"][0] for c in acting(calls)] == ["git"], "acted before the repository check"


def test_failed_hook_fails_the_run_and_shows_the_hooks(tmp_path: Path) -> None:
    failure = "one or more synchronization tasks completed unsuccessfully\n"
    hooks = "PostSync Job/isolation-demo/isolation-demo-sync: Failed BackoffLimitExceeded\n"
    p, _ = up(
        tmp_path,
        "--repo-url",
        FORK,
        "--revision",
        "main",
        STUB_APP_STATE_event_pipeline="Synced/Healthy/Failed/",
        STUB_HOOKS_event_pipeline=hooks,
        STUB_APP_FAILURE_event_pipeline=failure,
    )
    assert p.returncode == 1
    assert "Application event-pipeline: its last sync ended Failed" in p.stderr
    assert "| one or more synchronization tasks completed unsuccessfully" in p.stderr
    assert "event-pipeline: PostSync Job/isolation-demo/isolation-demo-sync: Failed" in p.stderr
    assert "get workflows -l isolation-demo.io/sync-hook-job" in p.stderr


def test_a_retry_after_a_failed_sync_stops_the_wait_at_once(tmp_path: Path) -> None:
    """Argo CD retries a failed sync (retryCount > 0, a message): bootstrap stops at once with
    Argo CD's message and the failed resources' ones, not after --timeout."""
    message = (
        'one or more objects failed to apply, reason: Service "postgres" is invalid. '
        "Retrying attempt #1 at 2026-01-01T00:00:00Z."
    )
    p, calls = up(
        tmp_path,
        *e2e_args(tmp_path),
        "--timeout",
        "900",
        STUB_APP_STATE_event_pipeline="OutOfSync/Missing/Running/1",
        STUB_APP_MESSAGE_event_pipeline=message,
        STUB_APP_FAILURE_event_pipeline=message
        + '\nService/event-pipeline/postgres: Service "postgres" is invalid: spec.ports\n',
    )
    assert p.returncode == 1
    assert "Application event-pipeline: its sync failed and Argo CD is retrying it (attempt 1)" in (
        p.stderr
    )
    assert f"| {message}" in p.stderr
    assert '| Service/event-pipeline/postgres: Service "postgres" is invalid' in p.stderr
    polls = [c for c in calls if "jsonpath={.status.sync.status}" in " ".join(c["argv"])]
    assert len(polls) == 3, "waited for another round"


def test_a_retry_attempt_under_way_is_waited_for(tmp_path: Path) -> None:
    """After a failed attempt, the retry runs: its message is progress, not a failure."""
    p, _ = up(
        tmp_path,
        *e2e_args(tmp_path),
        "--timeout",
        "0",
        STUB_APP_STATE_event_pipeline="OutOfSync/Healthy/Running/2",
        STUB_APP_MESSAGE_event_pipeline="waiting for healthy state of /Namespace/event-pipeline",
    )
    assert p.returncode == 1
    assert "its sync failed" not in p.stderr
    assert "not Synced, Healthy and Succeeded after 0s" in p.stderr


def test_a_retry_for_missing_argo_workflows_crds_is_waited_for(tmp_path: Path) -> None:
    """event-pipeline's first sync may come before argo-workflows has installed its CRDs."""
    message = (
        'resource mapping not found for name: "event-pipeline": no matches for kind '
        '"WorkflowTemplate" in version "argoproj.io/v1alpha1"\nensure CRDs are installed first. '
        "Retrying attempt #1 at 2026-01-01T00:00:00Z."
    )
    p, _ = up(
        tmp_path,
        *e2e_args(tmp_path),
        "--timeout",
        "0",
        STUB_APP_STATE_argo_workflows="OutOfSync/Progressing/Running/",
        STUB_APP_STATE_event_pipeline="OutOfSync/Missing/Running/1",
        STUB_APP_MESSAGE_event_pipeline=message,
    )
    assert p.returncode == 1
    assert "event-pipeline retries until argo-workflows has installed" in p.stderr
    assert "not Synced, Healthy and Succeeded after 0s" in p.stderr


def test_successful_run_prints_the_hooks_outcome(tmp_path: Path) -> None:
    hooks = "PostSync Job/isolation-demo/isolation-demo-sync: Succeeded job completed\n"
    p, _ = up(
        tmp_path,
        "--repo-url",
        FORK,
        "--revision",
        "main",
        STUB_HOOKS_event_pipeline=hooks,
    )
    assert p.returncode == 0, p.stderr
    assert "event-pipeline: PostSync Job/isolation-demo/isolation-demo-sync: Succeeded" in p.stderr
    assert "argo-workflows: no hooks" in p.stderr


def clone_without_https_origin(tmp_path: Path, origin: str | None) -> Path:
    """A copy of the working tree as its own Git repository, origin a local path or none."""
    repo = tmp_path / "clone"
    shutil.copytree(
        ROOT, repo, ignore=shutil.ignore_patterns(".git", ".venv*", ".cache", "__pycache__")
    )
    git = tools()["git"]
    subprocess.run([git, "init", "-q", "-b", "main", str(repo)], check=True)
    ident = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([git, "-C", str(repo), *ident, "commit", "-qm", "clone"], check=True)
    if origin is not None:
        subprocess.run([git, "-C", str(repo), "remote", "add", "origin", origin], check=True)
    return repo


@pytest.mark.parametrize("origin", [None, "/srv/git/event-pipeline.git"])
def test_any_clone_dry_runs_with_a_marked_placeholder(tmp_path: Path, origin: str | None) -> None:
    repo = clone_without_https_origin(tmp_path, origin)
    dry, calls = up(tmp_path, "--dry-run", repo=repo)
    assert dry.returncode == 0, dry.stderr
    assert calls == []
    assert "PLACEHOLDER repoURL https://PLACEHOLDER.invalid/" in dry.stderr
    assert "repoURL: https://PLACEHOLDER.invalid/" in dry.stdout
    root, _ = up(tmp_path, "--print-root-app", repo=repo)
    assert root.returncode == 0, root.stderr
    assert root.stdout.startswith("# PLACEHOLDER repoURL")
    why = "has no 'origin' remote" if origin is None else f"origin remote '{origin}' is not"
    assert why in root.stderr
    real, calls = up(tmp_path, repo=repo)
    assert real.returncode == 1
    assert why in real.stderr and "--repo-url https://github.com/<you>/<repo>.git" in real.stderr
    assert acting(calls) == [], "a real run acted without a repository Argo CD can read"


def test_no_repo_check_skips_the_anonymous_check(tmp_path: Path) -> None:
    p, _ = up(tmp_path, "--dry-run", "--no-repo-check", "--repo-url", FORK, "--revision", "main")
    assert p.returncode == 0, p.stderr
    assert "ls-remote" not in p.stdout and "--no-repo-check" in p.stderr
