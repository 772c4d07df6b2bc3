"""Fixtures of the rehearsal: the two images built on the local base, a PostgreSQL server."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from event_pipeline.pgserver import LocalPostgres
from needs import local_postgres

REPO = Path(__file__).resolve().parents[2]
# One Dockerfile (build context: images/); each logical image name in the manifests is a target.
DOCKERFILE = REPO / "images" / "Dockerfile"
IMAGES = ("event-generator", "event-aggregator")


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
    assert DOCKERFILE.is_file(), f"{DOCKERFILE.relative_to(REPO)} is missing"
    for name in IMAGES:
        tag = f"rehearsal/{name}:local"
        proc = subprocess.run(
            [
                "docker",
                "build",
                "--quiet",
                "--tag",
                tag,
                "--file",
                str(DOCKERFILE),
                "--target",
                name,
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
def pg_server() -> Iterator[LocalPostgres]:
    """Password authentication (scram), so the pipeline's PGUSER/PGPASSWORD really matter: a
    step that lost its credentials fails here as it would in the cluster."""
    password = secrets.token_urlsafe(16)
    with local_postgres(dbname="postgres", user="pipeline", password=password) as pg:
        yield pg


@pytest.fixture
def pipeline_secret(pg_server: LocalPostgres) -> dict[str, dict[str, str]]:
    """The Secret `postgres-credentials` as bootstrap would create it, pointing at a fresh
    database (user_totals sums over all batches, so each rehearsal starts empty)."""
    dbname = f"rehearsal_{uuid.uuid4().hex[:10]}"
    pg_server.psql(f'CREATE DATABASE "{dbname}"', dbname="postgres")
    env = pg_server.env(dbname)
    return {"postgres-credentials": {k: env[k] for k in ("PGUSER", "PGPASSWORD", "PGDATABASE")}}
