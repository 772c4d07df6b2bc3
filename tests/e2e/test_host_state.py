"""`python -m e2elib host-state` (the host-unchanged check) and node-mounts' guard, without a
cluster.

host-state must pass on an unchanged host, fail with the difference when a snapshot differs,
and with --running ignore only what a running cluster must have (its netns). node-mounts must
refuse to run in the host's mount namespace (it unmounts /sys and mounts over /run there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from needs import unavailable

E2E = Path(__file__).resolve().parent
HOST_STATE = (sys.executable, "-m", "e2elib", "host-state")


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        unavailable("host-state needs root (iptables-save, nft)")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "PYTHONPATH": str(E2E)}, cwd=E2E,
    )  # fmt: skip


def snapshot(tmp_path: Path) -> Path:
    out = run(*HOST_STATE)
    assert out.returncode == 0, out.stderr
    for section in ("## ip link", "## iptables", "## nft", "## sysctl", "## mounts"):
        assert section in out.stdout
    assert "vm.overcommit_memory = " in out.stdout
    path = tmp_path / "before.txt"
    path.write_text(out.stdout)
    return path


def test_unchanged_host_compares_equal(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    out = run(*HOST_STATE, "--compare", before)
    assert out.returncode == 0, out.stderr
    assert "host unchanged" in out.stderr


def test_a_changed_sysctl_is_reported(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    text = before.read_text()
    line = next(x for x in text.splitlines() if x.startswith("kernel.panic = "))
    before.write_text(text.replace(line, "kernel.panic = 12345"))
    out = run(*HOST_STATE, "--compare", before)
    assert out.returncode == 1
    assert "HOST CHANGED" in out.stderr
    assert "-kernel.panic = 12345" in out.stderr
    assert f"+{line}" in out.stderr


def test_running_allows_only_the_cluster_netns(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    text = before.read_text()
    netns = os.environ.get("E2E_NETNS", "esp-e2e")
    # As if the snapshot had been taken with the cluster running: its netns and mount listed.
    with_cluster = text.replace("## netns\n", f"## netns\n{netns}\n").replace(
        "## mounts\n", f"## mounts\n/run/netns/{netns} nsfs nsfs[net:[1]]\n"
    )
    assert with_cluster != text
    before.write_text(with_cluster)
    assert run(*HOST_STATE, "--compare", before, "--running").returncode == 0
    assert run(*HOST_STATE, "--compare", before).returncode == 1
    before.write_text(with_cluster.replace("## netns\n", "## netns\nsomething-else\n"))
    assert run(*HOST_STATE, "--compare", before, "--running").returncode == 1


def test_node_mounts_refuses_the_hosts_mount_namespace() -> None:
    own_ns = os.readlink("/proc/self/ns/mnt")
    out = subprocess.run(
        [str(E2E / "cluster" / "node-mounts"), own_ns],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "E2E_STATE": "/nonexistent", "E2E_DATA": "/nonexistent"},
    )
    assert out.returncode == 1
    assert "refusing to run in the host's mount namespace" in out.stderr
    assert Path("/sys/fs/cgroup").is_dir()
