"""Simulated machines for the multi-host tests: Linux network namespaces on one bridge.

Each host is a network namespace with its own loopback and one address in SUBNET, on a
veth pair into a bridge this process creates. The bridge has no address and no namespace
has a default route, so hosts reach each other and nothing else: no packet leaves for
any other address. Each process a host runs gets the host's name in a UTS namespace of
its own, so `socket.gethostname()` (Celery's `%h`) is the host's.

    with hosts.Network() as network:
        redis_host = network.host("redis")
        worker = network.host("worker1", hostname="worker")
        subprocess.run(worker.prefix + ["hostname"])   # prints "worker"
        worker.block(redis_host)                       # a partition between the two
        worker.unblock(redis_host)
        worker.power_off()                             # SIGKILL all it runs, link cut

Each host's /etc/hosts names every host of the network (`ip netns exec` mounts
/etc/netns/NAMESPACE/hosts there), as Erlang's node names need: rabbit@rabbit1.

On leaving the block, every process running in a host is killed (by PID, found by its
network namespace), and every namespace, its /etc/netns folder, every veth and the bridge
are deleted, even when the block raised. Needs root, `ip` (iproute2), `unshare` and
`hostname`; `block` needs `nft` (nftables). `scripts/install-servers` installs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.251.0"  # /24: used by these namespaces only, never routed from the machine
PREFIX = "ctb"  # bridge ctb<pid>, veths ctb<pid>v<n>, namespaces ctb<pid>-<label>
NETNS = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")  # per namespace files `ip netns exec` mounts over /etc
KILL_TIMEOUT = 10  # seconds for killed processes to go


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _namespace_id(path: Path) -> tuple[int, int] | None:
    """The identity of a network namespace (of a bind-mounted file or /proc/PID/ns/net)."""
    try:
        found = path.stat()
    except OSError:  # gone, or a process that has exited
        return None
    return found.st_dev, found.st_ino


def pids_in(netns: str) -> list[int]:
    """The processes running in the network namespace `netns` (`ip netns pids`)."""
    wanted = _namespace_id(NETNS / netns)
    if wanted is None:
        return []
    return [
        int(proc.name)
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit() and _namespace_id(proc / "ns" / "net") == wanted
    ]


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU time a process used (0 if it has ended), with its children that have ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = fields[11:15] if children else fields[11:13]  # utime, stime, cutime, cstime
    return sum(map(int, ticks)) / os.sysconf("SC_CLK_TCK")


def kill_all(netns: str) -> None:
    """SIGKILL every process in `netns`, then wait until none is left."""
    deadline = time.monotonic() + KILL_TIMEOUT
    while pids := pids_in(netns):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {netns} outlived SIGKILL")
        time.sleep(0.05)


@dataclass
class Host:
    """One simulated machine: run its commands with `prefix + [program, ...]`."""

    network: Network
    label: str  # unique in the network: names its namespace
    hostname: str  # what its processes see as the machine's name; may repeat
    address: str
    veth: str  # its end of the link, on the bridge
    machine_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # systemd's %m
    blocked: set = field(default_factory=set)  # addresses it cannot reach (block())

    @property
    def netns(self) -> str:
        return f"{self.network.bridge}-{self.label}"

    @property
    def prefix(self) -> list[str]:
        """Runs a command in this host, under its host name (`ip netns exec` execs it, as do
        `unshare` and `sh`: its PID is the one Popen returns)."""
        name_it = 'hostname "$0" && exec "$@"'
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c", name_it,
                self.hostname]  # fmt: skip

    def pids(self) -> list[int]:
        return pids_in(self.netns)

    def cpu_seconds(self) -> float:
        """CPU time used by the processes it runs, and by their children that have ended."""
        return sum(map(cpu_seconds, self.pids()))

    def cut(self) -> None:
        """Unplug its link: no packet in or out, to or from any host."""
        _ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        _ip("link", "set", self.veth, "up")

    def block(self, other: Host) -> None:
        """Drop every packet between this host and `other`, both ways, silently."""
        self.blocked.add(other.address)
        self._firewall()

    def unblock(self, other: Host) -> None:
        self.blocked.discard(other.address)
        self._firewall()

    def _firewall(self) -> None:
        """Replace this host's nftables table with one dropping `blocked`, in one step."""
        rules = ["add table inet cut", "delete table inet cut"]
        if self.blocked:
            addresses = "{ " + ", ".join(sorted(self.blocked)) + " }"
            rules += [
                "table inet cut {",
                f"chain in {{ type filter hook input priority 0; ip saddr {addresses} drop; }}",
                f"chain out {{ type filter hook output priority 0; ip daddr {addresses} drop; }}",
                "}",
            ]
        command = ["ip", "netns", "exec", self.netns, "nft", "-f", "-"]
        done = subprocess.run(command, input="\n".join(rules), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"nft in {self.netns}: {done.stderr.strip()}")

    def power_off(self) -> None:
        """Cut the link first, so that nothing the dying processes send gets out, then
        SIGKILL every process the host runs: what the other hosts see of a power cut."""
        self.cut()
        kill_all(self.netns)

    def remove(self) -> None:
        kill_all(self.netns)
        with contextlib.suppress(RuntimeError):  # gone with a namespace deleted before
            _ip("link", "del", self.veth)
        _ip("netns", "del", self.netns)
        shutil.rmtree(ETC_NETNS / self.netns, ignore_errors=True)


