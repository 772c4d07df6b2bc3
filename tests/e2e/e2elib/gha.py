"""A GitHub Actions job run here, as far as a runner without GitHub can run it.

Each `run:` step runs for real, in the shell GitHub uses (`bash -e {0}`, or `bash --noprofile
--norc -eo pipefail {0}` for `shell: bash`), with the environment GitHub gives it: GITHUB_SHA,
GITHUB_REF, GITHUB_REPOSITORY_OWNER, GITHUB_WORKSPACE, GITHUB_OUTPUT, GITHUB_ENV (read back after
each step), the workflow's, job's and step's `env:`, and its `${{ }}` expressions evaluated from
the github, matrix, steps, secrets and env contexts.

Each `uses:` step is stood in for by the plain command it performs, which the caller supplies
(a clone for actions/checkout, a Docker build and a registry push for docker/build-push-action,
...) and which the log names as a stand-in. docker/metadata-action's tag computation is a pure
function of its inputs and lives here (`metadata_tags`). Anything this runner does not know (an
expression, an action without a stand-in, a matrix form) is an error, never a guess.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class GhaError(RuntimeError):
    """The job cannot be run as GitHub would run it, or one of its steps failed."""


@dataclass
class Context:
    """The `github` context of the event, plus the job's secrets."""

    sha: str
    ref: str
    repository_owner: str
    repository: str
    actor: str = "esp-e2e"
    event_name: str = "push"
    secrets: dict[str, str] = field(default_factory=dict)

    def github(self) -> dict[str, str]:
        return {
            "sha": self.sha,
            "ref": self.ref,
            "ref_name": self.ref.rsplit("/", 1)[-1],
            "repository_owner": self.repository_owner,
            "repository": self.repository,
            "actor": self.actor,
            "event_name": self.event_name,
        }


@dataclass
class Step:
    name: str
    kind: str  # "run" or "stand-in for <action>"
    seconds: float
    outputs: dict[str, str]
    log: str = ""  # what a run step printed (stdout and stderr)


# A stand-in gets the step's evaluated `with:` inputs, the job's workspace and the context, and
# returns the step's outputs.
StandIn = Callable[[dict[str, str], Path, Context], dict[str, str]]

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def load(path: Path) -> dict[str, Any]:
    return load_text(path.read_text(), str(path))


def load_text(text: str, name: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), dict):
        raise GhaError(f"{name}: not a workflow (no jobs:)")
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _operand(text: str, scope: Mapping[str, Any]) -> str:
    text = text.strip()
    literal = _LITERAL.fullmatch(text)
    if literal:
        return literal.group(1).replace("''", "'")
    if not _PATH.fullmatch(text):
        raise GhaError(f"expression not supported by this runner: {text!r}")
    value: Any = scope
    for part in text.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise GhaError(f"unknown context value {text!r}")
        value = value[part]
    return str(value)


def evaluate(expr: str, scope: Mapping[str, Any]) -> str:
    """A context path (`matrix.image`), a 'literal', or `a == b` / `a != b` of those."""
    for op in ("==", "!="):
        if op in expr:
            left, right = expr.split(op, 1)
            equal = _operand(left, scope) == _operand(right, scope)
            return "true" if equal == (op == "==") else "false"
    return _operand(expr, scope)


def substitute(value: object, scope: Mapping[str, Any]) -> str:
    """A `with:`/`env:` value as the step sees it: YAML booleans as GitHub spells them."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return _EXPR.sub(lambda m: evaluate(m.group(1), scope), text)


def parse_file_commands(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `name=value` lines and `name<<DELIMITER` blocks."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for body_line in lines:
                if body_line == delimiter:
                    break
                body.append(body_line)
            else:
                raise GhaError(f"{name}: no closing {delimiter!r} in a file command")
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        else:
            raise GhaError(f"malformed file command line {line!r}")
    return values


def matrix(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The job's matrix combinations (one empty one without a matrix)."""
    spec = (job.get("strategy") or {}).get("matrix")
    if spec is None:
        return [{}]
    if not isinstance(spec, dict):
        raise GhaError("strategy.matrix must be a mapping")
    include = spec.get("include") or []
    axes = {k: v for k, v in spec.items() if k not in ("include", "exclude")}
    if "exclude" in spec or (axes and include):
        raise GhaError("matrix exclude / include beside axes: not supported by this runner")
    if include:
        return [{k: str(v) for k, v in entry.items()} for entry in include]
    names = list(axes)
    return [
        dict(zip(names, (str(v) for v in combo), strict=True))
        for combo in itertools.product(*(axes[n] for n in names))
    ]


