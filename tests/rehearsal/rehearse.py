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

from .argo_to_docker import Context, Step, describe, plan

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
) -> Result:
    """Translate the rendered template and run its steps in order; raise RehearsalFailed at
    the first step that fails (then the volume is removed). On success the caller removes
    the volume with `cleanup` after reading the batch file from it."""
    name = workflow_name or f"{template_name}-{uuid.uuid4().hex[:8]}"
    volume = f"rehearsal-{name}-data"
    ctx = Context(
        images=images,
        secrets=secrets,
        workflow_name=name,
        namespace=namespace,
        claim_volume=volume,
        pg_port=pg_port,
    )
    try:
        steps = plan(docs, template_name, ctx)
    except Exception as exc:  # TranslationError, or a malformed manifest (KeyError, ...)
        raise RehearsalFailed("translate", f"{type(exc).__name__}: {exc}") from exc
    result = Result(name, volume, steps)
    groups = {s.fs_group for s in steps}
    prepare_claim(
        volume, next(iter(groups)) if len(groups) == 1 else None, helper_image, engine_env
    )
    try:
        for step in steps:
            _run_step(step, engine_env, result)
    except BaseException:
        cleanup(volume, engine_env)  # a failed rehearsal leaves nothing behind
        raise
    return result


def _run_step(step: Step, engine_env: Mapping[str, str], result: Result) -> None:
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
