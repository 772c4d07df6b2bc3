"""Run a translated workflow (argo_to_docker.plan) in the private Docker engine."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .argo_to_docker import (
    Call,
    Context,
    Step,
    call_waves,
    describe,
    global_variables,
    plan_spec,
    pod_steps,
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
    pod_volumes: tuple[str, ...] = ()  # shared emptyDirs of the pods, every attempt
    engine_env: Mapping[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def volume_path(self, engine_env: Mapping[str, str]) -> Path:
        """Where the claim's Docker volume lives on this host (the engine runs here)."""
        return volume_path(self.volume, engine_env)


def volume_path(volume: str, engine_env: Mapping[str, str]) -> Path:
    """Where a Docker volume lives on this host (the engine runs here)."""
    out = _docker(["volume", "inspect", "--format", "{{.Mountpoint}}", volume], engine_env)
    return Path(out.strip())


def _docker(args: list[str], env: Mapping[str, str], timeout: float = 120) -> str:
    proc = subprocess.run(
        ["docker", *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def prepare_volume(
    volume: str, fs_group: int | None, helper_image: str, env: Mapping[str, str], mode: int
) -> None:
    """Create the Docker volume standing in for a claim (MODE 0o2775) or a shared emptyDir
    (0o2777, the kubelet makes emptyDirs world-writable) and, if the pod has fsGroup, give
    it to that group with setgid, as the kubelet does for a volume that supports ownership."""
    _docker(["volume", "create", volume], env)
    group = int(fs_group) if fs_group is not None else 0
    if fs_group is None and mode & 0o002 == 0:
        return
    code = f"import os; os.chown('/v', 0, {group}); os.chmod('/v', {mode:#o})"
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


def prepare_claim(
    volume: str, fs_group: int | None, helper_image: str, env: Mapping[str, str]
) -> None:
    prepare_volume(volume, fs_group, helper_image, env, 0o2775)


def with_parameters(spec: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """SPEC with workflow parameters set, as `argo submit -p NAME=VALUE` sets them (a name
    the spec does not declare is an error, as in Argo)."""
    out = copy.deepcopy(dict(spec))
    declared = out.get("arguments", {}).get("parameters", [])
    unknown = set(parameters) - {p["name"] for p in declared}
    if unknown:
        raise RehearsalFailed("translate", f"no workflow parameters {sorted(unknown)}")
    for p in declared:
        if p["name"] in parameters:
            p["value"] = parameters[p["name"]]
    return out


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
    parameters: Mapping[str, str] | None = None,
    repeat: Collection[str] = (),
) -> Result:
    """Translate the rendered template (or SPEC), with PARAMETERS set as on submit, and run
    it: wave by wave (pods of one wave at the same time, at most the entrypoint's
    `parallelism`), the containers of a pod one after the other in dependency order, each
    translated once the results it may use are known. A pod whose node label is in REPEAT
    runs a second time once it succeeded, as a new pod (new emptyDirs): an Argo retry after a
    failure that came once its work was done. Raise RehearsalFailed for the first pod (in wave
    order) that fails ("translate" when the manifest cannot be run faithfully), then remove
    every volume; on success the caller removes them with `cleanup_result` after reading
    what it needs."""
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
        wf = with_parameters(wf, parameters or {})
        variables = global_variables(wf, ctx.workflow_name, ctx.namespace)
        calls = call_waves(wf, variables)
        # Fail on what can be checked before anything runs (results are stand-ins here).
        plan_spec(wf, ctx)
    except RehearsalFailed:
        raise
    except Exception as exc:  # TranslationError, or a malformed manifest (KeyError, ...)
        raise RehearsalFailed("translate", f"{type(exc).__name__}: {exc}") from exc
    result = Result(name, volume, [], engine_env=engine_env)
    entry: dict[str, Any] = next((t for t in wf["templates"] if t["name"] == wf["entrypoint"]), {})
    width = int(entry.get("parallelism") or wf.get("parallelism") or len(calls) or 1)
    if wf.get("volumeClaimTemplates"):
        prepare_claim(
            volume, wf.get("securityContext", {}).get("fsGroup"), helper_image, engine_env
        )
    outputs: dict[str, str] = {}
    try:
        for wave in sorted({c.wave for c in calls}):
            pods = [c for c in calls if c.wave == wave]
            snapshot = dict(outputs)
            with ThreadPoolExecutor(max_workers=min(width, len(pods))) as pool:
                futures = [
                    pool.submit(_run_pod, wf, c, ctx, snapshot, result, helper_image, repeat)
                    for c in pods
                ]
                runs = [f.result() for f in futures]
            failed = [r for r in runs if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            for call, stdout in zip(pods, runs, strict=True):
                outputs |= result_variables(call.label, str(stdout))
    except BaseException:
        cleanup_result(result, engine_env)  # a failed rehearsal leaves nothing behind
        raise
    return result


def _run_pod(
    wf: Mapping[str, Any],
    call: Call,
    ctx: Context,
    outputs: Mapping[str, str],
    result: Result,
    helper_image: str,
    repeat: Collection[str],
) -> str | BaseException:
    """Run one pod (twice if its label is in REPEAT); its main container's stdout, or the
    exception that stopped it (the other pods of the wave run on, as in Argo)."""
    stdout = ""
    try:
        for attempt in range(2 if call.label in repeat else 1):
            try:
                steps = pod_steps(
                    wf, call.template, call.label, call.arguments, ctx, outputs, attempt
                )
            except Exception as exc:
                raise RehearsalFailed(
                    "translate", f"{call.label}: {type(exc).__name__}: {exc}"
                ) from exc
            with result.lock:
                result.steps += steps
                result.pod_volumes += steps[0].pod_volumes
            for v in steps[0].pod_volumes:
                prepare_volume(v, steps[0].fs_group, helper_image, result.engine_env, 0o2777)
            for step in steps:
                out = _run_step(step, result)
                if step.container == "main":
                    stdout = out
    except BaseException as exc:  # handed to the caller, which raises it
        return exc
    return stdout


def _run_step(step: Step, result: Result) -> str:
    proc = subprocess.run(
        step.argv,
        env={**result.engine_env, **step.env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    with result.lock:
        result.logs[step.task] = proc.stdout + proc.stderr
        # One block per container: pods of a wave run at the same time.
        print(
            f"rehearsal: {describe(step)}\nrehearsal: {step.task} exited {proc.returncode}\n"
            f"{proc.stdout}{proc.stderr}",
            flush=True,
        )
    if proc.returncode != 0:
        raise RehearsalFailed(step.task, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    with result.lock:
        result.stdout[step.task] = proc.stdout
    return proc.stdout


def cleanup(volume: str, engine_env: Mapping[str, str]) -> None:
    subprocess.run(
        ["docker", "volume", "rm", "-f", volume],
        env=dict(engine_env),
        capture_output=True,
        check=False,
    )


def cleanup_result(result: Result, engine_env: Mapping[str, str]) -> None:
    """Remove the claim's volume and every pod's shared emptyDir volume."""
    for v in [result.volume, *result.pod_volumes]:
        cleanup(v, engine_env)


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
