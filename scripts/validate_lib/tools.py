"""The Go tools the gate runs (kubeconform, argo), built once by scripts/lib/go-tool."""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

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


def run_over(name: str, args: list[str], objs: list[Any]) -> subprocess.CompletedProcess[str]:
    """Tool NAME with ARGS over a directory holding each of OBJS as `<its index>.json` (the
    directory is the last argument): its findings name the file, so the index finds the object."""
    with tempfile.TemporaryDirectory(prefix=f"validate-{name}-") as tmp:
        for i, obj in enumerate(objs):
            Path(tmp, f"{i}.json").write_text(json.dumps(obj))
        cmd = [path(name), *args, tmp]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
