"""The e2e report: only observed rows pass; the first line says how it was deployed."""

from __future__ import annotations

import json
from pathlib import Path

from e2elib.report import Report, Row


def test_a_row_not_run_fails_the_report(tmp_path: Path) -> None:
    rep = Report(mode="deployed by Argo CD v3.6.2 from the harness's Git server")
    rep.add(Row("pipeline (minikube)", "passed", "workflow event-pipeline-123 Succeeded", 41.2))
    assert rep.ok
    rep.add(Row("price of gVisor", "not run", "pipeline did not succeed under runc"))
    assert not rep.ok
    rep.facts["kubeconfig"] = "/run/esp-e2e/kubeconfig"
    out = tmp_path / "r.json"
    rep.write(out)
    data = json.loads(out.read_text())
    assert next(iter(data)) == "mode" and data["ok"] is False
    assert data["kubeconfig"] == "/run/esp-e2e/kubeconfig"
    assert [c["status"] for c in data["checks"]] == ["passed", "not run"]
    table = rep.table().splitlines()
    assert table[0] == rep.mode
    assert table[-1] == "1/2 passed: FAILED"
    assert any("not run" in line and "runc" in line for line in table)


def test_an_empty_report_is_not_ok() -> None:
    assert not Report(mode="x").ok
