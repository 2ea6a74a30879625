"""Test hosts with their own addresses: network namespaces joined by veth pairs to one bridge.

Layout for a run with id ``P`` (the pytest process id, so a crashed earlier run never collides):
bridge ``wsmnPb`` in the root namespace holds ``198.18.K.1/24`` (``K`` from the id); host ``i`` is the
namespace ``wsmnPh<i>`` whose ``eth0`` (peer of ``wsmnPv<i>`` on the bridge) holds ``198.18.K.<10+i>``.
Every address is in the 198.18.0.0/15 benchmarking range; nothing is routed off the machine.
:func:`clean_stale` removes what runs whose process is gone left behind (our ``wsmn`` prefix only).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PREFIX", "Host", "Net", "available", "clean_stale", "create", "destroy"]

PREFIX = "wsmn"


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def available() -> str | None:
    """None when namespaces can be made here, else why not (the reason a test is skipped with)."""
    if os.geteuid() != 0:
        return "multi-node tests need root (ip netns, veth)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}probe{os.getpid()}"[:15]
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class Host:
    index: int  #: 1-based
    ns: str
    veth: str  #: the root-namespace end, on the bridge: `ip link set <veth> down` cuts this host off
    ip: str


@dataclass
class Net:
    run_id: int
    bridge: str
    gateway: str  #: the bridge's address in the root namespace (where the S3 server listens)
    hosts: list[Host] = field(default_factory=list)


def _names(run_id: int, n: int) -> tuple[str, int, list[tuple[str, str]]]:
    k = run_id % 250 + 1
    return (
        f"{PREFIX}{run_id}b",
        k,
        [(f"{PREFIX}{run_id}h{i}", f"{PREFIX}{run_id}v{i}") for i in range(1, n + 1)],
    )


def create(n: int, run_id: int | None = None) -> Net:
    """A bridge and ``n`` host namespaces; destroyed again if any step fails."""
    run_id = os.getpid() if run_id is None else run_id
    bridge, k, names = _names(run_id, n)
    net = Net(run_id, bridge, f"198.18.{k}.1")
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{net.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, (ns, veth) in enumerate(names, start=1):
            host = Host(i, ns, veth, f"198.18.{k}.{10 + i}")
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=30)
            net.hosts.append(host)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", bridge, "up")
            _ip("addr", "add", f"{host.ip}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
    except BaseException:
        destroy(net)
        raise
    return net


def _kill_namespace_processes(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass


def destroy(net: Net) -> None:
    """Kill whatever still runs in the namespaces, delete them and the bridge (never raises)."""
    bridge, _, names = _names(net.run_id, max(len(net.hosts), 3))
    for ns, veth in names:
        if Path(f"/run/netns/{ns}").exists():
            _kill_namespace_processes(ns)
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["ip", "link", "delete", veth], capture_output=True)
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def clean_stale() -> list[str]:
    """Remove namespaces and links with our prefix whose creating process (the id in the name) is gone."""
    removed = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [x.split()[0] for x in listed if x.strip()] + re.findall(r"^\d+: ([^:@]+)", links, re.M)
    for name in names:
        m = re.fullmatch(rf"{PREFIX}(\d+)([bhv])\d*", name)
        if not m or Path(f"/proc/{m[1]}").exists():
            continue
        if m[2] == "h":
            _kill_namespace_processes(name)
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        else:
            subprocess.run(["ip", "link", "delete", name], capture_output=True)
        removed.append(name)
    return removed
