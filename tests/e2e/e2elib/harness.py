"""What every stage shares: lib.sh's names and the build's outputs, the harness's log line.

The names (E2E_STATE, E2E_NODE_IP, ...) are lib.sh's and the binaries and images build.env's:
`load_env` sources both in bash, as the bash scripts do, and puts what they set into os.environ,
so the Python stages and everything they start see the same values (one definition of each).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = E2E_DIR.parents[1]
# set -a: every variable lib.sh and build.env assign is exported; build.env only once built.
_SOURCE = 'set -a; source "$1"; B="$E2E_CACHE/build.env"; [[ ! -r $B ]] || source "$B"; env -0'
_SHELL_OWN = {"_", "SHLVL", "PWD", "OLDPWD"}


class Failed(Exception):
    """A stage cannot go on; the message says why (printed as the harness's ERROR line)."""


def load_env() -> None:
    out = subprocess.run(
        ["bash", "-c", _SOURCE, "load-env", str(E2E_DIR / "lib.sh")],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    for entry in out.decode().split("\0"):
        name, sep, value = entry.partition("=")
        if sep and name not in _SHELL_OWN:
            os.environ[name] = value
    # The processes a stage starts (the browser, the webhook's hook) import e2elib too.
    path = os.environ.get("PYTHONPATH")
    if str(E2E_DIR) not in (path or "").split(":"):
        os.environ["PYTHONPATH"] = f"{E2E_DIR}:{path}" if path else str(E2E_DIR)


def need(*names: str) -> None:
    """Fail unless build.env set each name (the stage needs the build)."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        cache = os.environ.get("E2E_CACHE", "/var/cache/esp-e2e")
        raise Failed(f"{', '.join(missing)} not set: is {cache}/build.env there? (tests/e2e/build)")


def state() -> Path:
    return Path(os.environ["E2E_STATE"])


def log(message: str) -> None:
    """lib.sh's e2e_log: `HH:MM:SS e2e: message` on stderr."""
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} e2e: {message}", file=sys.stderr, flush=True)
