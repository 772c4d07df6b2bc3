"""Hold a PostgreSQL table lock from the host, so a loader on the cluster stops mid-load.

A 1M-event load takes about 2 s; deleting its pod "while it loads" by polling is a race the
poller loses. With `rejected_lines` locked (ACCESS EXCLUSIVE, in an open transaction of a psql
inside the postgres pod) a loader has already inserted its `batches` row and COPYed its
per-user totals, uncommitted, when its `COPY rejected_lines` waits for the lock: the pod can
then be deleted at a known point of the load, and the lock released once it is gone.
"""

from __future__ import annotations

import subprocess
import time
from types import TracebackType

from . import kube

PSQL = 'exec psql -v ON_ERROR_STOP=1 -qXAt -U "$POSTGRES_USER" -d "$POSTGRES_DB"'


class TableLock:
    """`with TableLock("rejected_lines"):` holds the lock until the block ends (then COMMIT)."""

    def __init__(self, table: str, timeout: float = 60) -> None:
        self.table = table
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> TableLock:
        argv = kube.kubectl_argv("-n", "event-pipeline", "exec", "-i", "postgres-0",
                                 "-c", "postgres", "--", "sh", "-c", PSQL)  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            f"BEGIN;\nLOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"
        )
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self._end()
            raise kube.KubeError(f"could not lock {self.table}: {line!r}")
        return self

    def _end(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.write("COMMIT;\n")
                self.proc.stdin.close()
            self.proc.wait(self.timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end()


def waiting_loaders(table: str) -> list[list[str]]:
    """(pid, client address, query) of the backends waiting for a lock on `table`."""
    return kube.psql(
        "SELECT a.pid, host(a.client_addr), left(a.query, 60) FROM pg_stat_activity a "
        "JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted "
        "WHERE l.relation = :'t'::regclass",
        t=table,
    )


def wait_for_waiting_loader(table: str, client_ip: str, timeout: float) -> list[str]:
    """The backend of the client at `client_ip` (a pod's IP) once it waits for `table`; other
    loaders (a scheduled run's) may wait too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in waiting_loaders(table):
            if row[1] == client_ip:
                return row
        time.sleep(1)
    raise kube.KubeError(f"no loader from {client_ip} waited for {table} within {timeout:.0f}s")
