"""The two web UIs in a real browser, as a person uses them (Debian's Chromium, driven by
Playwright), through the port-forwards the README tells users to run.

    python3 -m e2elib.browser argocd|workflows --shots DIR

Runs inside the cluster's namespaces (checks.py starts it there with nsenter): the port-forward
listens on the namespace's localhost, as on a user's machine. Prints one JSON object on its last
line: {"ok": bool, "steps": [[step, observed], ...], "shots": [png, ...], "console": [...],
"network_changed": int, "error": str}. Each step saves a screenshot; an error in the browser's
console fails the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import kube

CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; without the background-networking flags it keeps trying
# Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
# The README's port-forwards.
ARGOCD = ("argocd", "svc/argocd-server", 8080, 443)
WORKFLOWS = ("argo", "svc/argo-server", 2746, 2746)
PIPELINE_NS = "event-pipeline"


class UIError(Exception):
    """What the page showed instead of what a user expects (the message says what)."""


@contextlib.contextmanager
def port_forward(ns: str, target: str, local: int, remote: int) -> Iterator[str]:
    """`kubectl -n NS port-forward TARGET LOCAL:REMOTE`, until the block ends; its https URL."""
    argv = kube.kubectl_argv("-n", ns, "port-forward", target, f"{local}:{remote}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "Forwarding from" not in line:
            raise UIError(f"kubectl port-forward {target}: {line.strip() or 'exited'}")
        yield f"https://localhost:{local}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Browser:
    """One Chromium page; records console errors and a screenshot per step."""

    def __init__(self, page: Any, shots: Path, prefix: str) -> None:
        self.page = page
        self.shots = shots
        self.prefix = prefix
        self.steps: list[tuple[str, str]] = []
        self.saved: list[str] = []
        self.console: list[str] = []
        self.network_changed: list[str] = []
        # Console errors a step expects (the 401s of the UI without a token), by pattern.
        self.expected: re.Pattern[str] | None = None
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self._error(f"page error: {one_line(exc)}"))

    def _on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = f"console error: {one_line(msg.text)} ({(msg.location or {}).get('url', '')})"
        if "net::ERR_NETWORK_CHANGED" in text:
            # The browser runs in the node's network namespace, where each new pod adds an
            # interface: Chromium then aborts requests in flight (the UI polls again). Counted,
            # not an error of the UI.
            self.network_changed.append(text)
        else:
            self._error(text)

    def _error(self, text: str) -> None:
        if self.expected is None or not self.expected.search(text):
            self.console.append(text)

    def step(self, name: str, observed: str) -> None:
        path = self.shots / f"{self.prefix}-{len(self.saved) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.saved.append(str(path))
        self.steps.append((name, observed))
        print(f"    {self.prefix} {name}: {observed}", file=sys.stderr, flush=True)

    def goto(self, url: str, ready: str, attempts: int = 3) -> Any:
        """Open url and wait for the `ready` selector. A page whose own scripts were aborted by
        ERR_NETWORK_CHANGED (a pod started meanwhile) stays blank: it is loaded again, as a
        user presses reload. Any other failure to show `ready` is the UI's."""
        for attempt in range(1, attempts + 1):
            aborted = len(self.network_changed)
            self.page.goto(url)
            loc = self.page.locator(ready).first
            try:
                loc.wait_for(state="visible", timeout=TIMEOUT_MS)
                return loc
            except Exception:
                aborted = len(self.network_changed) - aborted
                if not aborted or attempt == attempts:
                    raise
                why = f"{aborted} request(s) aborted by ERR_NETWORK_CHANGED"
                print(f"    {self.prefix}: {url} not shown, {why}: loading it again",
                      file=sys.stderr, flush=True)  # fmt: skip
        raise AssertionError("unreachable")


def one_line(what: object, limit: int = 300) -> str:
    return " ".join(str(what).split())[:limit]


def _secret(ns: str, name: str, key: str) -> str:
    data = kube.get("-n", ns, "secret", name)["data"][key]
    return base64.b64decode(data).decode()


def _app(name: str) -> dict[str, Any]:
    return kube.get("-n", "argocd", "application", name)


