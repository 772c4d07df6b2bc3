"""The e2e report: only observed rows pass; the first line says how it was deployed."""

from __future__ import annotations

import json
from pathlib import Path

from e2elib.report import Report, Row, markdown


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


def test_markdown_block_says_date_outcome_stages_rows_and_breaks() -> None:
    rep = Report(mode="deployed by Argo CD v3.6.2 from the harness's Git server")
    rep.add(Row("pipeline", "passed", "workflow   e2e-1\nSucceeded " + "x" * 200, 21.6))
    data = rep.to_json()
    data.update(started="2026-12-07T05:00:00Z",
                stage_seconds={"build": 6, "deploy": 180, "check": 654, "breaks": 360},
                breaks=[{"result": "wrong-serviceaccount  FAILED as it must (...) in 100s",
                         "caught": True}])  # fmt: skip
    text = markdown(data, width=40).splitlines()
    assert text[0] == (
        "Last verified 2026-12-07: passed, 1/1 rows, 1/1 breaks caught; build 6 s, "
        "deploy 180 s, check 654 s, breaks 360 s (20.0 min)."
    )
    assert text[1] == f"`{rep.mode}`"
    row = next(line for line in text if line.startswith("pipeline"))
    assert row.endswith("22s  workflow e2e-1 Succeeded " + "x" * 15)
    assert text[-3:] == ["", "wrong-serviceaccount  FAILED as it must (...) in 100s", "```"]
    data["ok"] = False
    assert markdown(data).startswith("Last verified 2026-12-07: FAILED")
