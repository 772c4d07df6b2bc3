"""`argo lint --offline` (the pinned argo CLI, scripts/lib/go-tool) over one render.

It checks the Argo Workflows objects as the controller does: template and step references,
{{variables}}, arguments, DAG dependencies, withSequence, cron schedules. Each Kubernetes CronJob
is linted too, as a CronWorkflow with its schedule and time zone: both parse schedules with
robfig/cron (5 fields or a descriptor), so Argo's verdict on the schedule is Kubernetes' one.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import tools
from .model import Obj, Report, Resource
from .pods import ARGO_WF_KINDS

# "/tmp/x/3.json: in "pipeline" (CronWorkflow): reason" (-o simple)
LINE = re.compile(r'^(?P<file>\S+)\.json: in "[^"]*" \(\w+\): (?P<reason>.*)$')


def _schedule_probe(cronjob: Resource) -> Obj:
    spec: Obj = {
        "schedules": [str(cronjob.spec.get("schedule"))],
        "workflowSpec": {"entrypoint": "run", "templates": [{"name": "run", "suspend": {}}]},
    }
    if cronjob.spec.get("timeZone"):
        spec["timezone"] = cronjob.spec["timeZone"]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": cronjob.name},
        "spec": spec,
    }


def check(resources: list[Resource], report: Report) -> None:
    items = [(r, r.obj, "spec") for r in resources if r.kind in ARGO_WF_KINDS and not r.upstream]
    items += [
        (r, _schedule_probe(r), "spec.schedule")
        for r in resources
        if r.kind == "CronJob" and not r.upstream
    ]
    if not items:
        return
    lint = ["lint", "--offline", "--no-color", "-o", "simple"]
    p = tools.run_over("argo", lint, [obj for _, obj, _ in items])
    found = False
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if m:
            found = True
            r, _, path = items[int(Path(m["file"]).name)]
            report.add("semantics", r, path, f"{m['reason']} (argo lint)")
    if p.returncode != 0 and not found:
        why = (p.stderr or p.stdout).strip()
        report.add("semantics", None, "", f"argo lint failed: {why}", source=resources[0].source)
