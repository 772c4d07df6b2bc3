"""e2elib/phases.py on containerd's own log format (lines as containerd v2.1.5 wrote them on the
e2e node) and a two-pod run."""

# ruff: noqa: E501 - containerd's log lines are kept whole, as it writes them

from __future__ import annotations

import pytest
from e2elib import phases

SID = "532e7cad646cb59a40f303f169b58d2aa95ed48084a25a79af53d57a4639d0dd"
INIT = "09d1826c3f3bdc140b31c660392081352e2091fafb0836f7649042ae44d2eebe"
MAIN = "6bb0c6612abfce5e5525d2ac9c1e0d4a362d948792aa44c84a4781df0bcbd686"
UID = "cbb814b6-bf80-4e1a-bf26-69b763a8fe0b"


LOG = [
    f'time="2026-12-06T20:47:44.381373814Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:p,Uid:{UID},Namespace:ns,Attempt:0,}}"',
    f'time="2026-12-06T20:47:44.518073827Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:p,Uid:{UID},Namespace:ns,Attempt:0,}} returns sandbox id \\"{SID}\\""',
    f'time="2026-12-06T20:47:44.546335060Z" level=info msg="CreateContainer within sandbox \\"{SID}\\" for &ContainerMetadata{{Name:init,Attempt:0,}} returns container id \\"{INIT}\\""',
    f'time="2026-12-06T20:47:44.549736501Z" level=info msg="StartContainer for \\"{INIT}\\""',
    f'time="2026-12-06T20:47:44.613981259Z" level=info msg="StartContainer for \\"{INIT}\\" returns successfully"',
    f'time="2026-12-06T20:47:45.000000000Z" level=info msg="received container exit event container_id:\\"{INIT}\\" id:\\"{INIT}\\" pid:7446 exited_at:{{seconds:1796590065 nanos:500000000}}"',
    f'time="2026-12-06T20:47:45.600000000Z" level=info msg="CreateContainer within sandbox \\"{SID}\\" for &ContainerMetadata{{Name:main,Attempt:0,}} returns container id \\"{MAIN}\\""',
    f'time="2026-12-06T20:47:45.700000000Z" level=info msg="StartContainer for \\"{MAIN}\\""',
    f'time="2026-12-06T20:47:45.800000000Z" level=info msg="StartContainer for \\"{MAIN}\\" returns successfully"',
    f'time="2026-12-06T20:47:46.000000000Z" level=info msg="received container exit event container_id:\\"{MAIN}\\" id:\\"exec1\\" pid:9 exited_at:{{seconds:1796590066 nanos:0}}"',
    f'time="2026-12-06T20:47:48.000000000Z" level=info msg="received container exit event container_id:\\"{MAIN}\\" id:\\"{MAIN}\\" pid:7511 exited_at:{{seconds:1796590067 nanos:800000000}}"',
]


def test_timestamp_keeps_nanoseconds_to_float_precision() -> None:
    t = phases.timestamp("2026-12-06T20:47:44.381373814Z")
    assert t == pytest.approx(1796590064.381373814, abs=1e-6)
    assert phases.timestamp("2026-12-06T20:47:44Z") == 1796590064.0


def test_parse_containerd() -> None:
    cd = phases.parse_containerd(LOG)
    assert cd.sandbox_id == {UID: SID}
    assert cd.sandbox_ready[UID] - cd.sandbox_call[UID] == pytest.approx(0.1367, abs=1e-4)
    init, main = cd.containers[INIT], cd.containers[MAIN]
    assert (init.name, main.name) == ("init", "main")
    assert init.exited == pytest.approx(1796590065.5)
    # An exec's exit (id != container_id) is not the container's.
    assert main.exited == pytest.approx(1796590067.8)


