"""What the cluster must never change on the host, as one comparable text: the host network
namespace's interfaces, addresses and routes, its iptables/ip6tables (nft and legacy back-ends)
and nftables rulesets, the kernel tunables the kubelet, kube-proxy and the CNI plugins touch,
and the host's mounts.

    python -m e2elib host-state                      print the snapshot
    python -m e2elib host-state --compare FILE [--running]
        compare with an earlier snapshot; --running allows what a running cluster must have on
        the host (/run/netns/E2E_NETNS and its mount, the cgroup E2E_CGROUP). Exit 1 and print
        the difference when they differ.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .harness import Failed, log

SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "fs.inotify.max_user_instances",
    "fs.inotify.max_user_watches",
    "kernel.pid_max",
    "vm.max_map_count",
)
# Where the node's mounts would leak to if propagation were wrong (other programs' mounts
# elsewhere, e.g. a build's chroot, are not ours to judge). /run/netns itself becomes a mount
# point at the first `ip netns add` and stays one.
MOUNTS = re.compile(r"^(/|/(run|var/lib|var/log|sys|proc|dev|etc|opt|usr)(/[^ ]*)?) ")


def _out(*argv: str, stderr: int = subprocess.DEVNULL) -> str:
    """A command's output; a missing key or a failing tool shows as such in the snapshot."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=60)
    return proc.stdout


def snapshot() -> str:
    parts = [
        "## ip link / addr / route",
        _out("ip", "-o", "link", "show"),
        _out("ip", "-o", "addr", "show"),
        _out("ip", "route", "show", "table", "all"),
        "## iptables",
    ]
    for save in (
        "iptables-save",
        "ip6tables-save",
        "iptables-legacy-save",
        "ip6tables-legacy-save",
    ):
        if shutil.which(save):
            rules = [
                re.sub(r"\[[0-9]+:[0-9]+\]", "[]", line)
                for line in _out(save).splitlines()
                if not line.startswith("#")
            ]
            parts += [f"# {save}", *rules]
    parts.append("## nft")
    if shutil.which("nft"):
        # --stateless: without packet counters (the host's own traffic, e.g. docker0, moves them)
        proc = subprocess.run(
            ["nft", "--stateless", "list", "ruleset"], capture_output=True, text=True, timeout=60
        )
        parts.append(proc.stdout if proc.returncode == 0 else "(nft failed)")
    parts += ["## sysctl", _out("sysctl", *SYSCTLS, stderr=subprocess.STDOUT)]
    mounts = _out("findmnt", "-rn", "-o", "TARGET,FSTYPE,SOURCE").splitlines()
    parts += [
        "## mounts",
        *sorted(m for m in mounts if MOUNTS.match(m) and not m.startswith("/run/netns ")),
        "## netns",
        _out("ip", "netns", "list"),
        "## cgroups",
        *sorted(glob.glob(f"/sys/fs/cgroup/*/{os.environ['E2E_CGROUP']}")),
    ]
    return "\n".join(p.rstrip("\n") for p in parts if p) + "\n"


def _cluster_filtered(lines: list[str]) -> list[str]:
    netns, cgroup = re.escape(os.environ["E2E_NETNS"]), re.escape(os.environ["E2E_CGROUP"])
    own = re.compile(rf"^(/run/netns/{netns} |{netns}( |$)|/sys/fs/cgroup/[^/]+/{cgroup}$)")
    return [line for line in lines if not own.match(line)]


def difference(before: str, now: str, running: bool) -> list[str]:
    """The unified diff of two snapshots (empty: unchanged); with running, less the cluster's."""
    old, new = before.splitlines(), now.splitlines()
    if running:
        old, new = _cluster_filtered(old), _cluster_filtered(new)
    return list(difflib.unified_diff(old, new, "before", "now", lineterm=""))


def unchanged(before_file: Path, running: bool, quiet: bool = False) -> bool:
    """Compare the host with a snapshot; print the difference (unless quiet)."""
    if not before_file.is_file():
        raise Failed(f"no snapshot {before_file}")
    diff = difference(before_file.read_text(), snapshot(), running)
    if quiet:
        return not diff
    if diff:
        log(f"HOST CHANGED since {before_file}:")
        print("\n".join(diff), file=sys.stderr)
        return False
    log(
        "host unchanged (interfaces, routes, iptables, nftables, sysctls, mounts"
        f"{'; cluster running' if running else ''})"
    )
    return True
