"""The harness's Git server: a real `git clone` over HTTPS works, a push is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2elib import gitserver, tlscert


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing (Debian package openssl)")
    ca, crt, key = tlscert.make(tmp_path / "tls", "127.0.0.1")
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "e2e", cwd=work)
    (work / "file.txt").write_text("served\n")
    _git("add", "file.txt", cwd=work)
    _git("commit", "-qm", "first", cwd=work)
    root = tmp_path / "git"
    _git("clone", "-q", "--bare", str(work), str(root / "repo.git"))
    srv = gitserver.make_server(str(root), "127.0.0.1", 0, str(crt), str(key))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    env = {**os.environ, "GIT_SSL_CAINFO": str(ca), "GIT_TERMINAL_PROMPT": "0"}
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}/repo.git", work, env
    finally:
        srv.shutdown()
        srv.server_close()


def test_clone_over_https_checks_the_certificate(
    server: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    url, _work, env = server
    _git("clone", "-q", "-b", "e2e", url, str(tmp_path / "clone"), env=env)
    assert (tmp_path / "clone" / "file.txt").read_text() == "served\n"
    heads = _git("ls-remote", "--heads", url, env=env)
    assert heads.strip().endswith("refs/heads/e2e")
    untrusted = {k: v for k, v in env.items() if k != "GIT_SSL_CAINFO"}
    proc = subprocess.run(
        ["git", "ls-remote", url], env=untrusted, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "certificate" in proc.stderr.lower()


def test_push_is_refused(server: tuple[str, Path, dict[str, str]]) -> None:
    url, work, env = server
    (work / "file.txt").write_text("changed\n")
    _git("commit", "-qam", "second", cwd=work)
    proc = subprocess.run(
        ["git", "push", url, "e2e"], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "403" in proc.stderr


def test_parse_cgi_response() -> None:
    status, headers, body = gitserver.parse_cgi_response(
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope"
    )
    assert (status, headers, body) == (404, [("Content-Type", "text/plain")], b"nope")
    assert gitserver.is_fetch_request("GET", "/r.git/info/refs", "service=git-upload-pack")
    assert not gitserver.is_fetch_request("GET", "/r.git/info/refs", "service=git-receive-pack")
    assert not gitserver.is_fetch_request("POST", "/r.git/git-receive-pack", "")
