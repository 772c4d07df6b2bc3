"""The probe on the test machine itself (no container): contract of its output and marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from event_pipeline import isolation_probe as ip

PROBE = [sys.executable, "-m", "event_pipeline.isolation_probe"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PROBE, *args], capture_output=True, text=True, timeout=60, check=False)


def test_one_json_line_and_marker_read_back(tmp_path: Path) -> None:
    proc = run("--variant", "A", "--host-dir", str(tmp_path), "--run-id", "t-1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["variant"] == "A" and doc["run_id"] == "t-1"
    assert doc["write_ok"] is True and doc["marker"]["read_back_ok"] is True
    assert doc["kernel"]["release"] == os.uname().release
    marker = json.loads((tmp_path / "marker-t-1-A.json").read_text())
    assert marker["nonce"] == doc["nonce"]
    assert "marker" not in marker  # it cannot know its own write status
    for key in ("kallsyms", "sys_kernel", "mount_tmpfs", "mknod", "sysrq_trigger", "host_mount"):
        assert key in doc["probes"]
    assert "isolation-probe variant=A" in proc.stderr


def test_failed_write_is_a_result_not_a_failure(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    proc = run("--variant", "B", "--host-dir", str(missing), "--run-id", "t-2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["write_ok"] is False
    assert doc["marker"]["write_error"]["errno"] == "ENOENT"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "-x"])
def test_run_id_cannot_escape_the_directory(tmp_path: Path, bad: str) -> None:
    proc = run("--variant", "A", "--host-dir", str(tmp_path), f"--run-id={bad}")
    assert proc.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_sysrq_is_only_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    real_open = os.open

    def fake_open(path: str, flags: int, *a: int) -> int:
        if path == "/proc/sysrq-trigger":
            calls.append((path, flags))
            return real_open(os.devnull, os.O_WRONLY)
        return real_open(path, flags, *a)

    def no_write(fd: int, data: bytes) -> int:
        raise AssertionError("the probe must never write to /proc/sysrq-trigger")

    monkeypatch.setattr("os.open", fake_open)
    monkeypatch.setattr("os.write", no_write)
    assert ip.probe_sysrq() == {"open_write_ok": True}
    assert calls == [("/proc/sysrq-trigger", os.O_WRONLY)]


def test_gvisor_signature() -> None:
    assert ip.gvisor_signature({"dmesg": {"first_line": "[0.0] Starting gVisor..."}})
    assert ip.gvisor_signature({"release": "4.19.0-gvisor"})
    assert not ip.gvisor_signature({"release": "6.1.0", "dmesg": {"first_line": None}})


def test_host_mount_view_of_a_path() -> None:
    view = ip.probe_host_mount("/")
    assert view["mount_point"] == "/" and view["dedicated_mount"] is True
