"""tests/e2e/versions.env and the wrapper modules in tests/e2e/modules/ pin the same versions.

tests/e2e/build checks this too before building (with `go list`); this test catches a drift in
`make test` already, without Go or a network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

E2E = Path(__file__).resolve().parent
MODULES = E2E / "modules"

# versions.env variable -> (wrapper module directory, upstream module path)
PINS = {
    "KUBERNETES_VERSION": ("kubernetes", "k8s.io/kubernetes"),
    "ETCD_VERSION": ("etcd", "go.etcd.io/etcd/server/v3"),
    "GVISOR_VERSION": ("gvisor", "gvisor.dev/gvisor"),
    "CONTAINERD_VERSION": ("containerd", "github.com/containerd/containerd/v2"),
    "COREDNS_VERSION": ("coredns", "github.com/coredns/coredns"),
    "LOCAL_PATH_PROVISIONER_VERSION": (
        "local-path-provisioner",
        "github.com/rancher/local-path-provisioner",
    ),
    "KUBE_ROUTER_VERSION": ("kube-router", "github.com/cloudnativelabs/kube-router/v2"),
    "KUSTOMIZE_VERSION": ("kustomize", "sigs.k8s.io/kustomize/kustomize/v5"),
    "ARGO_WORKFLOWS_VERSION": ("argo-workflows", "github.com/argoproj/argo-workflows/v4"),
    "ARGOCD_VERSION": ("argo-cd", "github.com/argoproj/argo-cd/v3"),
}


def versions_env() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (E2E / "versions.env").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"not KEY=VALUE: {line!r}"
        assert not re.search(r"[\s$`'\"]", value), f"{key}: keep values plain: {value!r}"
        pins[key] = value
    return pins


def required_version(go_mod: Path, module: str) -> str:
    """The version go.mod requires of `module` (a `replace` to a version wins)."""
    text = go_mod.read_text()
    replaced = re.search(
        rf"^\s*(?:replace\s+)?{re.escape(module)}\s+=>\s+\S+\s+(v\S+)\s*$", text, re.M
    )
    if replaced:
        return replaced.group(1)
    required = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    assert required, f"{go_mod} does not require {module}"
    return required.group(1)


@pytest.mark.parametrize("var", sorted(PINS))
def test_versions_env_matches_wrapper_module(var: str) -> None:
    directory, module = PINS[var]
    go_mod = MODULES / directory / "go.mod"
    assert (MODULES / directory / "go.sum").is_file(), f"{directory}: go.sum is missing"
    assert required_version(go_mod, module) == versions_env()[var]


def test_argo_server_builds_the_same_argo_workflows() -> None:
    go_mod = MODULES / "argo-server" / "go.mod"
    module = "github.com/argoproj/argo-workflows/v4"
    assert re.search(
        rf"^\s*(?:replace\s+)?{re.escape(module)}\s+=>\s+\./src\s*$", go_mod.read_text(), re.M
    )
    text = go_mod.read_text()
    required = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.M)
    assert required and required.group(1) == versions_env()["ARGO_WORKFLOWS_VERSION"]


def test_gvisor_shim_builds_the_same_gvisor() -> None:
    text = (MODULES / "gvisor-shim" / "go.mod").read_text()
    module = "gvisor.dev/gvisor"
    assert re.search(rf"^\s*replace\s+{re.escape(module)}\s+=>\s+\./src\s*$", text, re.M)
    required = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.M)
    assert required and required.group(1) == versions_env()["GVISOR_VERSION"]
    assert (MODULES / "gvisor" / "shim-oom-score.patch").is_file()


def test_every_wrapper_module_builds_with_tools_pinned() -> None:
    for go_mod in sorted(MODULES.glob("*/go.mod")):
        text = go_mod.read_text()
        own_main = (go_mod.parent / "main.go").is_file()
        assert own_main or re.search(r"^tool\b", text, re.M), (
            f"{go_mod}: no `tool` directive to pin (nor a main.go of its own)"
        )
        assert "=> ../" not in text and "=> /" not in text, f"{go_mod}: replace outside the module"


def corefile_plugins() -> set[str]:
    """The plugins the cluster's Corefile uses: the first word of each line one level deep."""
    addon = yaml.safe_load_all((E2E / "cluster" / "addons" / "coredns.yaml").read_text())
    corefile = next(d for d in addon if d and d["kind"] == "ConfigMap")["data"]["Corefile"]
    plugins: set[str] = set()
    depth = 0
    for line in corefile.splitlines():
        words = line.split()
        if words and depth == 1 and words[0] != "}":
            plugins.add(words[0])
        depth += line.count("{") - line.count("}")
    return plugins


