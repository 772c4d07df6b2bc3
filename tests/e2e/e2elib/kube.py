"""kubectl on the e2e cluster, from the host: inside the cluster's namespaces (tests/e2e/in-ns)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from .harness import E2E_DIR


class KubeError(RuntimeError):
    pass


def in_ns(argv: list[str]) -> list[str]:
    """argv run inside the cluster's network and mount namespaces (fails if none runs)."""
    return [str(E2E_DIR / "in-ns"), *argv]


def kubectl_argv(*args: str) -> list[str]:
    kubectl = os.environ.get("KUBECTL") or "kubectl"
    return in_ns([kubectl, "--kubeconfig", os.environ["E2E_KUBECONFIG"], *args])


def kubectl(*args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run(
        kubectl_argv(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise KubeError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def get(*args: str) -> dict[str, Any]:
    """kubectl get ... -o json, parsed."""
    data = json.loads(kubectl("get", *args, "-o", "json"))
    if not isinstance(data, dict):
        raise KubeError(f"kubectl get {' '.join(args)}: not an object")
    return data


def items(*args: str) -> list[dict[str, Any]]:
    return list(get(*args).get("items") or [])


def wait_for(what: str, timeout: float, probe: Any, interval: float = 5.0) -> Any:
    """Call probe() until it returns something truthy; KubeError after timeout."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = probe()
            if result:
                return result
        except (KubeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            last_error = f" (last error: {exc})"
        if time.monotonic() >= deadline:
            raise KubeError(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")
        time.sleep(interval)


def psql(sql: str, timeout: float = 60, **variables: str) -> list[list[str]]:
    """Rows of a query, run by psql inside the postgres pod (tab-separated, no header).

    Values go in as psql variables (`:'name'` in sql), never spliced into the text."""
    script = 'exec psql -v ON_ERROR_STOP=1 -XAt -F "\t" -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$@"'
    var_args = [a for k, v in variables.items() for a in ("-v", f"{k}={v}")]
    out = kubectl(
        "-n", "event-pipeline", "exec", "-i", "postgres-0", "-c", "postgres", "--",
        "sh", "-c", script, "psql", *var_args, "-f", "-",
        stdin=sql.rstrip().rstrip(";") + ";\n", timeout=timeout,
    )  # fmt: skip
    return [line.split("\t") for line in out.splitlines() if line]