def test_run_phases_add_up_to_the_whole_run() -> None:
    cd = phases.parse_containerd(LOG)
    pod = {"metadata": {"name": "p", "uid": UID,
                        "annotations": {"workflows.argoproj.io/node-name": "wf.generate"}}}  # fmt: skip
    submitted, scheduled, done = 1796590064.0, 1796590064.3, 1796590069.0
    got = phases.run_phases(submitted, done, [pod], {"p": scheduled}, cd, {("p", "main"): 1.5})
    names = [p.name for p in got]
    assert (
        names[0] == "generate: to scheduled" and names[-1] == "Argo: pod done to Workflow Succeeded"
    )
    assert "generate: to main running" in names
    assert sum(p.seconds for p in got) == pytest.approx(done - submitted)
    by = {p.name: p.seconds for p in got}
    assert by["generate: main, the work (its own figure)"] == 1.5
    assert by["generate: main, emissary + Python start/exit"] == pytest.approx(0.5, abs=1e-6)
    table = phases.summarize([got, got])
    assert table[-1][0] == "whole run" and table[-1][1] == pytest.approx(5.0)
    assert "whole run" in phases.format_table(table, 2)


def test_work_seconds_from_the_programs_lines() -> None:
    log = ("generate-events: event-pipeline 0.1.0\ngenerate-events: wrote 100,000 events "
           "(1,000 users, seed 1) to /data/e.jsonl in 0.52s (192,000 events/s)\n")  # fmt: skip
    assert phases.work_seconds(log) == 0.52
    assert phases.work_seconds("nothing") is None


def test_missing_exit_is_named() -> None:
    cd = phases.parse_containerd(LOG[:-1])
    pod = {"metadata": {"name": "p", "uid": UID}}
    with pytest.raises(KeyError, match="lacks a start or exit"):
        phases.run_phases(0.0, 1.0, [pod], {"p": 0.5}, cd, {})


GEN = "7c0ffee0000000000000000000000000000000000000000000000000000000aa"
WAIT = "7c0ffee0000000000000000000000000000000000000000000000000000000bb"
# A containerSet pod: generate and main start together; main's emissary waits for generate.
LOG_SET = [
    *LOG[:5],
    f'time="2026-12-06T20:47:45.600000000Z" level=info msg="CreateContainer within sandbox \\"{SID}\\" for &ContainerMetadata{{Name:generate,Attempt:0,}} returns container id \\"{GEN}\\""',
    f'time="2026-12-06T20:47:45.650000000Z" level=info msg="StartContainer for \\"{GEN}\\""',
    f'time="2026-12-06T20:47:45.700000000Z" level=info msg="StartContainer for \\"{GEN}\\" returns successfully"',
    *LOG[5:9],
    f'time="2026-12-06T20:47:46.500000000Z" level=info msg="received container exit event container_id:\\"{GEN}\\" id:\\"{GEN}\\" pid:7500 exited_at:{{seconds:1796590066 nanos:500000000}}"',
    LOG[-1],
    f'time="2026-12-06T20:47:45.600000000Z" level=info msg="CreateContainer within sandbox \\"{SID}\\" for &ContainerMetadata{{Name:wait,Attempt:0,}} returns container id \\"{WAIT}\\""',
    f'time="2026-12-06T20:47:49.000000000Z" level=info msg="received container exit event container_id:\\"{WAIT}\\" id:\\"{WAIT}\\" pid:7400 exited_at:{{seconds:1796590068 nanos:500000000}}"',
]


def test_container_set_pod_phases_follow_the_dependency() -> None:
    cd = phases.parse_containerd(LOG_SET)
    pod = {"metadata": {"name": "p", "uid": UID,
                        "annotations": {"workflows.argoproj.io/node-name": "wf.batch(0)"}}}  # fmt: skip
    work: dict[tuple[str, str], float | None] = {("p", "generate"): 0.6, ("p", "main"): 0.2}
    got = phases.run_phases(1796590064.0, 1796590069.0, [pod], {"p": 1796590064.3}, cd, work)
    by = {p.name: p.seconds for p in got}
    assert [p.name for p in got] == [
        "batch: to scheduled",
        "batch: to sandbox call",
        "batch: sandbox",
        "batch: argoexec init",
        "batch: to generate running",
        "batch: generate, emissary + Python start/exit",
        "batch: generate, the work (its own figure)",
        "batch: main, emissary + Python start/exit",
        "batch: main, the work (its own figure)",
        "batch: argoexec wait, to its exit",
        "Argo: pod done to Workflow Succeeded",
    ]
    assert by["batch: to generate running"] == pytest.approx(0.2, abs=1e-6)  # 45.7 - 45.5
    assert by["batch: generate, emissary + Python start/exit"] == pytest.approx(0.2, abs=1e-6)
    # main counts from generate's exit (66.5) to its own (67.8): 1.3 s, 0.2 of it work.
    assert by["batch: main, emissary + Python start/exit"] == pytest.approx(1.1, abs=1e-6)
    assert by["batch: argoexec wait, to its exit"] == pytest.approx(0.7, abs=1e-6)  # 67.8 .. 68.5
    assert sum(p.seconds for p in got) == pytest.approx(5.0)


