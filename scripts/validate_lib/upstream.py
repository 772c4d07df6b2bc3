"""Pinned upstream files: where a pinned URL lives locally, downloading only as a fallback.

Nothing is downloaded when the sibling `../shared/upstream/` holds the file. Otherwise the same
pinned URL is fetched once into `.cache/upstream/` (gitignored) and reused.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_upstream() -> Path:
    """$VALIDATE_UPSTREAM_DIR, else ../shared/upstream next to this checkout, else next to the
    checkout this one was cloned from when that is a local path (CI's clean clone)."""
    env = os.environ.get("VALIDATE_UPSTREAM_DIR")
    if env:
        return Path(env)
    here = REPO_ROOT.parent / "shared" / "upstream"
    if here.is_dir():
        return here
    try:
        origin = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        origin = ""
    if origin.startswith("file://"):
        origin = origin[len("file://") :]
    if origin.startswith("/"):
        cand = Path(origin).resolve().parent / "shared" / "upstream"
        if cand.is_dir():
            return cand
    return here


SHARED_UPSTREAM = _shared_upstream()
CACHE_DIR = Path(os.environ.get("VALIDATE_CACHE_DIR", str(REPO_ROOT / ".cache"))) / "upstream"

AW = "argo-workflows-v4.0.5"
ACD = "argo-cd-v3.6.2"
_AW_RAW = "https://raw.githubusercontent.com/argoproj/argo-workflows/v4.0.5"
_ACD_RAW = "https://raw.githubusercontent.com/argoproj/argo-cd/v3.6.2"

AW_CRD_FILES = (
    "argoproj.io_clusterworkflowtemplates.yaml",
    "argoproj.io_cronworkflows.yaml",
    "argoproj.io_workflowartifactgctasks.yaml",
    "argoproj.io_workfloweventbindings.yaml",
    "argoproj.io_workflows.yaml",
    "argoproj.io_workflowtaskresults.yaml",
    "argoproj.io_workflowtasksets.yaml",
    "argoproj.io_workflowtemplates.yaml",
)
ACD_CRD_FILES = ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")

# Explicit map: pinned URL -> path under shared/upstream. Only these URLs may appear as remote
# resources in a kustomization; anything else is reported (it would be fetched unpinned).
_AW_REL = "https://github.com/argoproj/argo-workflows/releases/download/v4.0.5"
_ACD_REL = "https://github.com/argoproj/argo-cd/releases/download/v3.6.2"
PINNED: dict[str, str] = {
    f"{_AW_REL}/quick-start-minimal.yaml": f"{AW}/quick-start-minimal.yaml",
    f"{_AW_RAW}/api/jsonschema/schema.json": f"{AW}/schema.json",
    f"{_ACD_RAW}/manifests/install.yaml": f"{ACD}/install.yaml",
    f"{_ACD_REL}/install.yaml": f"{ACD}/install.yaml",
}
PINNED.update({f"{_AW_RAW}/manifests/base/crds/full/{f}": f"{AW}/crds/{f}" for f in AW_CRD_FILES})
PINNED.update({f"{_ACD_RAW}/manifests/crds/{f}": f"{ACD}/crds/{f}" for f in ACD_CRD_FILES})

# The URL each shared path is downloaded from when shared/ is absent (first URL wins).
_URL_OF: dict[str, str] = {}
for _url, _rel in PINNED.items():
    _URL_OF.setdefault(_rel, _url)


DOWNLOAD_TIMEOUT = 60


class UpstreamError(Exception):
    """A pinned file is neither in shared/upstream nor downloadable (the message says what to do;
    scripts/validate prints it as its one line and exits 2)."""


def url_for(rel: str) -> str:
    return _URL_OF[rel]


def local_path(rel: str) -> Path:
    """Local copy of a pinned upstream file (shared/upstream first, then the download cache)."""
    shared = SHARED_UPSTREAM / rel
    if shared.is_file():
        return shared
    cached = CACHE_DIR / rel
    if cached.is_file():
        return cached
    url = _URL_OF.get(rel)
    if url is None:
        raise UpstreamError(f"{rel} is not a pinned upstream file")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:  # noqa: S310 (pinned)
            tmp.write_bytes(resp.read())
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UpstreamError(
            f"the pinned upstream file {rel} is not in {SHARED_UPSTREAM} and downloading {url} "
            f"failed ({reason}): connect to the network once (downloads are kept in {CACHE_DIR}) "
            "or set VALIDATE_UPSTREAM_DIR to a folder holding the pinned files "
            "(docs/validation.md, 'Pinned upstream files')"
        ) from exc
    tmp.replace(cached)
    return cached


def is_remote(ref: str) -> bool:
    """True for kustomize resource entries that kustomize would fetch over the network."""
    return "://" in ref or ref.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
