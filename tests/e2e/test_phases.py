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
    assert names[0] == "generate: to scheduled" and names[-1] == "Argo: last exit to Succeeded"
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
# A containerSet pod: generate and main start together; main's emissary waits for generate.
LOG_SET = [
    *LOG[:5],
    f'time="2026-12-06T20:47:45.600000000Z" level=info msg="CreateContainer within sandbox \\"{SID}\\" for &ContainerMetadata{{Name:generate,Attempt:0,}} returns container id \\"{GEN}\\""',
    f'time="2026-12-06T20:47:45.650000000Z" level=info msg="StartContainer for \\"{GEN}\\""',
    f'time="2026-12-06T20:47:45.700000000Z" level=info msg="StartContainer for \\"{GEN}\\" returns successfully"',
    *LOG[5:9],
    f'time="2026-12-06T20:47:46.500000000Z" level=info msg="received container exit event container_id:\\"{GEN}\\" id:\\"{GEN}\\" pid:7500 exited_at:{{seconds:1796590066 nanos:500000000}}"',
    LOG[-1],
]


def test_container_set_pod_phases_follow_the_dependency() -> None:
    cd = phases.parse_containerd(LOG_SET)
    pod = {"metadata": {"name": "p", "uid": UID,
                        "annotations": {"workflows.argoproj.io/node-name": "wf.batch(0)"}}}  # fmt: skip
    work = {("p", "generate"): 0.6, ("p", "main"): 0.2}
    got = phases.run_phases(1796590064.0, 1796590069.0, [pod], {"p": 1796590064.3}, cd, work)
    by = {p.name: p.seconds for p in got}
    assert [p.name for p in got] == [
        "batch(0): to scheduled",
        "batch(0): to sandbox call",
        "batch(0): sandbox",
        "batch(0): argoexec init",
        "batch(0): to generate running",
        "batch(0): generate, emissary + Python start/exit",
        "batch(0): generate, the work (its own figure)",
        "batch(0): main, emissary + Python start/exit",
        "batch(0): main, the work (its own figure)",
        "Argo: last exit to Succeeded",
    ]
    assert by["batch(0): to generate running"] == pytest.approx(0.2, abs=1e-6)  # 45.7 - 45.5
    assert by["batch(0): generate, emissary + Python start/exit"] == pytest.approx(0.2, abs=1e-6)
    # main counts from generate's exit (66.5) to its own (67.8): 1.3 s, 0.2 of it work.
    assert by["batch(0): main, emissary + Python start/exit"] == pytest.approx(1.1, abs=1e-6)
    assert sum(p.seconds for p in got) == pytest.approx(5.0)
