"""isolation-probe: the one command every isolation-demo pod runs (A, B, C alike).

It writes a marker file into the hostPath directory, reads it back, records the kernel identity it
sees and the outcome of a few escape-ish probes. Every probe is wrapped: a denial (EPERM, EACCES,
ENOENT...) is a RESULT, recorded with its errno name, never a failure. Stdlib only, because the
probe runs in the small generator image.

Output: ONE JSON line on stdout (Argo can pass it on as a step output), then a readable summary on
stderr. Exit 0 unless the probe itself is broken (bad arguments exit 2).

Nothing here changes the machine: /proc/sysrq-trigger is only opened, never written; a tmpfs that
mounts is unmounted at once; a device node that gets created is removed at once.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime as dt
import errno
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = "isolation-probe/1"
VARIANTS = ("A", "B", "C")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
GVISOR_SIGNS = ("gvisor",)  # dmesg "Starting gVisor...", release "4.19.0-gvisor" (newer runsc)

Json = dict[str, Any]


def marker_name(run_id: str, variant: str) -> str:
    return f"marker-{run_id}-{variant}.json"


def _err(exc: BaseException) -> Json:
    """A compact, JSON-able description of an exception (errno name when there is one)."""
    out: Json = {"error": f"{type(exc).__name__}: {exc}"}
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        out["errno"] = errno.errorcode.get(code, str(code))
    return out


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def _read_text(path: str, limit: int = 4096) -> Json:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return {"text": fh.read(limit).strip()}
    except OSError as exc:
        return _err(exc)


# --- kernel identity -------------------------------------------------------------------------


def _dmesg_klogctl() -> Json:
    """First kernel log line via syslog(2) (what dmesg does), without needing the dmesg binary."""
    libc = _libc()
    if libc is None:
        return {"error": "libc not loadable"}
    size = 1 << 16
    buf = ctypes.create_string_buffer(size)
    n = libc.klogctl(3, buf, size)  # 3 = SYSLOG_ACTION_READ_ALL, non-destructive
    if n < 0:
        code = ctypes.get_errno()
        return {"error": os.strerror(code), "errno": errno.errorcode.get(code, str(code))}
    lines = [ln for ln in buf.raw[:n].decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return {"error": "kernel log empty"}
    return {"line": lines[0].strip()}


def _dmesg_kmsg() -> Json:
    """First record of /dev/kmsg (format "prio,seq,usec,flags;message")."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return _err(exc)
    try:
        rec = os.read(fd, 8192).decode("utf-8", "replace")
    except OSError as exc:
        return _err(exc)
    finally:
        os.close(fd)
    return {"line": rec.split(";", 1)[-1].strip()}


def _dmesg_binary() -> Json:
    exe = shutil.which("dmesg")
    if exe is None:
        return {"error": "dmesg binary not found"}
    try:
        proc = subprocess.run([exe], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _err(exc)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip() or f"exit {proc.returncode}")[:300]}
    return {"line": lines[0].strip()}


def probe_dmesg() -> Json:
    """First dmesg line by the first method that works; every method's error is kept."""
    attempts: Json = {}
    for name, fn in (("klogctl", _dmesg_klogctl), ("kmsg", _dmesg_kmsg), ("binary", _dmesg_binary)):
        try:
            res = fn()
        except Exception as exc:  # a broken method is a result too
            res = _err(exc)
        if "line" in res:
            return {"first_line": res["line"], "method": name, "errors": attempts}
        attempts[name] = res
    return {"first_line": None, "method": None, "errors": attempts}


def probe_kernel() -> Json:
    u = os.uname()
    pv = _read_text("/proc/version")
    out: Json = {
        "release": u.release,
        "version": u.version,
        "machine": u.machine,
        "proc_version": pv.get("text"),
        "dmesg": probe_dmesg(),
    }
    if "text" not in pv:
        out["proc_version_error"] = pv
    return out


def gvisor_signature(kernel: Json) -> bool:
    """True if the kernel identity carries gVisor's own marks (dmesg banner, release suffix)."""
    texts = [kernel.get("release"), kernel.get("proc_version"), kernel.get("version")]
    dm = kernel.get("dmesg")
    if isinstance(dm, dict):
        texts.append(dm.get("first_line"))
    return any(sign in str(t).lower() for t in texts if t for sign in GVISOR_SIGNS)


# --- escape-ish probes -----------------------------------------------------------------------


def probe_kallsyms(max_lines: int = 5000) -> Json:
    """Readable? Real (non-zero) addresses? Under kptr_restrict unprivileged readers see zeros."""
    try:
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
            lines = nonzero = 0
            for line in fh:
                lines += 1
                if line.split(" ", 1)[0].strip("0"):
                    nonzero += 1
                if lines >= max_lines:
                    break
    except OSError as exc:
        return {"readable": False, **_err(exc)}
    return {"readable": True, "lines_read": lines, "nonzero_addresses": nonzero}


