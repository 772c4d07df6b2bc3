"""A throwaway PostgreSQL server on 127.0.0.1 for the rehearsal, with password auth.

Password authentication (scram) on TCP, so the pipeline's PGUSER/PGPASSWORD really matter:
a step that lost its credentials fails here as it would in the cluster. When run as root the
server runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl (None if absent)."""
    found = sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for d in reversed(found):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bindir: Path
    datadir: Path
    port: int
    user: str
    password: str
    run_as: str | None

    def _cmd(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def stop(self) -> None:
        subprocess.run(
            self._cmd([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start(bindir: Path) -> PgServer:
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            owner = pwd.getpwnam(run_as)
        except KeyError:
            run_as, owner = "nobody", pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="rehearsal-pg-"))
    datadir = top / "data"
    pwfile = top / "pw"
    user, password = "pipeline", secrets.token_urlsafe(16)
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(top, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    server = PgServer(bindir, datadir, _free_port(), user, password, run_as)
    subprocess.run(
        server._cmd(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ]
        ),
        capture_output=True,
        check=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={top}"
    opts += " -c fsync=off -c max_connections=50"
    subprocess.run(
        server._cmd(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-o",
                opts,
                "-l",
                str(top / "log"),
                "-w",
                "start",
            ]
        ),
        capture_output=True,
        check=True,
    )
    return server
