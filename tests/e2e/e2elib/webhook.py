"""GitHub's push webhook for the harness's Git server: what tells Argo CD that Git changed.

A user points a GitHub webhook (content type JSON, event `push`) at Argo CD's `/api/webhook`,
and Argo CD refreshes every Application that follows the pushed branch of that repository
(instead of at its next poll, up to 3 minutes later). The harness does the same: a
`post-receive` hook in the served bare repository sends GitHub's push payload to the URLs listed
in the repository's `esp-webhooks` file (its "webhook settings"), for every push, whoever
pushes. Argo CD's certificate is its own self-signed one, so TLS is not verified (GitHub's
"Disable SSL verification"). Each delivery is logged to `esp-webhooks.log` in the repository.

deploy.py installs it (`install`); the hook runs
    python3 -m e2elib.webhook deliver --bare DIR.git < old new ref lines
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from . import kube

ZERO = "0" * 40
SETTINGS = "esp-webhooks"
LOG = "esp-webhooks.log"
HOOK = """#!/bin/sh
# The harness's stand-in for GitHub's push webhook (tests/e2e/e2elib/webhook.py).
export PYTHONPATH={pythonpath} E2E_STATE={state} KUBECTL={kubectl}
exec {python} -m e2elib.webhook deliver --bare "$(pwd)"
"""


def _git(bare: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "--git-dir", str(bare), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout


def changed_files(bare: Path, old: str, new: str) -> list[str]:
    """Files a push changed; every file of the new tip when the branch is new or the old tip
    is unknown (a force-push of unrelated history still has the old objects, so it diffs)."""
    if old != ZERO:
        try:
            return _git(bare, "diff", "--name-only", old, new).split()
        except subprocess.CalledProcessError:
            pass
    return _git(bare, "ls-tree", "-r", "--name-only", new).split()


def payload(bare: Path, old: str, new: str, ref: str, html_url: str) -> dict[str, Any]:
    """The fields of GitHub's push event that Argo CD reads (util/webhook/webhook.go)."""
    branch = ref.removeprefix("refs/heads/")
    files = changed_files(bare, old, new)
    return {
        "ref": ref,
        "before": old,
        "after": new,
        "repository": {"html_url": html_url, "default_branch": branch},
        "commits": [{"id": new, "added": [], "modified": files, "removed": []}],
    }


def post(url: str, body: bytes) -> str:
    """POST inside the cluster's network namespace (Argo CD's Service address lives there)."""
    argv = kube.in_ns(
        [
            "curl",
            "-sS",
            "-k",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-GitHub-Event: push",
            "-H",
            f"X-GitHub-Delivery: {uuid.uuid4()}",
            "--data-binary",
            "@-",
        ]
    )
    proc = subprocess.run(argv, input=body, capture_output=True, timeout=30, check=False)
    return proc.stdout.decode().strip() or proc.stderr.decode().strip()[-200:]


def deliver(bare: Path, lines: list[str]) -> list[str]:
    settings = bare / SETTINGS
    if not settings.is_file():
        return []
    conf = json.loads(settings.read_text())
    results = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[1] == ZERO:  # a deleted branch: nothing to deploy
            continue
        old, new, ref = parts
        body = json.dumps(payload(bare, old, new, ref, conf["html_url"])).encode()
        for url in conf["urls"]:
            status = post(url, body)
            results.append(
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {time.time():.3f} "
                f"{ref} {new[:12]} -> {url}: {status}"
            )
    with (bare / LOG).open("a") as log:
        log.writelines(r + "\n" for r in results)
    return results


def install(bare: Path, urls: list[str], html_url: str) -> None:
    (bare / SETTINGS).write_text(json.dumps({"urls": urls, "html_url": html_url}))
    hook = bare / "hooks" / "post-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        HOOK.format(
            pythonpath=Path(__file__).resolve().parents[1],
            python=sys.executable,
            state=os.environ.get("E2E_STATE", "/run/esp-e2e"),
            kubectl=os.environ.get("KUBECTL") or "kubectl",
        )
    )
    hook.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    dlv = sub.add_parser("deliver", help="(the post-receive hook) send the push event")
    dlv.add_argument("--bare", type=Path, required=True)
    args = parser.parse_args(argv)
    for result in deliver(args.bare, sys.stdin.read().splitlines()):
        print(f"webhook: {result}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