def test_coredns_links_every_plugin_its_corefile_uses() -> None:
    imported = set(
        re.findall(r'"github.com/coredns/coredns/plugin/([a-z0-9_]+)"',
                   (MODULES / "coredns" / "main.go").read_text())
    )  # fmt: skip
    # The directive `prometheus` is the package plugin/metrics; the others share their name.
    used = {"metrics" if p == "prometheus" else p for p in corefile_plugins()}
    assert {"kubernetes", "health", "ready", "metrics"} <= used, used
    assert used <= imported, f"CoreDNS is built without {sorted(used - imported)}"


ARGO_UI_GIT = "git+https://github.com/argoproj/argo-ui.git#"


def module_file(directory: str, module: str, version: str, name: str, tmp: Path) -> str:
    """NAME in MODULE@VERSION: from the copy tests/e2e/build makes (modules/DIRECTORY/src) if it is
    of that version; else, in CI (where the build running beside `make test` may not have made it
    yet), from the module zip `go mod download` fetches, as the build does; else the test skips."""
    src = MODULES / directory / "src"
    marker = src / ".esp-source"
    if marker.is_file() and marker.read_text().strip() == f"{module}@{version}":
        return (src / name).read_text()
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"no {src} of {version} (made by tests/e2e/build: argo-workflows, argo-cd)")
    go = shutil.which("go")
    assert go, f"CI=true and no go to read {name} from {module}@{version}"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": ""}
    # Outside any module: the wrapper modules replace MODULE by ./src. A module needing a newer Go
    # (Argo CD) is downloaded but reported as an error: its zip is there all the same.
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    zip_path = json.loads(proc.stdout or "{}").get("Zip", "")
    assert zip_path and Path(zip_path).is_file(), f"go mod download {module}@{version}: {proc}"
    with zipfile.ZipFile(zip_path) as archive:
        return archive.read(f"{module}@{version}/{name}").decode()


def test_argo_workflows_ui_is_built_with_the_argo_ui_commit_it_pins(tmp_path: Path) -> None:
    """tests/e2e/build replaces the UI's argo-ui git URL (unreachable here) by a file: copy of
    ARGO_WORKFLOWS_ARGO_UI: that must be the commit Argo Workflows' ui/package.json pins."""
    pins = versions_env()
    package = json.loads(
        module_file("argo-server", "github.com/argoproj/argo-workflows/v4",
                    pins["ARGO_WORKFLOWS_VERSION"], "ui/package.json", tmp_path)
    )  # fmt: skip
    assert package["dependencies"]["argo-ui"] == ARGO_UI_GIT + pins["ARGO_WORKFLOWS_ARGO_UI"]


def test_argo_cd_ui_names_the_pnpm_the_build_installs(tmp_path: Path) -> None:
    """Argo CD's UI is built with the pnpm its ui/package.json names (PNPM_VERSION), and its
    argo-ui is a git URL of a commit, which the build replaces by a file: copy of ARGOCD_ARGO_UI
    (the nearest reachable: the pinned one is not)."""
    pins = versions_env()
    package = json.loads(
        module_file("argo-cd", "github.com/argoproj/argo-cd/v3", pins["ARGOCD_VERSION"],
                    "ui/package.json", tmp_path)
    )  # fmt: skip
    assert package["packageManager"] == f"pnpm@{pins['PNPM_VERSION']}"
    assert re.fullmatch(re.escape(ARGO_UI_GIT) + "[0-9a-f]{40}", package["dependencies"]["argo-ui"])
    assert re.fullmatch("[0-9a-f]{40}", pins["ARGOCD_ARGO_UI"])
