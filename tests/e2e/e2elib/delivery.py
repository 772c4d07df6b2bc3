"""The delivery loop, rehearsed on the e2e cluster: a commit under images/ goes through the
images workflow, the harness registry and the workflow's tag-bump commit, and Argo CD rolls it
out (the row "delivery loop" in checks.py then runs the pipeline on it).

The workflow file is the one in the served commit (.github/workflows/images.yml), run by
e2elib/gha.py: its `run:` steps for real (the bump job's `kustomize edit set image`, the render
check, `git commit` and `git push origin HEAD:main`), its actions by these stand-ins:

  actions/checkout             git clone of the served repository, branch main at GITHUB_SHA
  docker/setup-buildx-action   nothing: the harness's Docker engine builds
  docker/login-action          nothing: the harness registry takes pushes without a login
  docker/metadata-action       gha.metadata_tags (the action's sha/semver rules)
  docker/build-push-action     docker build (same file, target, context, tags, labels;
                               BASE_IMAGE is the Debian-built base, nothing can be pulled here),
                               then skopeo copy of each tag into the harness registry; its
                               digest is the output
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import argocd, gha, gitops, kube, served

OWNER = "sandboxed-event-pipeline"
WORKFLOW = ".github/workflows/images.yml"
VERSION_FILE = "images/pipeline/src/event_pipeline/__init__.py"
KUSTOMIZATION = "base/kustomization.yaml"
REF = f"refs/heads/{gitops.BRANCH}"


@dataclass
class Delivery:
    version: str  # the package version the change under images/ sets
    source: str = ""  # the commit under images/ (GITHUB_SHA)
    bump: str = ""  # the workflow's tag-bump commit
    digests: dict[str, str] = field(default_factory=dict)  # pushed ref (with tag) -> digest
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    steps: list[str] = field(default_factory=list)  # "job: step (kind) Ns", in order


def docker_env() -> dict[str, str]:
    """The environment with DOCKER_HOST of the private Docker engine (started if it is not)."""
    if os.environ.get("DOCKER_HOST"):
        return dict(os.environ)
    up = Path(__file__).resolve().parents[3] / "scripts" / "lib" / "dockerd-up"
    out = subprocess.run([str(up)], check=True, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("DOCKER_HOST=")]
    if not lines:
        raise gha.GhaError("scripts/lib/dockerd-up printed no DOCKER_HOST=... line")
    return {**os.environ, "DOCKER_HOST": lines[-1].split("=", 1)[1]}


def stand_ins(state: Path, base_image: str, delivery: Delivery) -> dict[str, gha.StandIn]:
    env = docker_env()
    registry = os.environ.get("E2E_REGISTRY", "10.250.0.2:5000")
    skopeo = ["skopeo", "--policy", str(state / "config" / "registry-policy.json")]
    trust = str(state / "certs" / "registry-trust")

    def checkout(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        served.git(workspace.parent, "clone", "-q", str(gitops.bare_repo(state)), str(workspace))
        served.git(workspace, "checkout", "-q", "-B", ctx.ref.removeprefix("refs/heads/"), ctx.sha)
        return {}

    def nothing(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        return {}

    def build_push(inputs: dict[str, str], workspace: Path, ctx: gha.Context) -> dict[str, str]:
        tags = [t for t in inputs["tags"].splitlines() if t.strip()]
        argv = ["docker", "build", "--file", str(workspace / inputs["file"])]
        argv += ["--target", inputs["target"]] if inputs.get("target") else []
        argv += [a for t in tags for a in ("--tag", t)]
        argv += [a for lb in inputs.get("labels", "").splitlines() if lb for a in ("--label", lb)]
        argv += ["--build-arg", f"BASE_IMAGE={base_image}", str(workspace / inputs["context"])]
        build = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200)
        if build.returncode != 0:
            tail = "\n".join(build.stderr.strip().splitlines()[-15:])
            raise gha.GhaError(f"docker build of {tags[0]} failed:\n{tail}")
        if inputs.get("push") != "true":
            return {}
        out = state / "delivery"
        out.mkdir(exist_ok=True)
        tar, digest_file = out / "image.tar", out / "digest"
        subprocess.run(["docker", "save", "--output", str(tar), tags[0]], env=env, check=True,
                       timeout=600)  # fmt: skip
        digest = ""
        for tag in tags:
            subprocess.run(
                kube.in_ns([*skopeo, "copy", "--quiet", "--dest-cert-dir", trust, "--digestfile",
                            str(digest_file), f"docker-archive:{tar}", f"docker://{registry}/{tag}"]),
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
            digest = digest_file.read_text().strip()
            delivery.digests[tag] = digest
        tar.unlink()
        return {"digest": digest}

    return {
        "actions/checkout": checkout,
        "docker/setup-buildx-action": nothing,
        "docker/login-action": nothing,
        "docker/metadata-action": lambda i, w, c: gha.metadata_tags(i, c),
        "docker/build-push-action": build_push,
    }


def pull_failure(
    tag: str, namespaces: tuple[str, ...] = ("event-pipeline", "isolation-demo")
) -> str | None:
    """The first pod there that cannot pull an image tagged `tag` (ErrImagePull,
    ImagePullBackOff), or None. Other pods' pull errors are not this bump's."""
    for ns in namespaces:
        for pod in kube.items("-n", ns, "pods"):
            status = pod.get("status") or {}
            for cs in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []
            ):
                waiting = (cs.get("state") or {}).get("waiting") or {}
                image = str(cs.get("image") or "")
                if image.endswith(f":{tag}") and waiting.get("reason") in (
                    "ErrImagePull",
                    "ImagePullBackOff",
                ):
                    return (
                        f"pod {ns}/{pod['metadata']['name']} cannot pull {cs.get('image')}: "
                        f"{str(waiting.get('message') or waiting['reason'])[:300]}"
                    )
    return None


def bumped_tag(kustomization: str) -> str:
    """The tag base/kustomization.yaml gives event-generator (what the bump job set)."""
    for image in yaml.safe_load(kustomization).get("images") or []:
        if image.get("name") == "event-generator" and image.get("newTag"):
            return str(image["newTag"])
    raise gha.GhaError(f"{KUSTOMIZATION} gives event-generator no newTag")


def set_version(tree: Path, version: str) -> None:
    path = tree / VERSION_FILE
    lines = path.read_text().splitlines(keepends=True)
    found = [i for i, ln in enumerate(lines) if ln.startswith("__version__ = ")]
    if len(found) != 1:
        raise kube.KubeError(f"{VERSION_FILE}: expected one `__version__ = ...` line")
    lines[found[0]] = f'__version__ = "{version}"\n'
    path.write_text("".join(lines))


def rehearse(
    state: Path, tools: list[str], base_image: str, log: Callable[[str], None]
) -> Delivery:
    """Commit a new version under images/, run the images workflow's build and bump jobs as
    the push would on GitHub, and wait for Argo CD to have synced the bump commit."""
    bare = gitops.bare_repo(state)
    current = served.git(bare, "show", f"{gitops.BRANCH}:{VERSION_FILE}")
    base = next(ln.split('"')[1] for ln in current.splitlines() if ln.startswith("__version__"))
    d = Delivery(version=f"{base.split('+')[0]}+e2e.{int(time.time())}")
    t0 = time.monotonic()
    d.source, _ = gitops.push(state, f"images: event-pipeline {d.version}",
                              lambda t: set_version(t, d.version))  # fmt: skip
    d.seconds["commit under images/"] = time.monotonic() - t0
    with_files = served.git(bare, "show", "--name-only", "--format=", d.source).splitlines()
    workflow = gha.load_text(served.git(bare, "show", f"{d.source}:{WORKFLOW}"), WORKFLOW)
    if not gha.push_triggers(workflow, REF, with_files):
        raise gha.GhaError(f"{WORKFLOW} is not triggered by a push of {with_files} to {REF}")
    ctx = gha.Context(
        sha=d.source, ref=REF, repository_owner=OWNER, repository=f"{OWNER}/{OWNER}",
        secrets={"GITHUB_TOKEN": "e2e-stand-in-token"},  # only sent to github.com by the job
    )  # fmt: skip
    runners = stand_ins(state, base_image, d)
    work = state / "delivery" / d.source[:12]
    for job in ("build", "bump"):
        t1 = time.monotonic()
        runs = gha.run_job(workflow, job, ctx, runners, work, path=tools, log=log)
        d.seconds[f"{job} job"] = time.monotonic() - t1
        for n, steps in enumerate(runs):
            d.steps += [f"{job}[{n}]: {st.name} ({st.kind}) {st.seconds:.1f}s" for st in steps]
    d.bump = served.git(bare, "rev-parse", gitops.BRANCH)
    if d.bump == d.source:
        raise gha.GhaError("the bump job pushed no commit")
    t2 = time.monotonic()
    tag = bumped_tag(served.git(bare, "show", f"{d.bump}:{KUSTOMIZATION}"))
    argocd.wait(argocd.APPS, gitops.SYNC_TIMEOUT, d.bump, quiet=True,
                stuck=lambda: pull_failure(tag))  # fmt: skip
    d.seconds["Argo CD synced the bump"] = time.monotonic() - t2
    return d
