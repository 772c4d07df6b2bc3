"""The e2e report: one row per check, a summary table on stdout and a JSON file.

    python -m e2elib report markdown [REPORT]    the README's "last verified" block, from a report
    python -m e2elib report stages NAME=SECONDS...   the run's stage times, into the report
    python -m e2elib report failed STAGE         the report of a run that failed before the checks

A row is `passed` only when what it claims was observed; `failed` when something contradicted
it; `not run` with the reason when it could not be observed (never counted as passed).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["passed", "failed", "not run"]
DEFAULT_REPORT = Path(tempfile.gettempdir()) / "esp-e2e-report.json"


@dataclass
class Row:
    name: str
    status: Status
    summary: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The row as a stage prints it when it is done."""
        return f"{self.status:>7}  {self.name}: {self.summary}"


@dataclass
class Report:
    mode: str  # first line of the report: how the repository was deployed
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # versions, stage timings, kubeconfig...
    started: float = field(default_factory=time.time)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.status == "passed" for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            **self.facts,
            "checks": [asdict(r) for r in self.rows],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)

    def table(self) -> str:
        width = max([len(r.name) for r in self.rows] + [5])
        lines = [self.mode, "", f"{'check':<{width}}  {'result':<7}  {'time':>6}  observed"]
        lines.append(f"{'-' * width}  {'-' * 7}  {'-' * 6}  {'-' * 40}")
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:>5.0f}s  {r.summary}")
        passed = sum(r.status == "passed" for r in self.rows)
        lines.append("")
        lines.append(f"{passed}/{len(self.rows)} passed: {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)


def report_path() -> Path:
    return Path(os.environ.get("E2E_REPORT") or DEFAULT_REPORT)


STAGES = ("build", "start", "cluster-check", "deploy", "check", "breaks")  # as tests/e2e/run


def markdown(report: dict[str, Any], width: int = 120) -> str:
    """The last verified run, as the README shows it: date, how it was deployed, each stage's
    time, every row (its observation cut to `width`) and each break's result."""
    stages = report.get("stage_seconds") or {}
    took = ", ".join(f"{s} {stages[s]} s" for s in STAGES if stages.get(s) is not None)
    total = sum(v for v in stages.values() if isinstance(v, int | float))
    checks = report.get("checks") or []
    name_w = max([len(c["name"]) for c in checks] + [5])
    rows = [f"{'check':<{name_w}}  {'result':<7}  {'time':>6}  observed",
            f"{'-' * name_w}  {'-' * 7}  {'-' * 6}  {'-' * 40}"]  # fmt: skip
    rows += [f"{c['name']:<{name_w}}  {c['status']:<7}  {c['seconds']:>5.0f}s  "
             f"{' '.join(c['summary'].split())[:width]}" for c in checks]  # fmt: skip
    passed = sum(c["status"] == "passed" for c in checks)
    breaks = report.get("breaks") or []
    caught = sum(bool(b.get("caught")) for b in breaks)
    lines = [
        f"Last verified {str(report.get('started', '?'))[:10]}: "
        f"{'passed' if report.get('ok') else 'FAILED'}, {passed}/{len(checks)} rows"
        + (f", {caught}/{len(breaks)} breaks caught" if breaks else "")
        + f"; {took} ({total / 60:.1f} min).",
        f"`{report.get('mode', '?')}`",
        "",
        "```text",
        *rows,
        *([""] + [b["result"] for b in breaks] if breaks else []),
        "```",
    ]
    return "\n".join(lines)


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def record_stages(path: Path, seconds: dict[str, int]) -> None:
    """Add the run's stage times (the checks wrote the report before the run ended)."""
    data = json.loads(path.read_text())
    data["stage_seconds"] = {**(data.get("stage_seconds") or {}), **seconds}
    _write(path, data)


def record_breaks(path: Path, results: list[tuple[str, bool]]) -> None:
    """Add each break's result line; a break the harness did not catch fails the report."""
    data = json.loads(path.read_text())
    data["breaks"] = [{"result": line, "caught": caught} for line, caught in results]
    data["ok"] = data.get("ok", False) and all(caught for _, caught in results)
    _write(path, data)


def not_deployed(path: Path, stage: str) -> None:
    """The report of a run that failed before any check ran: it says where, and fails."""
    _write(path, {"mode": f"not deployed: stage {stage} failed", "ok": False, "checks": []})