def probe_sys_kernel() -> Json:
    try:
        entries = sorted(os.listdir("/sys/kernel"))
    except OSError as exc:
        return {"listable": False, **_err(exc)}
    return {"listable": True, "entries": len(entries), "sample": entries[:12]}


def probe_mount(scratch: Path) -> Json:
    """Try to mount a tmpfs (needs CAP_SYS_ADMIN); unmount at once if it worked."""
    target = scratch / "mnt"
    try:
        target.mkdir()
    except OSError as exc:
        return {"ok": False, "stage": "mkdir", **_err(exc)}
    libc = _libc()
    if libc is None:
        return {"ok": False, "error": "libc not loadable"}
    flags = 0x2 | 0x4 | 0x8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    rc = libc.mount(b"isolation-probe", str(target).encode(), b"tmpfs", flags, b"size=64k")
    if rc != 0:
        code = ctypes.get_errno()
        return {"ok": False, "error": os.strerror(code), "errno": errno.errorcode.get(code, "?")}
    umount_rc = libc.umount2(str(target).encode(), 2)  # MNT_DETACH
    return {"ok": True, "unmounted": umount_rc == 0}


def probe_mknod(scratch: Path) -> Json:
    """Create a char device node 1:3 (what /dev/null is); remove it at once if that worked."""
    node = scratch / "null-dev"
    try:
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        return {"ok": False, **_err(exc)}
    opened: Json
    try:
        fd = os.open(node, os.O_RDONLY)
        os.close(fd)
        opened = {"open_ok": True}
    except OSError as exc:  # the device cgroup usually forbids using it even when mknod passed
        opened = {"open_ok": False, "open_errno": _err(exc).get("errno")}
    finally:
        node.unlink(missing_ok=True)
    return {"ok": True, **opened}


def probe_sysrq() -> Json:
    """Open /proc/sysrq-trigger for writing and close it again: NOTHING is ever written."""
    try:
        fd = os.open("/proc/sysrq-trigger", os.O_WRONLY)
    except OSError as exc:
        return {"open_write_ok": False, **_err(exc)}
    os.close(fd)
    return {"open_write_ok": True}