def _glob(pattern: str) -> re.Pattern[str]:
    """A workflow path filter as a regex: `**` crosses directories, `*` does not."""
    out = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern):
        if part in ("**", "**/"):
            out += ".*"
        elif part == "*":
            out += "[^/]*"
        elif part == "?":
            out += "[^/]"
        else:
            out += re.escape(part)
    return re.compile(out)


def push_triggers(workflow: Mapping[str, Any], ref: str, changed: list[str]) -> bool:
    """Whether a push of `changed` files to `ref` starts the workflow (on.push branches, tags,
    paths; negated patterns are not supported)."""
    on = workflow.get("on")
    push = on.get("push") if isinstance(on, dict) else None
    if push is None:
        return False
    push = push or {}
    if any(str(p).startswith("!") for key in push for p in push.get(key) or []):
        raise GhaError("negated filter patterns are not supported by this runner")
    if ref.startswith("refs/heads/"):
        wanted = push.get("branches")
        if wanted is None and "tags" in push:
            return False
        name = ref.removeprefix("refs/heads/")
    else:
        wanted = push.get("tags")
        if wanted is None and "branches" in push:
            return False
        name = ref.removeprefix("refs/tags/")
    if wanted is not None and not any(fnmatch.fnmatchcase(name, str(p)) for p in wanted):
        return False
    paths = push.get("paths")
    if ref.startswith("refs/tags/"):
        return True  # GitHub does not evaluate path filters for tag pushes
    return paths is None or any(_glob(str(p)).fullmatch(f) for p in paths for f in changed)


def metadata_tags(inputs: Mapping[str, str], ctx: Context) -> dict[str, str]:
    """docker/metadata-action's outputs for the `type=sha` and `type=semver` tag rules (with
    its default flavor: `latest` beside a semver tag)."""
    image = inputs.get("images", "").strip()
    if not image or "\n" in image:
        raise GhaError("metadata stand-in: exactly one image in `images:` is supported")
    version = ""
    semver = re.fullmatch(r"refs/tags/v?(\d+)\.(\d+)\.(\d+)", ctx.ref)
    tags: list[str] = []
    for line in inputs.get("tags", "").splitlines():
        if not line.strip():
            continue
        attrs = dict(a.split("=", 1) for a in line.strip().split(","))
        kind = attrs.pop("type", "")
        if kind == "sha":
            if attrs.get("format", "short") not in ("short", "long"):
                raise GhaError(f"metadata stand-in: sha format {attrs['format']!r}")
            sha = ctx.sha[:7] if attrs.get("format", "short") == "short" else ctx.sha
            tags.append(f"{attrs.get('prefix', 'sha-')}{sha}")
        elif kind == "semver":
            if semver:
                major, minor, patch = semver.groups()
                pattern = attrs.get("pattern", "{{version}}")
                tags.append(
                    pattern.replace("{{version}}", f"{major}.{minor}.{patch}")
                    .replace("{{major}}", major)
                    .replace("{{minor}}", minor)
                    .replace("{{patch}}", patch)
                )
        else:
            raise GhaError(f"metadata stand-in: tag type {kind!r} not supported")
    if semver:
        version = ".".join(semver.groups())
        tags.append("latest")
    else:
        version = tags[0] if tags else ""
    labels = [
        f"org.opencontainers.image.revision={ctx.sha}",
        f"org.opencontainers.image.source=https://github.com/{ctx.repository}",
        f"org.opencontainers.image.version={version}",
    ]
    return {
        "tags": "\n".join(f"{image}:{t}" for t in tags),
        "labels": "\n".join(labels),
        "version": version,
    }


def _shell(step: Mapping[str, Any], script: Path) -> list[str]:
    shell = step.get("shell")
    if shell is None:
        return ["bash", "-e", str(script)]
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    raise GhaError(f"shell {shell!r} not supported by this runner")


