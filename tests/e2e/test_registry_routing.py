"""The e2e cluster's registry routing (tests/e2e/lib.sh, tests/e2e/cluster/configs).

Images the repository deploys are pushed to the node's registry as REGISTRY/<upstream host>/<path>
and containerd pulls them by their upstream names through one hosts.toml per upstream host. These
tests run the harness's own bash (no cluster, no network): the ref -> registry path mapping, the
hosts.toml containerd reads, and the configuration cluster/configs writes.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

E2E = Path(__file__).resolve().parent
REPO = E2E.parent.parent
NODE_IP = "10.250.0.2"
REGISTRY = f"{NODE_IP}:5000"
UPSTREAMS = ["quay.io", "ghcr.io", "docker.io", "public.ecr.aws", "registry.k8s.io"]
# The distribution spec's repository name grammar (path components joined by "/").
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*")
IMAGE_FIELD = re.compile(r"^\s*(?:- )?image:\s*[\"']?([^\s\"']+)", re.M)


def lib(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT in bash after sourcing lib.sh (arguments as $1...)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("E2E_")}
    full_env.update({"E2E_NODE_IP": NODE_IP, **(env or {})})
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{E2E}/lib.sh"; {script}', "lib", *args],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
    )  # fmt: skip


def registry_ref(ref: str) -> str:
    done = lib('e2e_registry_ref "$1"', ref)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("quay.io/argoproj/argocd:v3.6.2", "quay.io/argoproj/argocd:v3.6.2"),
        (
            "ghcr.io/sandboxed-event-pipeline/event-generator:0.1.0",
            "ghcr.io/sandboxed-event-pipeline/event-generator:0.1.0",
        ),
        ("docker.io/library/postgres:17.6-bookworm", "docker.io/library/postgres:17.6-bookworm"),
        (
            "public.ecr.aws/docker/library/redis:8.10.1-alpine",
            "public.ecr.aws/docker/library/redis:8.10.1-alpine",
        ),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        # Docker Hub's short names, spelled out as containerd spells them.
        ("postgres:17", "docker.io/library/postgres:17"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ],
)
def test_ref_maps_under_its_upstream_host(ref: str, expected: str) -> None:
    dest = registry_ref(ref)
    assert dest == f"{REGISTRY}/{expected}"
    repository = dest.removeprefix(f"{REGISTRY}/").rsplit(":", 1)[0]
    assert REPOSITORY.fullmatch(repository), f"not a valid repository name: {repository}"


def test_same_path_under_two_hosts_does_not_collide() -> None:
    a = registry_ref("quay.io/library/redis:8")
    b = registry_ref("docker.io/library/redis:8")
    c = registry_ref("public.ecr.aws/library/redis:8")
    assert len({a, b, c}) == 3


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("gcr.io/distroless/static:nonroot", "no hosts.toml routes gcr.io"),
        ("localhost:5000/x:1", "no hosts.toml routes localhost:5000"),
        ("quay.io/argoproj/argocd@sha256:" + "0" * 64, "by digest"),
    ],
)
def test_unroutable_refs_fail(ref: str, error: str) -> None:
    done = lib('e2e_registry_ref "$1"', ref)
    assert done.returncode != 0
    assert error in done.stderr


def test_every_upstream_image_the_repository_names_is_routed() -> None:
    """The image fields of the manifests (base, overlays, infrastructure, the harness's copies)."""
    refs: set[str] = set()
    for top in ("base", "overlays", "infrastructure", "tests/e2e/harness"):
        for path in sorted((REPO / top).rglob("*.yaml")):
            for match in IMAGE_FIELD.finditer(path.read_text()):
                ref = match.group(1)
                if "/" in ref and "." in ref.split("/", 1)[0] and "$" not in ref:
                    refs.add(ref)
    assert refs, "no image with a registry host found in the manifests"
    for ref in sorted(refs):
        assert registry_ref(ref).startswith(f"{REGISTRY}/{ref.split('/', 1)[0]}/")


def hosts_toml(upstream: str) -> dict[str, object]:
    done = lib('e2e_registry_hosts_toml "$1" "$2"', upstream, "/run/esp-e2e/certs/registry/ca.crt")
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_hosts_toml_sends_pulls_to_the_registry_only(upstream: str) -> None:
    config = hosts_toml(upstream)
    # The registry is the `server`: with [host] tables only, containerd would try the upstream
    # itself after them.
    assert "host" not in config
    assert config == {
        "server": f"https://{REGISTRY}/v2/{upstream}",
        "override_path": True,
        "capabilities": ["pull", "resolve"],
        "ca": "/run/esp-e2e/certs/registry/ca.crt",
    }


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cluster/configs run against a made-up build.env, into a temporary E2E_STATE."""
    tmp = tmp_path_factory.mktemp("e2e")
    cache, state = tmp / "cache", tmp / "state"
    cache.mkdir()
    bins = {
        "KUBE_BIN_DIR": "/x/k",
        "KUBECTL": "/x/k/kubectl",
        "CONTAINERD_BIN_DIR": "/x/c",
        "RUNSC": "/x/runsc",
        "CONTAINERD_SHIM_RUNSC": "/x/shim",
        "REGISTRY": "/x/registry",
        "IMAGES_LIST": "/x/images.list",
        "PAUSE_IMAGE": "esp.local/e2e/pause:esp-1",
    }
    (cache / "build.env").write_text("".join(f"{k}={v}\n" for k, v in bins.items()))
    done = lib(
        '"$E2E_DIR/cluster/configs"',
        env={"E2E_CACHE": str(cache), "E2E_STATE": str(state)},
    )
    assert done.returncode == 0, done.stderr
    return state


def test_containerd_reads_the_hosts_files(configs: Path) -> None:
    containerd = tomllib.loads((configs / "config" / "containerd.toml").read_text())
    assert containerd["version"] == 3
    images = containerd["plugins"]["io.containerd.cri.v1.images"]
    hosts_dir = Path(images["registry"]["config_path"])
    assert hosts_dir == configs / "config" / "certs.d"
    assert sorted(p.name for p in hosts_dir.iterdir()) == sorted(UPSTREAMS)
    for upstream in UPSTREAMS:
        config = tomllib.loads((hosts_dir / upstream / "hosts.toml").read_text())
        assert config["server"] == f"https://{REGISTRY}/v2/{upstream}"
        assert config["ca"] == str(configs / "certs" / "registry" / "ca.crt")


def test_registry_config(configs: Path) -> None:
    config = yaml.safe_load((configs / "config" / "registry.yml").read_text())
    assert config["http"]["addr"] == REGISTRY
    assert config["http"]["tls"] == {
        "certificate": str(configs / "certs" / "registry" / "server.crt"),
        "key": str(configs / "certs" / "registry" / "server.key"),
    }
    # The node's /var/lib (E2E_DATA/var-lib on the host): thrown away by tests/e2e/stop.
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["log"]["accesslog"] == {"disabled": False}


def test_registry_module_pins_the_version_of_versions_env() -> None:
    """Like test_build_pins.py's pins: modules/registry/go.mod and REGISTRY_VERSION agree."""
    pinned = re.search(r"^REGISTRY_VERSION=(\S+)$", (E2E / "versions.env").read_text(), re.M)
    go_mod = (E2E / "modules" / "registry" / "go.mod").read_text()
    module = "github.com/distribution/distribution/v3"
    required = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", go_mod, re.M)
    assert pinned and required and required.group(1) == pinned.group(1)
    assert re.search(rf"^tool {re.escape(module)}/cmd/registry$", go_mod, re.M)
    assert (E2E / "modules" / "registry" / "go.sum").is_file()
