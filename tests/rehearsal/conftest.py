"""Fixtures of the rehearsal: the two images built on the local base, a PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .pgserver import PgServer, pg_bindir, start

REPO = Path(__file__).resolve().parents[2]
# logical image name (as in the manifests) -> Dockerfile (build context: images/)
IMAGES = {
    "event-generator": REPO / "images" / "generator" / "Dockerfile",
    "event-aggregator": REPO / "images" / "aggregator" / "Dockerfile",
}


def unavailable(reason: str) -> NoReturn:
    """Fail in CI (every layer must run there), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


HOST_CAS = Path("/usr/local/share/ca-certificates")
CA_BASE = "local/python-base-hostca:bookworm"


def build_base(docker_engine: dict[str, str], base_image: str) -> str:
    """The base the images are built on. Where this host trusts extra CAs (an egress proxy
    that re-signs TLS, as on this machine), pip inside `docker build` must trust them too:
    a derived base adds them (only locally; the published images never see them). Elsewhere
    (a GitHub runner) the base is used as it is."""
    cas = sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []
    if not cas:
        return base_image
    with tempfile.TemporaryDirectory() as ctx:
        for ca in cas:
            shutil.copy(ca, Path(ctx) / ca.name)
        (Path(ctx) / "Dockerfile").write_text(
            f"FROM {base_image}\n"
            "COPY *.crt /usr/local/share/ca-certificates/\n"
            "RUN update-ca-certificates\n"
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
        )
        proc = subprocess.run(
            ["docker", "build", "--quiet", "--tag", CA_BASE, ctx],
            env=docker_engine,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, f"derived base with host CAs failed:\n{proc.stderr}"
    return CA_BASE


@pytest.fixture(scope="session")
def pipeline_images(docker_engine: dict[str, str], base_image: str) -> dict[str, str]:
    """Both images built from this checkout on the locally made base (nothing pulled)."""
    base = build_base(docker_engine, base_image)
    built: dict[str, str] = {}
    for name, dockerfile in IMAGES.items():
        assert dockerfile.is_file(), f"{dockerfile.relative_to(REPO)} is missing"
        tag = f"rehearsal/{name}:local"
        proc = subprocess.run(
            [
                "docker",
                "build",
                "--quiet",
                "--tag",
                tag,
                "--file",
                str(dockerfile),
                "--build-arg",
                f"BASE_IMAGE={base}",
                str(REPO / "images"),
            ],
            env=docker_engine,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert proc.returncode == 0, f"docker build of {name} failed:\n{proc.stdout}\n{proc.stderr}"
        built[name] = tag
    return built


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = pg_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    server = start(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pipeline_secret(pg_server: PgServer) -> dict[str, dict[str, str]]:
    """The Secret `postgres-credentials` as bootstrap would create it, pointing at a fresh
    database (user_totals sums over all batches, so each rehearsal starts empty)."""
    import psycopg2  # the package's own runtime dependency, installed in .venv

    dbname = f"rehearsal_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=pg_server.port,
        user=pg_server.user,
        password=pg_server.password,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{dbname}"')
    conn.close()
    return {
        "postgres-credentials": {
            "PGUSER": pg_server.user,
            "PGPASSWORD": pg_server.password,
            "PGDATABASE": dbname,
        }
    }