def run_job(
    workflow: Mapping[str, Any],
    job_id: str,
    ctx: Context,
    stand_ins: Mapping[str, StandIn],
    workdir: Path,
    path: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[list[Step]]:
    """Run every matrix combination of one job, in order; one Step list per combination.
    GhaError when a step fails (its output is in the message) or cannot run here."""
    job = workflow["jobs"].get(job_id)
    if not isinstance(job, dict):
        raise GhaError(f"no job {job_id!r}")
    github = ctx.github()
    base_scope = {"github": github, "secrets": ctx.secrets}
    condition = job.get("if")
    if condition is not None:
        text = str(condition)
        value = substitute(text, base_scope) if "${{" in text else evaluate(text, base_scope)
        if value != "true":
            log(f"job {job_id}: skipped (if: {text} is {value})")
            return []
    results = []
    for n, combo in enumerate(matrix(job)):
        workspace = workdir / f"{job_id}-{n}"
        workspace.mkdir(parents=True)
        results.append(
            _run_combination(workflow, job, combo, ctx, stand_ins, workspace, path or [], log)
        )
    return results


def _run_combination(
    workflow: Mapping[str, Any],
    job: Mapping[str, Any],
    combo: dict[str, str],
    ctx: Context,
    stand_ins: Mapping[str, StandIn],
    workspace: Path,
    path: list[str],
    log: Callable[[str], None],
) -> list[Step]:
    deadline = time.monotonic() + 60 * float(job.get("timeout-minutes", 360))
    steps_ctx: dict[str, dict[str, dict[str, str]]] = {}
    env: dict[str, str] = {}
    scope: dict[str, Any] = {
        "github": ctx.github(),
        "secrets": ctx.secrets,
        "matrix": combo,
        "steps": steps_ctx,
        "env": env,
    }
    for source in (workflow.get("env") or {}, job.get("env") or {}):
        env.update({k: substitute(v, scope) for k, v in source.items()})
    done: list[Step] = []
    for i, step in enumerate(job.get("steps") or []):
        name = substitute(str(step.get("name") or step.get("uses") or f"step {i}"), scope)
        t0 = time.monotonic()
        if "uses" in step:
            action = str(step["uses"]).split("@", 1)[0]
            if action not in stand_ins:
                raise GhaError(f"step {name!r}: no stand-in for {action} here")
            inputs = {k: substitute(v, scope) for k, v in (step.get("with") or {}).items()}
            outputs = stand_ins[action](inputs, workspace, ctx)
            kind, printed = f"stand-in for {action}", ""
        else:
            outputs, new_env, printed = _run_step(
                step, name, scope, env, ctx, workspace, path, deadline
            )
            env.update(new_env)
            kind = "run"
        if "id" in step:
            steps_ctx[str(step["id"])] = {"outputs": outputs}
        done.append(Step(name, kind, round(time.monotonic() - t0, 1), outputs, printed))
        log(f"  {name}: {kind}, {done[-1].seconds:.1f}s")
    return done


def _run_step(
    step: Mapping[str, Any],
    name: str,
    scope: Mapping[str, Any],
    env: dict[str, str],
    ctx: Context,
    workspace: Path,
    path: list[str],
    deadline: float,
) -> tuple[dict[str, str], dict[str, str], str]:
    files = workspace.parent / f"{workspace.name}.files"
    files.mkdir(exist_ok=True)
    script, output, env_file = files / "step.sh", files / "output", files / "env"
    script.write_text(substitute(str(step["run"]), scope) + "\n")
    output.write_text("")
    env_file.write_text("")
    step_env = {k: substitute(v, scope) for k, v in (step.get("env") or {}).items()}
    full_env = {
        **os.environ,
        "PATH": os.pathsep.join([*path, os.environ.get("PATH", "/usr/bin:/bin")]),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": ctx.sha,
        "GITHUB_REF": ctx.ref,
        "GITHUB_REF_NAME": ctx.ref.rsplit("/", 1)[-1],
        "GITHUB_REPOSITORY": ctx.repository,
        "GITHUB_REPOSITORY_OWNER": ctx.repository_owner,
        "GITHUB_ACTOR": ctx.actor,
        "GITHUB_EVENT_NAME": ctx.event_name,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_ENV": str(env_file),
        **env,
        **step_env,
    }
    cwd = workspace / str(step.get("working-directory", "."))
    try:
        proc = subprocess.run(
            _shell(step, script),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )
    except subprocess.TimeoutExpired as exc:
        raise GhaError(f"step {name!r}: the job's timeout-minutes ran out") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise GhaError(f"step {name!r} exited with {proc.returncode}:\n{tail}")
    outputs = parse_file_commands(output.read_text())
    return outputs, parse_file_commands(env_file.read_text()), proc.stdout