class Network:
    """A bridge and the hosts on it; a context manager that removes them all."""

    def __init__(self) -> None:
        self.bridge = f"{PREFIX}{os.getpid()}"
        self.hosts: list[Host] = []
        self.count = 0  # hosts made so far: numbers addresses and veths, never reused

    def __enter__(self) -> Network:
        remove_stale()
        _ip("link", "add", self.bridge, "type", "bridge")
        try:
            # No address, and no IPv6 link-local one: the machine itself is not on it.
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1")
            _ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def host(self, label: str, hostname: str | None = None) -> Host:
        """A new host named `label` (its host name too unless `hostname` is given)."""
        self.count += 1
        if self.count > 240:
            raise RuntimeError(f"no addresses left in {SUBNET}.0/24")
        host = Host(self, label, hostname or label, f"{SUBNET}.{10 + self.count}",
                    f"{self.bridge}v{self.count}")  # fmt: skip
        _ip("netns", "add", host.netns)
        self.hosts.append(host)
        # Its end of the pair goes into the namespace as eth0; ours joins the bridge.
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        inside = ["-n", host.netns]
        _ip(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        self._name_hosts()
        return host

    def _name_hosts(self) -> None:
        """Write each host's /etc/hosts: localhost, and every host by its host name (the
        first of the hosts that share one). Rewritten in place: a process already running
        in a host reads the new names, through the mount of the same file."""
        names = {}
        for host in self.hosts:
            names.setdefault(host.hostname, host.address)
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, address in names.items()]
        for host in self.hosts:
            (ETC_NETNS / host.netns).mkdir(parents=True, exist_ok=True)
            (ETC_NETNS / host.netns / "hosts").write_text("\n".join(lines) + "\n")

    def remove(self, host: Host) -> None:
        self.hosts.remove(host)
        host.remove()

    def close(self) -> None:
        """Remove every host (processes first), then the bridge; report what failed."""
        errors = []
        for host in reversed(self.hosts):
            try:
                host.remove()
            except Exception as error:
                errors.append(f"{host.label}: {error}")
        self.hosts.clear()
        with contextlib.suppress(RuntimeError):  # never made, or made by a dead __enter__
            _ip("link", "del", self.bridge)
        if errors:
            raise RuntimeError("removing hosts failed: " + "; ".join(errors))


def _stale(name: str) -> bool:
    """Whether `name` is one of ours, made by a process that no longer runs."""
    found = re.fullmatch(rf"{PREFIX}(\d+)(?:v\d+|-.+)?", name)
    return bool(found) and not Path(f"/proc/{found[1]}").exists()


def remove_stale() -> None:
    """Remove what a test process that died without cleaning up left behind: namespaces
    (their processes first), veths and bridges named for a PID that no longer runs."""
    for netns in filter(_stale, os.listdir(NETNS) if NETNS.is_dir() else []):
        kill_all(netns)
        _ip("netns", "del", netns)
    for netns in filter(_stale, os.listdir(ETC_NETNS) if ETC_NETNS.is_dir() else []):
        shutil.rmtree(ETC_NETNS / netns)
    links = [link["ifname"] for link in json.loads(_ip("-j", "link", "show"))]
    for name in sorted(filter(_stale, links), key=len, reverse=True):  # veths, then bridges
        with contextlib.suppress(RuntimeError):  # a veth goes with its peer
            _ip("link", "del", name)
