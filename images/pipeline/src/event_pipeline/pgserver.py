"""A throwaway PostgreSQL server from the machine's binaries (for tests, make local, bench).

``initdb`` in a temporary directory, a free TCP port on 127.0.0.1, trust authentication, no
password unless one is given (then scram-sha-256, so clients without it are refused: the
rehearsal relies on that to prove the manifests' credentials matter). PostgreSQL refuses to
run as root, so when we are root the server runs as an unprivileged user (``postgres`` if it
exists, else ``nobody``; ``PGSERVER_RUN_AS`` overrides) through ``runuser``, and the data
directory is handed to that user.

    with LocalPostgres() as pg:            # init + start; stop + delete on exit
        env = {**os.environ, **pg.env()}   # PGHOST, PGPORT, PGUSER, PGDATABASE (+ PGPASSWORD)

Split use (a server that comes up later): ``pg = LocalPostgres(); pg.init(); ...; pg.start()``.
Binaries: ``$PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``, else ``pg_config
--bindir``, else ``PATH``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from types import TracebackType

BINDIR_ENV = "PG_BINDIR"
RUN_AS_ENV = "PGSERVER_RUN_AS"


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> str:
    """Directory holding initdb, pg_ctl and postgres; raise PostgresNotFound otherwise."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates.extend(reversed(versioned))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return bindir
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        f"postgresql (or set {BINDIR_ENV})"
    )


def free_port() -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> str | None:
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(RUN_AS_ENV)
    for name in ([wanted] if wanted else []) + ["postgres", "nobody"]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresNotFound("running as root and no unprivileged user (postgres, nobody) exists")


class LocalPostgres:
    """One disposable PostgreSQL cluster; see the module docstring."""

    def __init__(
        self,
        port: int | None = None,
        dbname: str = "events",
        user: str = "postgres",
        base_dir: str | None = None,
        bindir: str | None = None,
        password: str | None = None,
    ) -> None:
        self.bindir = bindir or find_bindir()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.dbname = dbname
        self.user = user
        self.password = password
        self._base_parent = base_dir
        self.base: str | None = None
        self.datadir = ""
        self.logfile = ""
        self.run_as = _run_as_user()
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------
    def _cmd(self, *argv: str) -> list[str]:
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *argv]
        return list(argv)

    def _bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def init(self) -> None:
        """initdb into a fresh temporary directory (about a second)."""
        self.base = tempfile.mkdtemp(prefix="esp-pg-", dir=self._base_parent)
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "server.log")
        auth = ["--auth=trust"]
        owned = [self.base]  # handed to the unprivileged server user when we are root
        if self.password is not None:
            pwfile = os.path.join(self.base, "pwfile")
            with open(pwfile, "w", encoding="utf-8") as fh:
                fh.write(self.password + "\n")
            auth = [f"--pwfile={pwfile}", "--auth=scram-sha-256"]
            owned.append(pwfile)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            for path in owned:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._cmd(
                self._bin("initdb"),
                "-D",
                self.datadir,
                "-U",
                self.user,
                *auth,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            cwd=self.base,
        )

    def start(self, timeout: int = 60) -> None:
        """Start the server and create the database (initdb first if not done)."""
        if self.base is None:
            self.init()
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} "
            f"-c unix_socket_directories={self.base} -c fsync=off "
            "-c full_page_writes=off -c max_connections=50 -c shared_buffers=64MB"
        )
        proc = subprocess.run(
            self._cmd(
                self._bin("pg_ctl"),
                "-D",
                self.datadir,
                "-l",
                self.logfile,
                "-o",
                options,
                "-w",
                "-t",
                str(timeout),
                "start",
            ),
            capture_output=True,
            text=True,
            cwd=self.base,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start (pg_ctl exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}\n{self.log_tail()}"
            )
        self.running = True
        if self.dbname != "postgres":
            self.psql(f'CREATE DATABASE "{self.dbname}"', dbname="postgres")

    def stop(self) -> None:
        """Stop the server (immediate: it is throwaway); keep the data directory."""
        if self.running and self.datadir:
            subprocess.run(
                self._cmd(self._bin("pg_ctl"), "-D", self.datadir, "-m", "immediate", "-w", "stop"),
                capture_output=True,
                cwd=self.base,
                check=False,
            )
            self.running = False

    def cleanup(self) -> None:
        """Stop if running and delete everything."""
        self.stop()
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> LocalPostgres:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- helpers ---------------------------------------------------------------------------
    def env(self, dbname: str | None = None) -> dict[str, str]:
        """libpq variables for clients of this server."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": dbname or self.dbname,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def dsn(self, dbname: str | None = None) -> str:
        dsn = f"host={self.host} port={self.port} user={self.user} dbname={dbname or self.dbname}"
        return dsn if self.password is None else f"{dsn} password={self.password}"

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run SQL with psql (no Python driver needed); return its unaligned output."""
        proc = subprocess.run(
            [
                self._bin("psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-d",
                self.dsn(dbname),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""
