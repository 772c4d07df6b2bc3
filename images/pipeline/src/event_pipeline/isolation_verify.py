"""isolation-verify: the independent check of the isolation demo.

It runs with the DEFAULT runtime and the same hostPath as the probes, so what it lists in the
host directory is what really reached the node. It combines that node view with the probes' own
JSON (what each pod believed) and states, per variant, only what was observed:

- ``write_ok``      from the probe (its write and read-back inside its container);
- ``reached_host``  from the node view (the marker file is in the node directory);
- ``sandbox``       from the kernel the probe saw, compared with the node's kernel.

Prints a comparison table on stderr and ONE JSON document on stdout. ``--store`` inserts the rows
into PostgreSQL (table ``isolation_results``; libpq env vars; psycopg2 imported only then, so the
module stays stdlib-only otherwise). ``--cleanup`` removes this run's markers once recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from event_pipeline.isolation_probe import (
    RUN_ID_RE,
    VARIANTS,
    gvisor_signature,
    probe_kernel,
)

SCHEMA = "isolation-verify/1"
Json = dict[str, Any]

# What each variant asks for (docs/architecture.md, "Isolation probe contract").
DEFAULT_RUNTIMES = {
    "A": "default (runc)",
    "B": "gvisor",
    "C": "gvisor + overlay2=all:memory",
}
EXPECTS_GVISOR = {"A": False, "B": True, "C": True}

# psql-free DDL; the advisory lock makes concurrent first runs safe (CREATE ... IF NOT EXISTS
# alone can still race on the catalog).
DDL = """
CREATE TABLE IF NOT EXISTS isolation_results (
    run_id              text        NOT NULL,
    variant             text        NOT NULL,
    runtime             text        NOT NULL,
    sandbox             text        NOT NULL,
    kernel_release      text,
    node_kernel_release text,
    write_ok            boolean,
    reached_host        boolean     NOT NULL,
    contained           boolean,
    statement           text        NOT NULL,
    probe               jsonb,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, variant)
)
"""
INSERT = """
INSERT INTO isolation_results (run_id, variant, runtime, sandbox, kernel_release,
    node_kernel_release, write_ok, reached_host, contained, statement, probe)
VALUES (%(run_id)s, %(variant)s, %(runtime)s, %(sandbox)s, %(kernel_release)s,
    %(node_kernel_release)s, %(write_ok)s, %(reached_host)s, %(contained)s, %(statement)s,
    %(probe)s)
ON CONFLICT (run_id, variant) DO UPDATE SET
    runtime = EXCLUDED.runtime, sandbox = EXCLUDED.sandbox,
    kernel_release = EXCLUDED.kernel_release,
    node_kernel_release = EXCLUDED.node_kernel_release, write_ok = EXCLUDED.write_ok,
    reached_host = EXCLUDED.reached_host, contained = EXCLUDED.contained,
    statement = EXCLUDED.statement, probe = EXCLUDED.probe, recorded_at = now()
"""


# --- inputs ----------------------------------------------------------------------------------


def parse_probe_json(value: str) -> list[Json]:
    """Probe documents from a file path or a JSON string (Argo passes step outputs as strings).

    Tolerant on purpose: an empty value (a probe pod that failed) gives nothing, and text around
    the JSON line (an executor that mixed stderr into the output) is skipped line by line.
    """
    text = value
    if value and not value.lstrip().startswith(("{", "[")):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError:
            text = value  # not a readable file: treat it as the output itself
    docs: list[Json] = []
    try:
        whole = json.loads(text)
    except ValueError:
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                docs.append(obj)
    else:
        docs = [d for d in (whole if isinstance(whole, list) else [whole]) if isinstance(d, dict)]
    return [d for d in docs if d.get("variant") in VARIANTS]


def node_markers(host_dir: Path, run_id: str) -> dict[str, Json]:
    """Markers of this run in the node directory: variant -> {path, size, content|error}."""
    found: dict[str, Json] = {}
    pattern = re.compile(rf"^marker-{re.escape(run_id)}-([A-Z])\.json$")
    try:
        names = sorted(os.listdir(host_dir))
    except OSError as exc:
        raise SystemExit(f"isolation-verify: cannot list {host_dir}: {exc}") from exc
    for name in names:
        m = pattern.match(name)
        if not m:
            continue
        path = host_dir / name
        entry: Json = {"path": str(path)}
        try:
            raw = path.read_bytes()
            entry["size"] = len(raw)
            entry["content"] = json.loads(raw)
        except (OSError, ValueError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        found[m.group(1)] = entry
    return found


# --- comparison ------------------------------------------------------------------------------


def classify_sandbox(kernel: Json | None, node_kernel: str) -> str:
    """'gvisor', 'host-kernel' or 'other-kernel' from a probe's kernel view; 'unknown' if none."""
    if not kernel or not kernel.get("release"):
        return "unknown"
    if gvisor_signature(kernel):
        return "gvisor"
    if kernel.get("release") == node_kernel:
        return "host-kernel"
    return "other-kernel"


