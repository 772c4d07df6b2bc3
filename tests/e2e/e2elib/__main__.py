"""The e2e stages after tests/e2e/start, as one command (tests/e2e/run runs them in order):

    python -m e2elib cluster-check          prove each piece of the cluster (cluster_check.py)
    python -m e2elib deploy                 the repository, through Argo CD (deploy.py)
    python -m e2elib check [WORD...]        the report's rows (checks.py)
    python -m e2elib breaks [NAME...]       each deliberate break must fail (breaks.py)
    python -m e2elib host-state [--compare FILE [--running]]     (host_state.py)
    python -m e2elib report markdown [REPORT] | stages NAME=SECONDS... | failed STAGE
                                            (report.py; E2E_REPORT names the report)

Run from tests/e2e (or with it on PYTHONPATH), as root.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import harness


def _stage_seconds(text: str) -> tuple[str, int]:
    name, sep, seconds = text.partition("=")
    if not sep or not seconds.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: not NAME=SECONDS")
    return name, int(seconds)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m e2elib", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="stage", required=True)
    sub.add_parser("cluster-check", help="prove each piece of the running cluster")
    sub.add_parser("deploy", help="deploy the repository through Argo CD (E2E_BREAK=NAME: a break)")
    check = sub.add_parser("check", help="the report's rows (only those whose name has a WORD)")
    check.add_argument("words", nargs="*", metavar="WORD")
    breaks = sub.add_parser("breaks", help="each deliberately broken manifest must fail")
    breaks.add_argument("names", nargs="*", metavar="NAME")
    host = sub.add_parser("host-state", help="the host snapshot, or compare with one")
    host.add_argument("--compare", type=Path, metavar="FILE")
    host.add_argument("--running", action="store_true", help="allow the running cluster's own")
    rep = sub.add_parser("report", help="the JSON report").add_subparsers(dest="cmd", required=True)
    md = rep.add_parser("markdown", help="the README's block of the last verified run")
    md.add_argument("path", nargs="?", type=Path, metavar="REPORT")
    stages = rep.add_parser("stages", help="add the run's stage times")
    stages.add_argument("seconds", nargs="*", type=_stage_seconds, metavar="NAME=SECONDS")
    failed = rep.add_parser("failed", help="the report of a run that failed before the checks")
    failed.add_argument("at", metavar="STAGE")
    return p


def run(args: argparse.Namespace) -> int:
    # Imported here: their module constants read the environment load_env sets.
    from . import breaks, checks, cluster_check, deploy, host_state, report

    if args.stage == "cluster-check":
        harness.need("KUBECTL", "BUSYBOX_IMAGE", "IMAGES_LIST", "CONTAINERD_BIN_DIR")
        return cluster_check.main()
    if args.stage == "deploy":
        harness.need("KUBECTL", "KUBE_BIN_DIR", "ARGOCD_VERSION", "ARGOCD_IMAGE")
        return deploy.main()
    if args.stage == "check":
        harness.need("KUBECTL", "KUSTOMIZE", "CONTAINERD_BIN_DIR", "GENERATOR_IMAGE")
        return checks.main(args.words)
    if args.stage == "breaks":
        harness.need("KUBECTL", "KUBE_BIN_DIR", "ARGOCD_VERSION", "ARGOCD_IMAGE")
        return breaks.main(args.names)
    if args.stage == "host-state":
        if args.compare is None:
            print(host_state.snapshot(), end="")
            return 0
        return 0 if host_state.unchanged(args.compare, args.running) else 1
    path = args.path if args.cmd == "markdown" and args.path else report.report_path()
    if args.cmd == "markdown":
        print(report.markdown(json.loads(path.read_text())))
    elif args.cmd == "stages":
        if path.is_file() and path.stat().st_size:
            report.record_stages(path, dict(args.seconds))
    else:
        report.not_deployed(path, args.at)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    harness.load_env()
    try:
        return run(args)
    except harness.Failed as exc:
        harness.log(f"ERROR: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
