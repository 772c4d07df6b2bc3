"""The Dockerfile keeps the image contract of docs/architecture.md (built for real by the
rehearsal test; this checks the contract without a Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "images" / "Dockerfile"
IMAGES = {"event-generator": "generate-events", "event-aggregator": "aggregate-events"}


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages(steps: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (the FROM line first)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for kw, rest in steps:
        if kw == "FROM":
            current = out.setdefault(rest.split(" AS ")[-1], [])
        if current is not None:
            current.append((kw, rest))
    return out


def test_one_build_stage_one_runtime_and_a_target_per_image() -> None:
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.12-slim-bookworm")
    assert [rest for kw, rest in steps if kw == "FROM"] == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE} AS runtime",
        *(f"runtime AS {image}" for image in IMAGES),
    ]
    build = stages(steps)["build"]
    assert any(kw == "COPY" and "pipeline/" in rest for kw, rest in build)  # context: images/
    assert any("python3 -m venv /opt/venv" in rest for kw, rest in build if kw == "RUN")
    runtime = stages(steps)["runtime"]
    assert ("USER", "10001:10001") in runtime
    env = " ".join(rest for kw, rest in runtime if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/opt/venv/bin:" in env


@pytest.mark.parametrize(("image", "script"), IMAGES.items())
def test_each_target_only_sets_its_entrypoint(image: str, script: str) -> None:
    assert stages(instructions(DOCKERFILE))[image][1:] == [
        ("ENTRYPOINT", f'["{script}"]'),
        ("CMD", '["--help"]'),
    ]


def test_dockerignore_keeps_build_output_out() -> None:
    ignored = (REPO / "images" / ".dockerignore").read_text().split()
    assert {"**/__pycache__", "**/*.egg-info"} <= set(ignored)
