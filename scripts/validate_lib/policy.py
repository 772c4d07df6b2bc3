"""Layer 4: checkov on the rendered output of this repo (pinned upstream objects excluded) and
on the Pod each Argo template makes (pods.argo_pod), which checkov cannot see in a template.

Skips live in ONE place, scripts/validate-config.yaml (`checkov_skips`), each with the objects
it covers and the reason; the manifests carry no checkov annotations.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import upstream, yamlio
from .config import Config
from .model import Report, Resource
from .pods import PodUnit, made_pods

CHECKOV = Path(
    os.environ.get(
        "VALIDATE_CHECKOV", str(upstream.REPO_ROOT / ".venv-checkov" / "bin" / "checkov")
    )
)
TIMEOUT = 600


@dataclass
class CheckovResult:
    ran: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    used_skips: set[tuple[str, str]] = field(default_factory=set)  # (check, pattern)


def _checkov_id(r: Resource) -> str:
    return f"{r.kind}.{r.namespace or 'default'}.{r.name}"


@dataclass
class _Hit:
    """Where a checkov finding is reported: the object, its path, and the skips' name for it."""

    res: Resource
    path: str
    ident: str


def run(
    groups: dict[str, list[Resource]],
    units: dict[str, list[PodUnit]],
    cfg: Config,
    report: Report,
) -> CheckovResult:
    if not CHECKOV.exists():
        report.add(
            "policy",
            None,
            "",
            f"checkov not found at {CHECKOV} (run `make venv`)",
            source="checkov",
        )
        return CheckovResult(ran=False)
    with tempfile.TemporaryDirectory(prefix="validate-checkov-") as tmp:
        files: dict[str, str] = {}
        ids: dict[tuple[str, str], _Hit] = {}
        for i, (label, resources) in enumerate(sorted(groups.items())):
            own = [r for r in resources if not r.upstream]
            if not own:
                continue
            fname = f"render-{i}.yaml"
            docs = [r.obj for r in own]
            for r in own:
                ids[(fname, _checkov_id(r))] = _Hit(r, "", r.ident)
            # Argo's pods in the same file, so graph checks (CKV2_*) see their NetworkPolicies.
            for j, (u, pod, where) in enumerate(made_pods(units.get(label, []))):
                meta = {**pod["metadata"], "name": f"argo-pod-{j}"}
                docs.append({**pod, "metadata": meta})
                ids[(fname, f"Pod.{meta['namespace']}.{meta['name']}")] = _Hit(u.res, where, u.key)
            Path(tmp, fname).write_text(yamlio.dump_all(docs))
            files[fname] = label
        if not files:
            return CheckovResult(ran=True)
        env = dict(
            os.environ,
            BC_SKIP_MAPPING="TRUE",
            CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
            PYTHONWARNINGS="ignore",
        )
        cmd = [
            str(CHECKOV),
            "--framework",
            "kubernetes",
            "-d",
            tmp,
            "-o",
            "json",
            "--compact",
            "--skip-download",
            "--soft-fail",
        ]
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            report.add("policy", None, "", f"checkov timed out after {TIMEOUT}s", source="checkov")
            return CheckovResult(ran=False)
        try:
            data = json.loads(p.stdout)
        except ValueError:
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            report.add(
                "policy",
                None,
                "",
                f"checkov output is not JSON: {' | '.join(tail)}",
                source="checkov",
            )
            return CheckovResult(ran=False)
        results = data if isinstance(data, list) else [data]
        res = CheckovResult(ran=True)
        for block in results:
            if not isinstance(block, dict) or "results" not in block:
                continue
            res.passed += len(block["results"].get("passed_checks", []))
            for f in block["results"].get("failed_checks", []):
                fname = Path(str(f.get("file_path", ""))).name
                cid = str(f.get("check_id"))
                hit = ids.get((fname, str(f.get("resource"))))
                ident = hit.ident if hit else str(f.get("resource"))
                used = _skip_match(cfg, cid, ident)
                if used is not None:
                    res.skipped += 1
                    res.used_skips.add(used)
                    continue
                res.failed += 1
                msg = f"checkov {cid}: {f.get('check_name')}"
                if hit is not None:
                    report.add("policy", hit.res, hit.path or cid, msg)
                else:
                    report.add(
                        "policy", None, cid, f"{ident}: {msg}", source=files.get(fname, fname)
                    )
        return res


def _skip_match(cfg: Config, check_id: str, ident: str) -> tuple[str, str] | None:
    """(check, pattern) of the central skip covering this finding, if any."""
    for s in cfg.checkov_skips:
        if s.get("check") != check_id:
            continue
        for pat in skip_patterns(s):
            if fnmatch.fnmatchcase(ident, pat):
                return (check_id, pat)
    return None


def skip_patterns(skip: dict[str, object]) -> list[str]:
    pats = skip.get("resources", ["*"])
    if isinstance(pats, str):
        return [pats]
    return [str(p) for p in pats] if isinstance(pats, list) else ["*"]


def unused_skips(cfg: Config, res: CheckovResult, report: Report) -> None:
    """A central skip that no longer matches a finding is stale: drop it (keeps skips honest)."""
    for s in cfg.checkov_skips:
        for pat in skip_patterns(s):
            if (str(s.get("check")), pat) not in res.used_skips:
                report.add(
                    "policy",
                    None,
                    "checkov_skips",
                    f"skip {s.get('check')} for {pat!r} matches no checkov finding any more: "
                    "remove it from scripts/validate-config.yaml",
                    source="scripts/validate-config.yaml",
                )