def probe_host_mount(host_dir: str) -> Json:
    """The container's own view of the mount that holds host_dir (/proc/self/mountinfo)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            rows = fh.read().splitlines()
    except OSError as exc:
        return _err(exc)
    target = os.path.abspath(host_dir)
    best: Json | None = None
    for row in rows:
        left, _, right = row.partition(" - ")
        f = left.split()
        r = right.split()
        if len(f) < 6 or len(r) < 2:
            continue
        mnt = f[4]
        is_prefix = target == mnt or target.startswith(mnt.rstrip("/") + "/") or mnt == "/"
        if is_prefix and (best is None or len(mnt) >= len(best["mount_point"])):
            best = {
                "mount_point": mnt,
                "root": f[3],
                "options": f[5],
                "fstype": r[0],
                "source": r[1],
                "super_options": r[2] if len(r) > 2 else "",
            }
    if best is None:
        return {"error": f"no mountinfo row covers {target}"}
    best["dedicated_mount"] = best["mount_point"] == target
    return best


def probe_identity() -> Json:
    out: Json = {"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid()}
    status = _read_text("/proc/self/status", 16384).get("text", "")
    for line in str(status).splitlines():
        key, _, value = line.partition(":")
        if key in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp"):
            out[key] = value.strip()
    return out


def _guarded(fn: Any, *args: Any) -> Json:
    try:
        res: Json = fn(*args)
    except Exception as exc:  # one broken probe must not hide the others
        return {"probe_error": True, **_err(exc)}
    return res


# --- marker ----------------------------------------------------------------------------------


def write_marker(path: Path, payload: bytes) -> Json:
    """Write the marker (create/truncate, fsync), then read it back and compare."""
    out: Json = {"path": str(path), "write_ok": False, "read_back_ok": False}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        out["write_ok"] = True
    except OSError as exc:
        out["write_error"] = _err(exc)
        return out
    try:
        out["read_back_ok"] = path.read_bytes() == payload
        if not out["read_back_ok"]:
            out["read_error"] = {"error": "content read back differs from what was written"}
    except OSError as exc:
        out["read_error"] = _err(exc)
    return out


# --- main ------------------------------------------------------------------------------------


def run_probe(variant: str, host_dir: str, run_id: str, pod: str | None = None) -> Json:
    """Run every probe, write and read back the marker, return the result document."""
    result: Json = {
        "schema": SCHEMA,
        "variant": variant,
        "run_id": run_id,
        "pod": pod or os.environ.get("POD_NAME") or socket.gethostname(),
        "node": os.environ.get("NODE_NAME"),
        "nonce": secrets.token_hex(8),  # lets the verifier tell this write from a stale marker
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host_dir": host_dir,
    }
    result["kernel"] = _guarded(probe_kernel)
    result["gvisor_signature"] = gvisor_signature(result["kernel"])
    result["identity"] = _guarded(probe_identity)
    probes: Json = {
        "kallsyms": _guarded(probe_kallsyms),
        "sys_kernel": _guarded(probe_sys_kernel),
        "sysrq_trigger": _guarded(probe_sysrq),
        "host_mount": _guarded(probe_host_mount, host_dir),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="isolation-probe-") as tmp:
            probes["mount_tmpfs"] = _guarded(probe_mount, Path(tmp))
            probes["mknod"] = _guarded(probe_mknod, Path(tmp))
    except OSError as exc:  # no writable temp dir (read-only root without /tmp volume)
        probes["mount_tmpfs"] = probes["mknod"] = {"ok": False, "stage": "tempdir", **_err(exc)}
    result["probes"] = probes

    # The marker carries everything above (not its own write status, which it cannot know).
    payload = (json.dumps(result, sort_keys=True) + "\n").encode()
    result["marker"] = write_marker(Path(host_dir) / marker_name(run_id, variant), payload)
    result["write_ok"] = result["marker"]["write_ok"]
    return result


def _fmt_probe(res: Json, ok_key: str) -> str:
    if res.get(ok_key):
        return "ALLOWED"
    return f"denied ({res.get('errno') or res.get('error') or 'no'})"


def summary(result: Json) -> str:
    k = result["kernel"]
    p = result["probes"]
    m = result["marker"]
    dm = k.get("dmesg", {}) if isinstance(k.get("dmesg"), dict) else {}
    errs = dm.get("errors", {})
    why = ", ".join(f"{m} {e.get('errno') or e.get('error')}" for m, e in sorted(errs.items()))
    dmesg_line = dm.get("first_line") or f"unavailable ({why})"
    ks = p["kallsyms"]
    kallsyms = (
        f"readable, {ks.get('nonzero_addresses')} non-zero addresses in {ks.get('lines_read')}"
        if ks.get("readable")
        else f"not readable ({ks.get('errno') or ks.get('error')})"
    )
    sk = p["sys_kernel"]
    sys_kernel = f"{sk.get('entries')} entries" if sk.get("listable") else f"({sk.get('errno')})"
    hm = p["host_mount"]
    write = "OK" if m["write_ok"] else f"FAILED {m.get('write_error', {}).get('errno', '')}"
    lines = [
        f"isolation-probe variant={result['variant']} run={result['run_id']} pod={result['pod']}",
        f"  kernel release : {k.get('release')}"
        + ("   [gVisor signature]" if result["gvisor_signature"] else ""),
        f"  /proc/version  : {k.get('proc_version')}",
        f"  dmesg (1st)    : {dmesg_line}",
        f"  marker write   : {write}  read back: {'OK' if m['read_back_ok'] else 'no'}"
        f"  {m['path']}",
        f"  host mount     : {result['host_dir']} {hm.get('fstype')} {hm.get('source')} "
        f"root={hm.get('root')} opts={hm.get('options')}",
        f"  /proc/kallsyms : {kallsyms}",
        f"  /sys/kernel    : {sys_kernel}",
        f"  mount tmpfs    : {_fmt_probe(p['mount_tmpfs'], 'ok')}",
        f"  mknod c 1:3    : {_fmt_probe(p['mknod'], 'ok')} (in the container's /tmp)",
        f"  sysrq-trigger  : open for write {_fmt_probe(p['sysrq_trigger'], 'open_write_ok')}"
        " (nothing written)",
        f"  identity       : uid={result['identity'].get('uid')} "
        f"CapEff={result['identity'].get('CapEff')} Seccomp={result['identity'].get('Seccomp')}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="isolation-probe", description=__doc__.splitlines()[0])
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--host-dir", default="/host", help="the hostPath mount (default /host)")
    ap.add_argument("--run-id", required=True, help="shared by the probes and the verifier")
    ap.add_argument("--pod", help="name to record (default $POD_NAME or the hostname)")
    ap.add_argument("--output", help="also write the JSON result to this file (Argo output)")
    args = ap.parse_args(argv)
    if not RUN_ID_RE.match(args.run_id):
        ap.error("--run-id: letters, digits, '.', '_', '-' only (it becomes part of a file name)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_probe(args.variant, args.host_dir, args.run_id, args.pod)
    line = json.dumps(result, sort_keys=True)
    if args.output:
        try:
            Path(args.output).write_text(line + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"isolation-probe: cannot write --output {args.output}: {exc}", file=sys.stderr)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    print(summary(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
