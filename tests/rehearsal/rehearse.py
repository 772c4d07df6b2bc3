"""Run a translated workflow (argo_to_docker.plan) in the private Docker engine."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .argo_to_docker import (
    Context,
    Step,
    describe,
    docker_step,
    ordered_calls,
    plan_spec,
    result_variables,
    workflow_spec,
)

STEP_TIMEOUT = 600


class RehearsalFailed(Exception):
    """A step exited non-zero (or could not be translated faithfully)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step!r}: {message}")
        self.step = step


@dataclass
class Result:
    workflow_name: str
    volume: str
    steps: list[Step]
    logs: dict[str, str] = field(default_factory=dict)
    stdout: dict[str, str] = field(default_factory=dict)

    def volume_path(self, engine_env: Mapping[str, str]) -> Path:
        """Where the claim's Docker volume lives on this host (the engine runs here)."""
        out = _docker(["volume", "inspect", "--format", "{{.Mountpoint}}", self.volume], engine_env)
        return Path(out.strip())


def _docker(args: list[str], env: Mapping[str, str], timeout: float = 120) -> str:
    proc = subprocess.run(
        ["docker", *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def prepare_claim(
    volume: str, fs_group: int | None, helper_image: str, env: Mapping[str, str]
) -> None:
    """Create the volume standing in for the claim and, if the pod has fsGroup, give it to
    that group with setgid, as the kubelet does for a volume that supports ownership."""
    _docker(["volume", "create", volume], env)
    if fs_group is None:
        return
    code = f"import os; os.chown('/v', 0, {int(fs_group)}); os.chmod('/v', 0o2775)"
    _docker(
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0:0",
            "--entrypoint",
            "python3",
            "--mount",
            f"type=volume,src={volume},dst=/v",
            helper_image,
            "-c",
            code,
        ],
        env,
    )


def rehearse(
    docs: list[dict[str, Any]],
    template_name: str,
    *,
    engine_env: Mapping[str, str],
    images: Mapping[str, str],
    secrets: Mapping[str, Mapping[str, str]],
    pg_port: int,
    helper_image: str,
    namespace: str = "event-pipeline",
    workflow_name: str | None = None,
    host_paths: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Result:
    """Translate the rendered template (or SPEC, e.g. a Job's pod from `job_as_spec`) and
    run its steps in order, each translated once the results it may use are known; raise
    RehearsalFailed at the first step that fails ("translate" when the manifest cannot be
    run faithfully), then the volume is removed. On success the caller removes the volume
    with `cleanup` after reading the batch file from it."""
    name = workflow_name or f"{template_name}-{uuid.uuid4().hex[:8]}"
    volume = f"rehearsal-{name}-data"
    ctx = Context(
        images=images,
        secrets=secrets,
        workflow_name=name,
        namespace=namespace,
        claim_volume=volume,
        pg_port=pg_port,
        host_paths=dict(host_paths or {}),
    )
    try:
        wf = dict(spec) if spec is not None else workflow_spec(docs, template_name)
        calls = ordered_calls(wf)
        # Fail on what can be checked before anything runs (results are stand-ins here).
        plan_spec(wf, ctx)
    except Exception as exc:  # TranslationError, or a malformed manifest (KeyError, ...)
        raise RehearsalFailed("translate", f"{type(exc).__name__}: {exc}") from exc
    result = Result(name, volume, [])
    if wf.get("volumeClaimTemplates"):
        prepare_claim(
            volume, wf.get("securityContext", {}).get("fsGroup"), helper_image, engine_env
        )
    outputs: dict[str, str] = {}
    try:
        for task, tpl, args in calls:
            try:
                step = docker_step(wf, tpl, task, args, ctx, outputs)
            except Exception as exc:
                raise RehearsalFailed("translate", f"{task}: {type(exc).__name__}: {exc}") from exc
            result.steps.append(step)
            stdout = _run_step(step, engine_env, result)
            outputs |= result_variables(task, stdout)
    except BaseException:
        cleanup(volume, engine_env)  # a failed rehearsal leaves nothing behind
        raise
    return result


def _run_step(step: Step, engine_env: Mapping[str, str], result: Result) -> str:
    print(f"rehearsal: {describe(step)}", flush=True)
    proc = subprocess.run(
        step.argv,
        env={**engine_env, **step.env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    result.logs[step.task] = proc.stdout + proc.stderr
    print(f"rehearsal: {step.task} exited {proc.returncode}", flush=True)
    print(proc.stdout + proc.stderr, flush=True)
    if proc.returncode != 0:
        raise RehearsalFailed(step.task, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    result.stdout[step.task] = proc.stdout
    return proc.stdout


def cleanup(volume: str, engine_env: Mapping[str, str]) -> None:
    subprocess.run(
        ["docker", "volume", "rm", "-f", volume],
        env=dict(engine_env),
        capture_output=True,
        check=False,
    )


def independent_totals(events_file: Path) -> tuple[int, dict[str, int]]:
    """Events and per-user session totals computed straight from the generated file, with
    nothing from the pipeline package (json module only)."""
    totals: dict[str, int] = {}
    count = 0
    with events_file.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            event = json.loads(line)
            totals[event["userId"]] = totals.get(event["userId"], 0) + int(event["sessionDuration"])
            count += 1
    return count, totals


def engine_env_with(base: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(base)
    return env
