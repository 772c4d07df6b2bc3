"""The two Dockerfiles keep the image contract of docs/architecture.md (built for real by the
rehearsal test; this checks the contract without a Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = {"generator": "generate-events", "aggregator": "aggregate-events"}


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.mark.parametrize(("image", "script"), IMAGES.items())
def test_dockerfile_contract(image: str, script: str) -> None:
    steps = instructions(REPO / "images" / image / "Dockerfile")
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.12-slim-bookworm")
    assert [rest for kw, rest in steps if kw == "FROM"] == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE}",
    ]
    final = steps[max(i for i, (kw, _) in enumerate(steps) if kw == "FROM") :]
    assert ("USER", "10001:10001") in final
    assert final[-2:] == [("ENTRYPOINT", f'["{script}"]'), ("CMD", '["--help"]')]
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/opt/venv/bin:" in env
    assert any(kw == "COPY" and "pipeline/" in rest for kw, rest in steps)  # context: images/
    assert any("python3 -m venv /opt/venv" in rest for kw, rest in steps if kw == "RUN")


def test_dockerignore_keeps_build_output_out() -> None:
    ignored = (REPO / "images" / ".dockerignore").read_text().split()
    assert {"**/__pycache__", "**/*.egg-info"} <= set(ignored)
