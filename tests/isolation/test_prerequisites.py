"""Missing tools stop the scripts with the apt packages to install; nothing is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # An empty PATH (plus bash/coreutils for the shell scripts) hides docker, runc and runsc.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "id", "mkdir", "cat", "flock", "env"):
        os.symlink(
            f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}",
            bindir / tool,
        )
    env = {"PATH": str(bindir), "ESP_DOCKER_DIR": str(tmp_path / "engine")}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_dockerd_up_names_the_packages(tmp_path: Path) -> None:
    proc = run(["/bin/bash", str(REPO / "scripts" / "lib" / "dockerd-up")], tmp_path)
    assert proc.returncode != 0
    assert "apt-get install -y docker.io runc runsc" in proc.stderr
    assert not (tmp_path / "engine" / "docker.pid").exists()


def test_isolation_demo_names_the_packages(tmp_path: Path) -> None:
    proc = run([sys.executable, str(REPO / "scripts" / "isolation-demo")], tmp_path)
    assert proc.returncode == 2
    assert "apt-get install -y docker.io runc runsc debootstrap" in proc.stderr
    for tool in ("docker", "runc", "runsc"):
        assert tool in proc.stderr
