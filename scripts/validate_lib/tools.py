"""The Go tools the gate runs (kubeconform, argo), built once by scripts/lib/go-tool."""

from __future__ import annotations

import subprocess
from functools import cache

from . import upstream

GO_TOOL = upstream.REPO_ROOT / "scripts" / "lib" / "go-tool"


class ToolError(Exception):
    pass


@cache
def path(name: str) -> str:
    """Path of the pinned tool NAME, built on first use (a cold build takes minutes)."""
    p = subprocess.run([str(GO_TOOL), name], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise ToolError(f"{name} could not be built by scripts/lib/go-tool:\n{p.stderr.strip()}")
    return p.stdout.strip()
