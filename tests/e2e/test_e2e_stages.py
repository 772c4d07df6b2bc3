"""`python -m e2elib STAGE` without a cluster: its arguments, the names it takes from lib.sh, the
report it merges into, how a break is judged, and the host comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2elib import __main__ as cli
from e2elib import breaks, checks, host_state, report, served

E2E = Path(__file__).resolve().parent


def test_arguments_of_each_stage() -> None:
    p = cli.parser()
    assert p.parse_args(["check", "in Chromium", "pipeline"]).words == ["in Chromium", "pipeline"]
    assert p.parse_args(["check"]).words == []
    assert p.parse_args(["breaks", "wrong-serviceaccount"]).names == ["wrong-serviceaccount"]
    host = p.parse_args(["host-state", "--compare", "/tmp/before", "--running"])
    assert (host.compare, host.running) == (Path("/tmp/before"), True)
    assert p.parse_args(["host-state"]).compare is None
    stages = p.parse_args(["report", "stages", "build=6", "cluster-check=27"])
    assert stages.seconds == [("build", 6), ("cluster-check", 27)]
    assert p.parse_args(["report", "failed", "deploy"]).at == "deploy"
    assert p.parse_args(["report", "markdown"]).path is None


@pytest.mark.parametrize(
    "argv",
    [[], ["nonsense"], ["report"], ["report", "stages", "build=six"], ["report", "stages", "6"]],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(argv)
    assert exc.value.code == 2


def _load_env(**env: str) -> dict[str, str]:
    """The environment a stage sees after load_env (in a child: it changes os.environ)."""
    code = "import json, os; from e2elib import harness; harness.load_env(); "
    code += "print(json.dumps(dict(os.environ)))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("E2E_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": "", **env},
        cwd=E2E,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: dict[str, str] = json.loads(out.stdout)
    return loaded


def test_the_stages_take_lib_sh_names_and_respect_overrides(tmp_path: Path) -> None:
    (tmp_path / "build.env").write_text("KUBECTL=/opt/kubectl\nARGOCD_UI='built, as said'\n")
    env = _load_env(E2E_CACHE=str(tmp_path), E2E_GIT_PORT="9443")
    assert env["E2E_GIT_PORT"] == "9443"
    assert env["E2E_STATE"] == "/run/esp-e2e" and env["E2E_NETNS"] == "esp-e2e"
    assert env["E2E_KUBECONFIG"] == "/run/esp-e2e/kubeconfig"
    assert env["E2E_DIR"] == str(E2E)
    assert env["KUBECTL"] == "/opt/kubectl" and env["ARGOCD_UI"] == "built, as said"
    assert env["PYTHONPATH"] == str(E2E)  # for the processes a stage starts
    assert "KUBECTL" not in _load_env(E2E_CACHE=str(tmp_path / "none"))


def _report(path: Path, **data: object) -> Path:
    path.write_text(json.dumps({"mode": "deployed", "ok": True, "checks": [], **data}))
    return path


def test_stage_times_are_added_to_the_report(tmp_path: Path) -> None:
    path = _report(tmp_path / "r.json", stage_seconds={"check": 650})
    report.record_stages(path, {"build": 6, "start": 19})
    data = json.loads(path.read_text())
    assert data["stage_seconds"] == {"check": 650, "build": 6, "start": 19}
    assert list(data)[:2] == ["mode", "ok"]


def test_stages_without_a_report_write_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_REPORT", str(tmp_path / "none.json"))
    assert cli.run(cli.parser().parse_args(["report", "stages", "build=6"])) == 0
    assert not (tmp_path / "none.json").exists()


def test_a_run_that_failed_before_the_checks_has_a_failing_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_REPORT", str(tmp_path / "r.json"))
    assert cli.run(cli.parser().parse_args(["report", "failed", "deploy"])) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == {"mode": "not deployed: stage deploy failed", "ok": False, "checks": []}
    cli.run(cli.parser().parse_args(["report", "stages", "build=6", "deploy=1200"]))
    assert json.loads((tmp_path / "r.json").read_text())["stage_seconds"]["deploy"] == 1200


def test_a_break_not_caught_fails_the_report(tmp_path: Path) -> None:
    path = _report(tmp_path / "r.json")
    report.record_breaks(path, [("a  FAILED as it must (deploy failed: x) in 9s", True)])
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["breaks"][0]["caught"] is True
    report.record_breaks(path, [("a  FAILED as it must", True), ("b  PASSED: ...", False)])
    data = json.loads(path.read_text())
    assert data["ok"] is False
    assert [b["result"] for b in data["breaks"]] == ["a  FAILED as it must", "b  PASSED: ..."]
    failed = _report(tmp_path / "f.json", ok=False)
    report.record_breaks(failed, [("a  FAILED as it must", True)])
    assert json.loads(failed.read_text())["ok"] is False  # caught breaks do not mend the rows


def test_every_break_has_the_stage_that_must_catch_it() -> None:
    assert set(breaks.CAUGHT_BY) == set(served.BREAKS)
    names = [name for name, _, _ in checks.CHECKS]
    for rows in set(breaks.CAUGHT_BY.values()) - {"deploy"}:
        assert any(rows in name for name in names), f"no row named like {rows!r}"


def test_a_break_is_caught_only_at_its_own_stage() -> None:
    line, caught = breaks.judge("project-denies-configmap", "deploy failed: sync failed: no", 15.4)
    assert caught
    assert (
        line
        == "project-denies-configmap     FAILED as it must (deploy failed: sync failed: no) in 15s"
    )
    line, caught = breaks.judge(
        "wrong-serviceaccount", "check failed: pipeline, overlays/minikube", 84
    )
    assert caught and line.startswith(
        "wrong-serviceaccount         FAILED as it must (check failed"
    )
    line, caught = breaks.judge(
        "wrong-serviceaccount", "deploy failed: no failed sync: timed out", 420
    )
    assert not caught
    assert line == (
        "wrong-serviceaccount         FAILED ELSEWHERE: expected at check, got (deploy failed: "
        "no failed sync: timed out) in 420s"
    )
    line, caught = breaks.judge("netpol-blocks-postgres", "", 103)
    assert not caught
    assert line == "netpol-blocks-postgres       PASSED: the harness did not catch it (103s)"


def test_a_failed_deploy_is_told_by_argo_cds_last_message() -> None:
    log = (
        "12:00:01 root: Synced\nERROR: Application root: sync failed: first\nx sync failed: last\n"
    )
    assert breaks.deploy_failure(log) == "deploy failed: sync failed: last"
    assert breaks.deploy_failure("x sync failed: " + "y" * 400).endswith("y" * 287)
    assert len(breaks.deploy_failure("sync failed: " + "y" * 400)) == len("deploy failed: ") + 300
    assert breaks.deploy_failure("timed out") == "deploy failed: no failed sync: timed out"


def test_host_difference_allows_only_the_running_clusters_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("E2E_NETNS", "esp-e2e")
    monkeypatch.setenv("E2E_CGROUP", "esp-e2e")
    before = "## mounts\n/ ext4 /dev/vda\n## netns\n## cgroups\n"
    running = (
        "## mounts\n/ ext4 /dev/vda\n/run/netns/esp-e2e nsfs nsfs[net:[1]]\n## netns\n"
        "esp-e2e (id: 0)\n## cgroups\n/sys/fs/cgroup/pids/esp-e2e\n"
    )
    assert host_state.difference(before, running, running=True) == []
    assert host_state.difference(before, running, running=False) != []
    other = running.replace("esp-e2e (id: 0)", "esp-e2e2 (id: 1)")
    assert "+esp-e2e2 (id: 1)" in host_state.difference(before, other, running=True)


def test_the_report_facts_name_the_pins_the_uis_and_a_kept_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARGOCD_UI", "built from argo-cd v3.6.2 ui/")
    monkeypatch.delenv("ARGO_WORKFLOWS_UI", raising=False)
    monkeypatch.setenv("E2E_KUBECONFIG", "/run/esp-e2e/kubeconfig")
    monkeypatch.setenv("E2E_NETNS", "esp-e2e")
    monkeypatch.setenv("E2E_KEEP", "0")
    facts = checks.facts()
    assert facts["versions"]["ARGOCD_VERSION"].startswith("v3.")
    assert facts["web_uis"] == {
        "argo-workflows": "unknown",
        "argo-cd": "built from argo-cd v3.6.2 ui/",
    }
    assert "kubeconfig" not in facts
    monkeypatch.setenv("E2E_KEEP", "1")
    assert checks.facts()["netns"] == "esp-e2e"


def test_a_row_prints_as_status_name_and_what_was_observed() -> None:
    row = report.Row("node Ready", "passed", "e2e-node Ready v1.36.3")
    assert row.line() == " passed  node Ready: e2e-node Ready v1.36.3"
    assert report.Row("x", "not run", "why").line() == "not run  x: why"
