"""Pinned upstream files: shared/upstream first, else one download of the pinned URL, cached."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from validate_lib import upstream


def test_every_pinned_url_names_the_pinned_release() -> None:
    for url, rel in upstream.PINNED.items():
        assert url.startswith("https://")
        assert ("v4.0.5" in url and rel.startswith(upstream.AW)) or (
            "v3.6.2" in url and rel.startswith(upstream.ACD)
        )


def test_shared_copy_is_used_without_network(tmp_path: Path, monkeypatch: Any) -> None:
    rel = f"{upstream.AW}/quick-start-minimal.yaml"
    shared = tmp_path / "shared"
    (shared / upstream.AW).mkdir(parents=True)
    (shared / rel).write_text("kind: List\n")
    monkeypatch.setattr(upstream, "SHARED_UPSTREAM", shared)
    monkeypatch.setattr(upstream, "CACHE_DIR", tmp_path / "cache")

    def no_network(*_a: Any, **_k: Any) -> None:
        raise AssertionError("downloaded although shared/upstream has the file")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    assert upstream.local_path(rel) == shared / rel


def test_download_fallback_fetches_pinned_url_once(tmp_path: Path, monkeypatch: Any) -> None:
    rel = f"{upstream.ACD}/install.yaml"
    monkeypatch.setattr(upstream, "SHARED_UPSTREAM", tmp_path / "absent")
    monkeypatch.setattr(upstream, "CACHE_DIR", tmp_path / "cache")
    fetched: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        fetched.append(url)
        return io.BytesIO(b"apiVersion: v1\nkind: List\nitems: []\n")

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    first = upstream.local_path(rel)
    second = upstream.local_path(rel)
    assert first == second == tmp_path / "cache" / rel
    assert fetched == [upstream.url_for(rel)]
    assert upstream.PINNED[fetched[0]] == rel


def test_unpinned_file_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(upstream, "SHARED_UPSTREAM", tmp_path / "absent")
    monkeypatch.setattr(upstream, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(upstream.UpstreamError):
        upstream.local_path("argo-workflows-v9.9.9/install.yaml")


def test_gate_without_upstream_or_network_says_what_is_missing_in_one_line(
    tmp_path: Path,
) -> None:
    """No ../shared/upstream and no network: one line naming the file, the URL and the two ways
    out, exit 2, no traceback. The network is cut by a proxy on a closed port."""
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "https_proxy")}
    env |= {
        "VALIDATE_UPSTREAM_DIR": str(tmp_path / "no-shared-upstream"),
        "VALIDATE_CACHE_DIR": str(tmp_path / "cache"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    p = subprocess.run(
        [
            sys.executable,
            str(repo / "scripts" / "validate"),
            "--no-checkov",
            str(repo / "tests" / "validate" / "fixtures" / "_good"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stdout + p.stderr, p.stderr
    line = lines[0]
    assert line.startswith("scripts/validate: the pinned upstream file ")
    assert str(tmp_path / "no-shared-upstream") in line
    assert "https://raw.githubusercontent.com/argoproj/" in line
    assert "connect to the network once" in line and "VALIDATE_UPSTREAM_DIR" in line
