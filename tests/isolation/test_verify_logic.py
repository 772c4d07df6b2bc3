"""Unit tests of the verifier's comparison: it must state only what it observed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from event_pipeline import isolation_verify as iv

NODE = "6.1.0-node"
GVISOR_KERNEL = {
    "release": "4.4.0",
    "proc_version": "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016",
    "dmesg": {"first_line": "[   0.000000] Starting gVisor..."},
}
NODE_KERNEL = {"release": NODE, "proc_version": f"Linux version {NODE}", "dmesg": {}}


def probe(variant: str, kernel: dict[str, Any], write_ok: bool = True, **kw: Any) -> dict[str, Any]:
    doc = {
        "variant": variant,
        "run_id": "r1",
        "nonce": f"n-{variant}",
        "kernel": kernel,
        "write_ok": write_ok,
        "marker": {"write_ok": write_ok},
        "pod": f"pod-{variant.lower()}",
    }
    doc.update(kw)
    return doc


def marker(doc: dict[str, Any]) -> dict[str, Any]:
    return {"path": f"/host/marker-r1-{doc['variant']}.json", "content": doc}


def report(
    probes: list[dict[str, Any]], markers: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    rep = iv.build_report("r1", probes, markers, NODE_KERNEL)
    return {r["variant"]: r for r in rep["variants"]} | {"_": rep}


def test_expected_outcome_is_stated_as_observed() -> None:
    a, b, c = probe("A", NODE_KERNEL), probe("B", GVISOR_KERNEL), probe("C", GVISOR_KERNEL)
    rows = report([a, b, c], {"A": marker(a), "B": marker(b)})
    assert (rows["A"]["sandbox"], rows["A"]["reached_host"], rows["A"]["contained"]) == (
        "host-kernel",
        True,
        False,
    )
    assert rows["B"]["sandbox"] == "gvisor" and rows["B"]["reached_host"] is True
    assert rows["C"]["contained"] is True
    assert "did NOT reach the node" in rows["C"]["statement"]
    assert "kernels differ" in rows["_"]["conclusions"][0]


def test_c_reaching_the_host_is_reported_as_not_contained() -> None:
    c = probe("C", GVISOR_KERNEL)
    row = report([c], {"C": marker(c)})["C"]
    assert row["contained"] is False
    assert "containment NOT observed" in row["statement"]
    assert "did NOT reach" not in row["statement"]


def test_b_and_c_without_gvisor_say_so() -> None:
    a, b, c = probe("A", NODE_KERNEL), probe("B", NODE_KERNEL), probe("C", NODE_KERNEL)
    rows = report([a, b, c], {v: marker(d) for v, d in (("A", a), ("B", b), ("C", c))})
    for v in ("B", "C"):
        assert rows[v]["sandbox"] == "host-kernel"
        assert "WITHOUT gVisor" in rows[v]["statement"]
    assert "WITHOUT gVisor" not in rows["A"]["statement"]
    assert any("B was not sandboxed" in c for c in rows["_"]["conclusions"])


def test_denied_write_is_a_result() -> None:
    b = probe("B", GVISOR_KERNEL, write_ok=False)
    b["marker"]["write_error"] = {"errno": "EACCES"}
    row = report([b], {})["B"]
    assert row["write_ok"] is False and row["reached_host"] is False
    assert row["contained"] is False  # a failed write is not containment
    assert "denied (EACCES)" in row["statement"]


def test_missing_probe_output_claims_nothing_about_the_inside() -> None:
    rows = report([], {})
    for v in ("A", "B", "C"):
        assert rows[v]["write_ok"] is None and rows[v]["contained"] is None
        assert rows[v]["reached_host"] is False
        assert "not known" in rows[v]["statement"]


def test_marker_alone_gives_kernel_and_reach() -> None:
    b = probe("B", GVISOR_KERNEL)
    row = report([], {"B": marker(b)})["B"]
    assert row["reached_host"] is True and row["sandbox"] == "gvisor"
    assert row["write_ok"] is None


def test_stale_marker_is_flagged() -> None:
    a = probe("A", NODE_KERNEL)
    old = dict(a, nonce="other")
    row = report([a], {"A": marker(old)})["A"]
    assert row["marker_is_this_write"] is False
    assert "stale" in row["statement"]


def test_other_runs_probes_are_ignored() -> None:
    other = probe("A", NODE_KERNEL, run_id="r0")
    row = report([other], {})["A"]
    assert row["write_ok"] is None


def test_parse_probe_json_forms(tmp_path: Path) -> None:
    doc = probe("A", NODE_KERNEL)
    line = json.dumps(doc)
    f = tmp_path / "a.json"
    f.write_text(line + "\n")
    assert iv.parse_probe_json(str(f)) == [doc]
    assert iv.parse_probe_json(line) == [doc]
    assert iv.parse_probe_json(f"summary text\n{line}\nmore text") == [doc]
    assert iv.parse_probe_json(json.dumps([doc, probe("B", GVISOR_KERNEL)]))[1]["variant"] == "B"
    assert iv.parse_probe_json("") == []
    assert iv.parse_probe_json("{{tasks.probe-c.outputs.result}}") == []


def test_node_markers_and_cleanup_touch_only_this_run(tmp_path: Path) -> None:
    for name in ("marker-r1-A.json", "marker-r1-C.json", "marker-r10-A.json", "notes.txt"):
        (tmp_path / name).write_text(json.dumps({"variant": name[-6]}))
    (tmp_path / "marker-r1-B.json").write_text("not json")
    found = iv.node_markers(tmp_path, "r1")
    assert sorted(found) == ["A", "B", "C"]
    assert "error" in found["B"]
    iv.cleanup(found)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker-r10-A.json", "notes.txt"]


def test_table_lists_every_variant() -> None:
    rep = iv.build_report("r1", [probe("A", NODE_KERNEL)], {}, NODE_KERNEL)
    table = iv.format_table(rep)
    assert [ln.split()[0] for ln in table.splitlines()[3:6]] == ["A", "B", "C"]
