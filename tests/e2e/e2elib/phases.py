"""Where a workflow run's time goes, sub-second, from the sources that have it.

- submission and completion: this process's clock around `kubectl create` and a `kubectl wait`
  (a watch: it returns when the phase changes, not at the next poll);
- scheduling: the scheduler's `Scheduled` event (its eventTime has microseconds);
- sandbox and containers: containerd's log (nanoseconds): RunPodSandbox called and returned,
  StartContainer called and returned, the exit event's `exited_at`;
- the work itself: the seconds the program prints (`... in 0.52s`).
Every clock here is the node's (the harness runs on one machine), so the differences hold.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_LINE = re.compile(r'^time="(?P<ts>[^"]+)" level=\w+ msg="(?P<msg>(?:[^"\\]|\\.)*)"')
_SANDBOX = re.compile(r"RunPodSandbox for &PodSandboxMetadata\{Name:[^,]*,Uid:(?P<uid>[^,]+),")
_SANDBOX_ID = re.compile(r'returns sandbox id "(?P<sid>[0-9a-f]+)"')
_CREATED = re.compile(
    r'CreateContainer within sandbox "(?P<sid>[0-9a-f]+)" for '
    r'&ContainerMetadata\{Name:(?P<name>[^,]+),.*returns container id "(?P<cid>[0-9a-f]+)"'
)
_START = re.compile(r'^StartContainer for "(?P<cid>[0-9a-f]+)"(?P<ok> returns successfully)?$')
_EXIT = re.compile(
    r'received container exit event container_id:"(?P<cid>[0-9a-f]+)" id:"(?P<id>[0-9a-f]+)".*'
    r"exited_at:\{seconds:(?P<s>\d+) nanos:(?P<ns>\d+)\}"
)
_WORK = re.compile(r" in (?P<s>\d+(?:\.\d+)?)s \(")


def timestamp(text: str) -> float:
    """RFC 3339 with up to nanoseconds (containerd, Kubernetes) as epoch seconds."""
    text = text.rstrip("Z")
    whole, _, frac = text.partition(".")
    base = datetime.fromisoformat(whole + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


@dataclass
class Container:
    name: str
    sandbox: str
    start: float | None = None  # StartContainer called
    running: float | None = None  # StartContainer returned
    exited: float | None = None


@dataclass
class Containerd:
    sandbox_call: dict[str, float] = field(default_factory=dict)  # pod UID -> RunPodSandbox
    sandbox_ready: dict[str, float] = field(default_factory=dict)  # pod UID -> it returned
    sandbox_id: dict[str, str] = field(default_factory=dict)  # pod UID -> sandbox ID
    containers: dict[str, Container] = field(default_factory=dict)  # container ID -> times


def parse_containerd(lines: Iterable[str]) -> Containerd:
    out = Containerd()
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        msg, ts = m.group("msg").replace('\\"', '"'), m.group("ts")
        if sandbox := _SANDBOX.match(msg):
            uid = sandbox.group("uid")
            if ready := _SANDBOX_ID.search(msg):
                out.sandbox_ready[uid] = timestamp(ts)
                out.sandbox_id[uid] = ready.group("sid")
            else:
                out.sandbox_call[uid] = timestamp(ts)
        elif created := _CREATED.match(msg):
            out.containers[created.group("cid")] = Container(
                created.group("name"), created.group("sid")
            )
        elif start := _START.match(msg):
            found = out.containers.get(start.group("cid"))
            if found is not None:
                if start.group("ok"):
                    found.running = timestamp(ts)
                else:
                    found.start = timestamp(ts)
        elif (exited := _EXIT.search(msg)) and exited.group("cid") == exited.group("id"):
            found = out.containers.get(exited.group("cid"))
            if found is not None:
                found.exited = int(exited.group("s")) + int(exited.group("ns")) / 1e9
    return out


@dataclass
class Phase:
    name: str
    seconds: float


def pod_containers(pod: dict[str, Any], cd: Containerd) -> dict[str, Container]:
    """The pod's containers (init, wait, and the steps') by name, as containerd saw them."""
    sid = cd.sandbox_id.get(pod["metadata"]["uid"], "")
    return {c.name: c for c in cd.containers.values() if c.sandbox == sid}


def work_seconds(log: str) -> float | None:
    """The seconds the program says its work took (its last `... in N.NNs (` line)."""
    found = _WORK.findall(log)
    return float(found[-1]) if found else None


def _step(pod: dict[str, Any]) -> str:
    """The template step a pod ran: its Argo node name without the workflow name and without
    loop or retry suffixes (`wf.shard(2:2)(0)` -> `shard`)."""
    node = pod["metadata"].get("annotations", {}).get("workflows.argoproj.io/node-name", "")
    return re.sub(r"\(.*$", "", node.rsplit(".", 1)[-1]) or str(pod["metadata"]["name"])


def _pod_phases(
    pod: dict[str, Any],
    label: str,
    ref: float,
    scheduled: dict[str, float],
    cd: Containerd,
    work: dict[tuple[str, str], float | None],
) -> tuple[list[Phase], float]:
    """One pod's phases from `ref` to its last container's exit, and that exit."""
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    cs = pod_containers(pod, cd)
    init = cs.get("init")
    steps = [c for n, c in cs.items() if n not in ("init", "wait")]
    if (
        not init
        or not steps
        or None in (init.start, init.exited)
        or any(None in (c.running, c.exited) for c in steps)
    ):
        raise KeyError(f"{name}: containerd's log lacks a start or exit of a container")
    steps.sort(key=lambda c: c.exited or 0.0)
    assert init.exited is not None and steps[0].running is not None  # for mypy
    out = [
        Phase(f"{label}: to scheduled", scheduled[name] - ref),
        Phase(f"{label}: to sandbox call", cd.sandbox_call[uid] - scheduled[name]),
        Phase(f"{label}: sandbox", cd.sandbox_ready[uid] - cd.sandbox_call[uid]),
        Phase(f"{label}: argoexec init", init.exited - cd.sandbox_ready[uid]),
        Phase(f"{label}: to {steps[0].name} running", steps[0].running - init.exited),
    ]
    ref = steps[0].running
    for c in steps:
        assert c.exited is not None  # for mypy
        took, own = c.exited - ref, work.get((name, c.name))
        if own is not None:
            out += [
                Phase(f"{label}: {c.name}, emissary + Python start/exit", took - own),
                Phase(f"{label}: {c.name}, the work (its own figure)", own),
            ]
        else:
            out.append(Phase(f"{label}: {c.name}", took))
        ref = c.exited
    # Argo's wait container notices the last exit (it polls each second), reports the
    # step's result and exits; the pod is done only then.
    wait = cs.get("wait")
    if wait and wait.exited:
        out.append(Phase(f"{label}: argoexec wait, to its exit", wait.exited - ref))
        ref = wait.exited
    return out, ref


def run_phases(
    submitted: float,
    done: float,
    pods: list[dict[str, Any]],
    scheduled: dict[str, float],
    cd: Containerd,
    work: dict[tuple[str, str], float | None],
) -> list[Phase]:
    """A run's phases in order, step by step (steps in the order their first pod was
    scheduled). Each pod: from the submission (or the previous step's last exit) to scheduled,
    to the sandbox call, the sandbox, argoexec's init, to the first step container running
    (the wait container starts first); then each step container in the order they exited (a
    containerSet's `main` runs after `generate`): its own overhead (argoexec emissary, which
    runs the program and, in a containerSet, waits for the containers it depends on; Python's
    start, imports and exit) around the work the program reports (`work`, by (pod,
    container)), and the work. A step of N pods at once (shards) is its critical path: the pod
    that exited last, labelled `STEP (last of N)`. Then argoexec's wait container, to its
    exit. After the last step, to the Workflow's Succeeded (kubelet and the controller). So the
    phases add up to the whole run. A source that lacks a timestamp raises KeyError naming it."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for pod in sorted(pods, key=lambda p: scheduled[p["metadata"]["name"]]):
        groups.setdefault(_step(pod), []).append(pod)
    phases: list[Phase] = []
    ref = submitted
    for step, members in groups.items():
        label = step if len(members) == 1 else f"{step} (last of {len(members)})"
        timed = [_pod_phases(p, label, ref, scheduled, cd, work) for p in members]
        last, ref = max(timed, key=lambda pt: pt[1])
        phases += last
    phases.append(Phase("Argo: pod done to Workflow Succeeded", done - ref))
    return phases


def summarize(runs: list[list[Phase]]) -> list[tuple[str, float, float, float]]:
    """(phase, median, min, max) over runs, in the first run's order, plus the whole run."""
    names = [p.name for p in runs[0]]
    table = []
    for name in names:
        # A run whose pod was retried has other phase names: it counts for the whole run only.
        values = [p.seconds for run in runs for p in run if p.name == name]
        table.append((name, statistics.median(values), min(values), max(values)))
    wholes = [sum(p.seconds for p in run) for run in runs]
    table.append(("whole run", statistics.median(wholes), min(wholes), max(wholes)))
    return table


def format_table(rows: list[tuple[str, float, float, float]], runs: int) -> str:
    lines = [f"{'phase':56}  {'median':>7}  {'min':>6}  {'max':>6}   ({runs} runs)"]
    lines += [f"{n:56}  {m:7.3f}  {lo:6.3f}  {hi:6.3f}" for n, m, lo, hi in rows]
    return "\n".join(lines)
