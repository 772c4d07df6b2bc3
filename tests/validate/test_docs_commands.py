"""Commands in the README's and docs' shell blocks work whatever the reader's current kubectl
context or minikube profile is: every kubectl and argo command names its --context, every
minikube command its profile (-p). And the docs speak to a reader of this repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = ("sh", "bash", "shell", "console")


def shell_lines(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    lang: str | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            lang = line[3:].strip() if lang is None else None
            continue
        if lang in SHELL_BLOCKS:
            out.append((n, line))
    return out


def commands(line: str) -> list[list[str]]:
    code = line.split(" #", 1)[0]
    return [c.split() for c in re.split(r"&&|\|\||;|\||\$\(", code) if c.split()]


def test_cluster_commands_name_their_context_or_profile() -> None:
    missing = []
    for path in DOCS:
        for n, line in shell_lines(path):
            for w in commands(line):
                if w[0] in ("kubectl", "argo") and w[1:2] != ["kustomize"]:
                    ok = "--context" in w
                elif w[0] == "minikube":
                    ok = "-p" in w or "--profile" in w
                else:
                    continue
                if not ok:
                    missing.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not missing, "\n".join(missing)


def test_docs_do_not_refer_to_an_assignment() -> None:
    for path in DOCS:
        assert "assignment" not in path.read_text().lower(), path.relative_to(REPO)