def compare_variant(
    variant: str, runtime: str, probe: Json | None, marker: Json | None, node_kernel: str
) -> Json:
    """One row of the report. Every sentence is backed by an observation in the row."""
    reached = marker is not None
    kernel = (probe or {}).get("kernel") or ((marker or {}).get("content") or {}).get("kernel")
    write_ok: bool | None = bool(probe["write_ok"]) if probe and "write_ok" in probe else None
    sandbox = classify_sandbox(kernel, node_kernel)
    marker_nonce = ((marker or {}).get("content") or {}).get("nonce")
    probe_nonce = (probe or {}).get("nonce")
    same_write = None if not (marker and probe) else marker_nonce == probe_nonce

    notes: list[str] = []
    if probe is None:
        notes.append("no probe output was given for this variant")
    if EXPECTS_GVISOR[variant] and sandbox in ("host-kernel", "other-kernel"):
        notes.append(
            f"ran WITHOUT gVisor: kernel {kernel.get('release') if kernel else '?'} "
            f"{'is the node' + chr(39) + 's' if sandbox == 'host-kernel' else 'has no gVisor mark'}"
            " (runtimeClassName not applied?)"
        )
    if not EXPECTS_GVISOR[variant] and sandbox == "gvisor":
        notes.append("expected the default runtime but saw a gVisor kernel")
    if same_write is False:
        notes.append("the marker on the node is not this probe's write (stale or another writer)")

    if write_ok is True and reached:
        what = "write succeeded and REACHED the node"
    elif write_ok is True and not reached:
        what = "write succeeded inside the sandbox and did NOT reach the node"
    elif write_ok is False and not reached:
        err = ((probe or {}).get("marker") or {}).get("write_error") or {}
        reason = err.get("errno") or err.get("error") or "error"
        what = f"write was denied ({reason}); nothing reached the node"
    elif write_ok is False and reached:
        what = "probe reported a failed write, yet a marker of this run is on the node"
    elif reached:
        what = "a marker of this run reached the node"
    else:
        # Without the probe's output the verifier cannot tell a contained write from a failed
        # or missing pod: say only what the node shows.
        what = "no marker reached the node; whether the write succeeded inside is not known here"

    if variant == "C" and reached:
        notes.append("containment NOT observed: C's marker reached the node (overlay not applied?)")
    if variant == "B" and write_ok and reached and sandbox == "gvisor":
        notes.append("gVisor default: bind mounts are served by the gofer, writes reach the node")

    contained = None if write_ok is None else bool(write_ok and not reached)
    return {
        "variant": variant,
        "runtime": runtime,
        "sandbox": sandbox,
        "kernel_release": kernel.get("release") if kernel else None,
        "node_kernel_release": node_kernel,
        "dmesg_first_line": ((kernel or {}).get("dmesg") or {}).get("first_line"),
        "write_ok": write_ok,
        "reached_host": reached,
        "contained": contained,
        "marker_is_this_write": same_write,
        "pod": (probe or {}).get("pod"),
        "statement": f"{variant} ({runtime}, {sandbox}): {what}"
        + ("; " + "; ".join(notes) if notes else ""),
        "probe": probe,
    }


def build_report(
    run_id: str,
    probes: list[Json],
    markers: dict[str, Json],
    node_kernel: Json,
    runtimes: dict[str, str] | None = None,
) -> Json:
    rt = {**DEFAULT_RUNTIMES, **(runtimes or {})}
    by_variant: dict[str, Json] = {}
    for doc in probes:
        if doc.get("run_id") not in (None, run_id):
            continue  # another run's output: never mix runs
        by_variant[doc["variant"]] = doc
    release = str(node_kernel.get("release"))
    rows = [
        compare_variant(v, rt[v], by_variant.get(v), markers.get(v), release)
        for v in VARIANTS  # every variant, even silent ones: an absent marker is an observation
    ]
    conclusions: list[str] = []
    verifier_sandboxed = gvisor_signature(node_kernel)
    if verifier_sandboxed:
        conclusions.append(
            "the verifier itself runs under gVisor: its 'node view' is a sandbox view, not the node"
        )
    k = {r["variant"]: r for r in rows}
    if "A" in k and "B" in k and k["A"]["kernel_release"] and k["B"]["kernel_release"]:
        if k["A"]["kernel_release"] != k["B"]["kernel_release"]:
            conclusions.append(
                f"kernels differ: A sees {k['A']['kernel_release']}, "
                f"B sees {k['B']['kernel_release']}"
            )
        else:
            conclusions.append(
                f"A and B see the same kernel ({k['A']['kernel_release']}): B was not sandboxed"
            )
    conclusions += [r["statement"] for r in rows]
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "verified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "node_kernel": {
            "release": node_kernel.get("release"),
            "proc_version": node_kernel.get("proc_version"),
        },
        "verifier_sandboxed": verifier_sandboxed,
        "variants": rows,
        "conclusions": conclusions,
    }


