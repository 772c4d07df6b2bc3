"""Shared fixtures for tests that need the private Docker engine (scripts/lib/dockerd-up).

When a component is missing: ``pytest.fail`` if ``CI=true`` (CI must run every layer), else
``pytest.skip`` with the reason. The engine is left running after the session (other sessions
may share it); ``scripts/lib/dockerd-down`` stops it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from needs import unavailable

REPO = Path(__file__).resolve().parent.parent
LIB = REPO / "scripts" / "lib"


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def docker_engine() -> dict[str, str]:
    """Environment (a copy of os.environ) whose DOCKER_HOST points at the private engine."""
    env = dict(os.environ)
    try:
        proc = _run([str(LIB / "dockerd-up")], env, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"scripts/lib/dockerd-up did not run: {exc}")
    if proc.returncode != 0:
        unavailable(f"no Docker engine: {proc.stderr.strip() or proc.stdout.strip()}")
    for line in proc.stdout.splitlines():
        if line.startswith("DOCKER_HOST="):
            env["DOCKER_HOST"] = line.split("=", 1)[1]
            return env
    unavailable(f"scripts/lib/dockerd-up printed no DOCKER_HOST: {proc.stdout!r}")


@pytest.fixture(scope="session")
def base_image(docker_engine: dict[str, str]) -> str:
    """Name of the locally made Python base image (scripts/lib/base-image), built if absent."""
    try:
        proc = _run([str(LIB / "base-image")], docker_engine, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"scripts/lib/base-image did not run: {exc}")
    if proc.returncode != 0:
        unavailable(f"no base image: {proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def runsc_available(docker_engine: dict[str, str], base_image: str) -> bool:
    """True once a container really ran under gVisor (runtime ``runsc``) in the engine."""
    argv = ["docker", "run", "--rm", "--runtime", "runsc", base_image]
    argv += ["python3", "-c", "import os; print(os.uname().release)"]
    try:
        proc = _run(argv, docker_engine, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"runsc container did not run: {exc}")
    if proc.returncode != 0:
        unavailable(f"runsc container failed: {proc.stderr.strip()}")
    return True