def _pod(name: str, uid: str, node: str) -> dict[str, object]:
    return {"metadata": {"name": name, "uid": uid,
                         "annotations": {"workflows.argoproj.io/node-name": node}}}  # fmt: skip


def test_parallel_pods_count_by_their_critical_path() -> None:
    """Two shard pods at once, then a commit: the shards' phases are those of the pod that
    exited last, and the phases still add up to the whole run."""

    def pod_log(uid: str, sid: str, start: float, end: float) -> list[str]:
        def at(s: float) -> str:
            whole = int(s)
            return f"2026-12-06T20:47:{whole - 1796590020:02d}.{round((s - whole) * 1e9):09d}Z"

        init, main = sid[:-1] + "1", sid[:-1] + "2"
        return [
            f'time="{at(start)}" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:p,Uid:{uid},Namespace:ns,Attempt:0,}}"',
            f'time="{at(start + 0.1)}" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:p,Uid:{uid},Namespace:ns,Attempt:0,}} returns sandbox id \\"{sid}\\""',
            f'time="{at(start + 0.1)}" level=info msg="CreateContainer within sandbox \\"{sid}\\" for &ContainerMetadata{{Name:init,Attempt:0,}} returns container id \\"{init}\\""',
            f'time="{at(start + 0.1)}" level=info msg="StartContainer for \\"{init}\\""',
            f'time="{at(start + 0.2)}" level=info msg="received container exit event container_id:\\"{init}\\" id:\\"{init}\\" pid:1 exited_at:{{seconds:{int(start + 0.3)} nanos:{round((start + 0.3) % 1 * 1e9)}}}"',
            f'time="{at(start + 0.4)}" level=info msg="CreateContainer within sandbox \\"{sid}\\" for &ContainerMetadata{{Name:main,Attempt:0,}} returns container id \\"{main}\\""',
            f'time="{at(start + 0.4)}" level=info msg="StartContainer for \\"{main}\\""',
            f'time="{at(start + 0.5)}" level=info msg="StartContainer for \\"{main}\\" returns successfully"',
            f'time="{at(end)}" level=info msg="received container exit event container_id:\\"{main}\\" id:\\"{main}\\" pid:2 exited_at:{{seconds:{int(end)} nanos:{round(end % 1 * 1e9)}}}"',
        ]

    t0 = 1796590050.0
    log = (pod_log("u1", "a" * 64, t0 + 1, t0 + 4) + pod_log("u2", "b" * 64, t0 + 1, t0 + 6)
           + pod_log("u3", "c" * 64, t0 + 7, t0 + 8))  # fmt: skip
    cd = phases.parse_containerd(log)
    pods = [_pod("s1", "u1", "wf.shard(0:0)(0)"), _pod("s2", "u2", "wf.shard(1:1)(0)"),
            _pod("c", "u3", "wf.commit(0)")]  # fmt: skip
    scheduled = {"s1": t0 + 0.9, "s2": t0 + 0.95, "c": t0 + 6.9}
    got = phases.run_phases(t0, t0 + 9, pods, scheduled, cd, {})
    by = {p.name: p.seconds for p in got}
    # s2 exited last (t0 + 6): its phases stand for the step; commit counts from there.
    assert by["shard (last of 2): to scheduled"] == pytest.approx(0.95)
    assert by["shard (last of 2): main"] == pytest.approx(4.5, abs=1e-6)  # 1.5 .. 6
    assert by["commit: to scheduled"] == pytest.approx(0.9, abs=1e-6)
    assert by["Argo: pod done to Workflow Succeeded"] == pytest.approx(1.0, abs=1e-6)
    assert sum(p.seconds for p in got) == pytest.approx(9.0)