def argocd_flow(b: Browser, url: str) -> None:
    """Log in as admin; the list shows the three Applications Synced and Healthy; open
    event-pipeline and its resource tree; SYNC, then SYNCHRONIZE in the panel; the operation
    ends Succeeded on the page and in the Application's status."""
    page = b.page
    password = _secret("argocd", "argocd-initial-admin-secret", "password")
    b.goto(f"{url}/login", "input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(password)
    b.step("login", "admin / the password bootstrap prints")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(re.compile(r"/applications"), timeout=TIMEOUT_MS)
    tiles: dict[str, str] = {}
    for app in ("root", "argo-workflows", "event-pipeline"):
        tile = page.locator(".applications-list__entry", has_text=app).first
        tile.wait_for(state="visible", timeout=TIMEOUT_MS)
        text = " ".join(tile.inner_text().split())
        if "Synced" not in text or "Healthy" not in text:
            raise UIError(f"applications list: tile {app} shows {text[:200]!r}")
        tiles[app] = "Synced, Healthy"
    b.step("applications", "; ".join(f"{k}: {v}" for k, v in tiles.items()))

    before = _app("event-pipeline")["status"]["operationState"]
    # The resource tree: the Application's own node and its children.
    b.goto(f"{url}/applications/argocd/event-pipeline",
           ".application-resource-tree__node:has-text('event-pipeline')")  # fmt: skip
    nodes = page.locator(".application-resource-tree__node").count()
    b.step("event-pipeline", f"resource tree with {nodes} nodes")

    # The button's text is "Sync" (its icon is a font glyph, so no role name matches it).
    page.locator(".top-bar__action-menu button", has_text=re.compile(r"^\s*Sync\s*$")).click()
    panel_button = page.locator("[qe-id=application-sync-panel-button-synchronize]")
    panel_button.wait_for(state="visible")
    page.wait_for_timeout(1000)  # the panel slides in; the screenshot shows it in place
    b.step("sync-panel", "SYNC pressed: the sync panel is open")
    panel_button.click()
    clicked = time.time()

    def new_operation_done() -> dict[str, Any] | None:
        op = _app("event-pipeline")["status"].get("operationState") or {}
        newer = op.get("startedAt") != before.get("startedAt")
        return op if newer and op.get("phase") in ("Succeeded", "Failed", "Error") else None

    op = kube.wait_for("the sync started from the UI to finish", 600, new_operation_done, 1)
    by = ((op.get("operation") or {}).get("initiatedBy") or {}).get("username")
    if op["phase"] != "Succeeded" or by != "admin":
        raise UIError(f"the sync from the UI ended {op['phase']} (by {by}): {op.get('message')}")
    # The LAST SYNC panel names the operation's end time: this operation's, not the last one's.
    finished = time.strftime("%H:%M:%S", time.strptime(op["finishedAt"], "%Y-%m-%dT%H:%M:%SZ"))
    panel = page.locator(".application-status-panel__item", has_text="LAST SYNC").first

    def panel_text() -> str | None:
        text = " ".join(panel.inner_text().split())
        return text if finished in text else None

    shown = kube.wait_for(
        f"the LAST SYNC panel to show the sync ended {finished}", 60, panel_text, 1
    )
    if "Sync OK" not in shown:
        raise UIError(f"the LAST SYNC panel shows {shown[:200]!r}")
    b.step(
        "synced",
        f"operation {op['phase']} (initiated by {by}) {time.time() - clicked:.0f}s after "
        f"SYNCHRONIZE; the page's LAST SYNC: {shown[:90]!r}",
    )


def _bearer() -> str:
    token = kube.kubectl(
        "-n", PIPELINE_NS, "create", "token", "workflows-ui", "--duration=10m"
    ).strip()
    return f"Bearer {token}"


def _close_modals(b: Browser) -> int:
    """Close the UI's first-visit dialogs (what to use Argo for; what is new in this version)
    as a person would, with their x; how many there were."""
    closed = 0
    b.page.wait_for_timeout(1500)  # they open once the UI has read /api/v1/info
    while closed < 4 and b.page.locator(".modal-close").count():
        b.page.locator(".modal-close").first.click()
        b.page.wait_for_timeout(500)
        closed += 1
    return closed


def _graph_node(b: Browser, label: str) -> tuple[Any, str, str]:
    """The graph's node labelled exactly `label`: (its group, its phase class, its colour)."""
    text = b.page.locator(".graph .node-label", has_text=re.compile(rf"^{re.escape(label)}$"))
    group = text.first.locator("xpath=../..")  # <g><title/><g class="node PHASE"/><g><text/>
    node = group.locator(".node").first
    node.wait_for(state="visible")
    phase = " ".join((node.get_attribute("class") or "").split()[1:])
    colour = node.locator("circle, rect").first.evaluate("e => getComputedStyle(e).fill")
    return group, phase, str(colour)


def workflows_flow(b: Browser, url: str) -> None:
    """Without a token the UI shows its login page and no workflow; with the workflows-ui
    token the list of event-pipeline shows the CronWorkflow's runs; the latest run's batch pod
    and its two containers (generate, then main: the aggregator) are green (Succeeded); main's
    logs show the loaded batch."""
    page = b.page
    runs = [
        w
        for w in kube.items("-n", PIPELINE_NS, "workflows")
        if w["metadata"].get("labels", {}).get("workflows.argoproj.io/cron-workflow")
        == "event-pipeline"
        and (w.get("status") or {}).get("phase") == "Succeeded"
    ]
    if not runs:
        raise UIError("no Succeeded run of the CronWorkflow event-pipeline to look at")
    # The newest: its pods (and so its logs) are kept 10 minutes (podGC deleteDelayDuration).
    latest = max(runs, key=lambda w: w["status"].get("finishedAt", ""))["metadata"]["name"]

    # Without a token: argo-server (--auth-mode client) answers 401, the UI shows its login.
    b.expected = re.compile(r"status of 401|token not valid")
    b.goto(f"{url}/workflows/{PIPELINE_NS}", "#token")
    if page.get_by_text(latest).count():
        raise UIError(f"without a token the UI shows workflow {latest}")
    b.step("no-token", f"redirected to {page.url.removeprefix(url)}, no workflow listed")

    page.locator("#token").fill(_bearer())
    b.step("login", "Bearer token of ServiceAccount workflows-ui pasted")
    page.locator(".login__token-section a", has_text="Login").click()
    try:
        b.goto(f"{url}/workflows/{PIPELINE_NS}", f"text={latest}")
    except Exception as exc:
        raise UIError(f"the workflow list of event-pipeline: {latest!r} not shown") from exc
    b.expected = None
    names = [n for n in (w["metadata"]["name"] for w in runs) if page.get_by_text(n).count()]
    modals = _close_modals(b)
    b.step("workflows", f"{len(names)} Succeeded runs of the CronWorkflow listed, {latest} newest"
           f" ({modals} first-visit dialogs closed)")  # fmt: skip

    page.goto(f"{url}/workflows/{PIPELINE_NS}/{latest}")
    _close_modals(b)
    seen = []
    for step in ("batch(0)", "generate", "main"):
        _, phase, colour = _graph_node(b, step)
        if phase != "Succeeded":
            raise UIError(f"the graph shows {step} as {phase!r}")
        seen.append(f"{step} {phase} ({colour})")
    b.step("graph", ", ".join(seen))

    # A containerSet's container node has its own logs button: the pod's log, that container.
    main, _, _ = _graph_node(b, "main")
    main.locator(".node").first.click()
    info = page.locator(".workflow-details__step-info")
    # The log viewer draws on a canvas (xterm.js): what it shows is read from the stream it
    # fetched for that pod, and the screenshot shows the same lines.
    with page.expect_response(
        lambda r: "/log?" in r.url and "container=main" in r.url and "-batch-" in r.url
    ) as response:
        info.locator("button", has_text=re.compile(r"^\s*logs\s*$", re.I)).first.click()
    body = response.value.text()
    found = re.search(rf"batch {latest}: loaded [\d,]+ events, [\d,]+ users[^(\\]*", body)
    if response.value.status != 200 or not found:
        raise UIError(f"main's log stream (HTTP {response.value.status}) has no "
                      f"loaded-batch line: {body[:300]!r}")  # fmt: skip
    page.wait_for_timeout(2000)  # the canvas draws the lines
    b.step("logs", found.group(0).strip())


FLOWS = {"argocd": (ARGOCD, argocd_flow), "workflows": (WORKFLOWS, workflows_flow)}


def run(ui: str, shots: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    target, flow = FLOWS[ui]
    shots.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"ok": False, "steps": [], "shots": [], "console": [], "error": ""}
    with port_forward(*target) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # UTC: the Argo CD row finds the operation's end time in the page's local time.
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1280, "height": 800}, timezone_id="UTC"
        )
        context.set_default_timeout(TIMEOUT_MS)
        b = Browser(context.new_page(), shots, ui)
        try:
            flow(b, url)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {one_line(exc)}"
            with contextlib.suppress(Exception):
                b.step("failed", "the page when the run stopped")
        finally:
            browser.close()
        result.update(steps=b.steps, shots=b.saved, console=b.console)
        result["network_changed"] = len(b.network_changed)
        result["ok"] = not result["error"] and not b.console
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ui", choices=sorted(FLOWS))
    parser.add_argument("--shots", type=Path, required=True)
    args = parser.parse_args(argv)
    result = run(args.ui, args.shots)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