def _yn(v: bool | None) -> str:
    return "?" if v is None else ("yes" if v else "no")


def format_table(report: Json) -> str:
    head = ("variant", "runtime", "sandbox", "kernel", "write_ok", "reached_host", "contained")
    rows = [
        (
            r["variant"],
            r["runtime"],
            r["sandbox"],
            str(r["kernel_release"]),
            _yn(r["write_ok"]),
            _yn(r["reached_host"]),
            _yn(r["contained"]),
        )
        for r in report["variants"]
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [
        f"isolation-verify run={report['run_id']} node kernel={report['node_kernel']['release']}",
        fmt.format(*head),
        fmt.format(*("-" * w for w in widths)),
    ]
    out += [fmt.format(*row).rstrip() for row in rows]
    out += ["", *[f"- {c}" for c in report["conclusions"]]]
    return "\n".join(out)


# --- storage and cleanup ---------------------------------------------------------------------


def store(report: Json, connect_timeout: float) -> int:
    # Lazy: the probe image has no database client. Untyped library (no stubs pinned).
    from psycopg2.extras import Json as PgJson  # type: ignore[import-untyped,unused-ignore]

    from event_pipeline.connection import connect

    # libpq env vars PGHOST, PGUSER, ...; retried: a pod that has just started may not be let
    # through the NetworkPolicies yet (the policy agent adds its IP a moment later).
    conn = connect(connect_timeout, "--connect-timeout", prog="isolation-verify")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('isolation_results'))")
            cur.execute(DDL)
            for r in report["variants"]:
                cur.execute(INSERT, {**r, "run_id": report["run_id"], "probe": PgJson(r["probe"])})
    finally:
        conn.close()
    return len(report["variants"])


def cleanup(markers: dict[str, Json]) -> list[str]:
    removed = []
    for entry in markers.values():
        try:
            os.unlink(entry["path"])
            removed.append(entry["path"])
        except FileNotFoundError:
            pass
    return removed


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="isolation-verify", description=__doc__.splitlines()[0])
    ap.add_argument("--host-dir", default="/host", type=Path)
    ap.add_argument("--run-id", required=True)
    ap.add_argument(
        "--probe-json",
        action="append",
        default=[],
        metavar="FILE_OR_JSON",
        help="a probe's output (file path or the JSON itself); repeat per variant",
    )
    ap.add_argument(
        "--runtime",
        action="append",
        default=[],
        metavar="VARIANT=LABEL",
        help="label of the runtime a variant asked for (defaults: the cluster's)",
    )
    ap.add_argument("--store", action="store_true", help="insert into isolation_results")
    ap.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --store: how long to keep trying to reach PostgreSQL (default 30)",
    )
    ap.add_argument("--cleanup", action="store_true", help="remove this run's markers after")
    ap.add_argument("--output", type=Path, help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    if not RUN_ID_RE.match(args.run_id):
        ap.error("--run-id: letters, digits, '.', '_', '-' only")
    for item in args.runtime:
        v, sep, label = item.partition("=")
        if not sep or v not in VARIANTS or not label:
            ap.error(f"--runtime {item!r}: expected A=label, B=label or C=label")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    probes = [doc for value in args.probe_json for doc in parse_probe_json(value)]
    runtimes = dict(item.split("=", 1) for item in args.runtime)
    markers = node_markers(args.host_dir, args.run_id)
    report = build_report(args.run_id, probes, markers, probe_kernel(), runtimes)
    print(format_table(report), file=sys.stderr)
    line = json.dumps(report, sort_keys=True)
    if args.output:
        args.output.write_text(line + "\n", encoding="utf-8")
    rc = 0
    if args.store:
        try:
            n = store(report, args.connect_timeout)
            print(f"isolation-verify: stored {n} rows in isolation_results", file=sys.stderr)
        except Exception as exc:  # report printed above; storing is what failed
            print(f"isolation-verify: --store failed: {exc}", file=sys.stderr)
            rc = 1
    if args.cleanup and rc == 0:
        removed = cleanup(markers)
        print(f"isolation-verify: removed {len(removed)} marker(s)", file=sys.stderr)
    sys.stdout.write(line + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
