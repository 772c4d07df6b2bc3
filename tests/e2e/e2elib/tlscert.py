"""A throwaway CA and a server certificate for one IP address, made with the openssl CLI.

    python3 -m e2elib.tlscert DIR IP     -> DIR/ca.crt, DIR/server.crt, DIR/server.key

Kept when already there (a second run reuses them: Argo CD keeps trusting the same CA).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DAYS = "30"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make(directory: Path, ip: str) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) in directory, made unless all three exist."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, crt, key = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    if ca.is_file() and crt.is_file() and key.is_file():
        return ca, crt, key
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS,
        "-subj", "/CN=esp-e2e git CA", "-keyout", "ca.key", "-out", "ca.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", DAYS, "-extfile", "server.ext", "-out", "server.crt",
        cwd=directory,
    )  # fmt: skip
    key.chmod(0o600)
    (directory / "ca.key").chmod(0o600)
    return ca, crt, key


if __name__ == "__main__":
    for path in make(Path(sys.argv[1]), sys.argv[2]):
        print(path)
