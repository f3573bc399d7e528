"""Many nodes on one machine: one network namespace per node on a Linux bridge, as pods on a cluster network.

Every node has its own address in 198.18.0.0/24 (reserved for benchmarking; here it exists only
between our namespaces: no default route, and the bridge itself has no address, so nothing leaves
and the host cannot reach in), its own loopback, the hostname a pod gets (its name, in a UTS
namespace per command) and an /etc/hosts that resolves every node's names, which is what the
cluster's DNS does for the operators' services. So every pod can listen on the same port, peers are
reached by name only, and a node can vanish from the network (its link set down: no FIN, no RST,
silence) or die (its processes killed while its link is down).

Names carry a unique tag, `tfn<pid>-<n>` (pid and counter in base 36), short enough for interface
names (15 characters). Everything is removed on close, on every exit path; `sweep_stale` removes
what a crashed run left behind (namespaces whose creating process is gone).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

PREFIX = "tfn"
SUBNET = "198.18.0"
NETNS_ETC = Path("/etc/netns")
_TAG = re.compile(rf"^{PREFIX}([0-9a-z]+)-([0-9a-z]+)")
_counter = itertools.count()
_open_clusters: list[Cluster] = []


class NetnsError(RuntimeError):
    """A namespace, link or bridge operation failed."""


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its stdout, or NetnsError with its stderr."""
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit code {done.returncode}'}")
    return done.stdout


def unavailable_reason() -> str | None:
    """None when this process can build namespaces, veth pairs and a bridge; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install iproute2 util-linux)"
    try:
        with Cluster({"probe-0": ()}):
            pass
    except (NetnsError, OSError, subprocess.SubprocessError) as exc:
        return f"cannot build a namespace on a bridge here: {exc}"
    return None


@dataclass(frozen=True)
class Node:
    """One pod's place on the network: its hostname, its namespace, its address and the names it answers to."""

    hostname: str
    namespace: str
    address: str
    names: tuple[str, ...]
    link: str  # the host side of its veth pair, plugged into the bridge


class Cluster:
    """A bridge and one namespace per node; `nodes` maps each hostname to the other names it answers to."""

    def __init__(self, nodes: Mapping[str, Iterable[str]]) -> None:
        if not 0 < len(nodes) <= 36:
            raise ValueError(f"a cluster has 1 to 36 nodes, got {len(nodes)}")
        self.tag = f"{PREFIX}{_base36(os.getpid())}-{_base36(next(_counter))}"
        self.bridge = f"{self.tag}b"
        self.nodes = {
            hostname: Node(
                hostname,
                f"{self.tag}-{hostname}",
                f"{SUBNET}.{i + 1}",
                (hostname, *dict.fromkeys(n for n in names if n != hostname)),
                f"{self.tag}v{_base36(i)}",
            )
            for i, (hostname, names) in enumerate(nodes.items())
        }
        self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Build the bridge and every node; on any failure, remove what was built and raise."""
        sweep_stale()
        _open_clusters.append(self)
        self._started = True
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("link", "set", self.bridge, "up")
            for node in self.nodes.values():
                self._add_node(node)
        except BaseException:
            self.close()
            raise

    def _add_node(self, node: Node) -> None:
        ip("netns", "add", node.namespace)
        ip("link", "add", node.link, "type", "veth", "peer", "name", "eth0", "netns", node.namespace)
        ip("link", "set", node.link, "master", self.bridge, "up")
        ip("-n", node.namespace, "addr", "add", f"{node.address}/24", "dev", "eth0")
        ip("-n", node.namespace, "link", "set", "eth0", "up")
        ip("-n", node.namespace, "link", "set", "lo", "up")
        etc = NETNS_ETC / node.namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self.hosts_file())
        # No DNS server is reachable: a name missing from /etc/hosts fails at once instead of timing out.
        (etc / "resolv.conf").write_text(
            "# trainflow multi-node test: every name is in /etc/hosts\n"
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )

    def hosts_file(self) -> str:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{node.address} {' '.join(node.names)}" for node in self.nodes.values()]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Kill every process in the nodes, delete namespaces, links, bridge and /etc/netns entries (idempotent)."""
        if not self._started:
            return
        self._started = False
        errors = []
        for node in self.nodes.values():
            errors += _remove_namespace(node.namespace, node.link)
        ip("link", "del", self.bridge, check=False)
        if self in _open_clusters:
            _open_clusters.remove(self)
        if errors:
            raise NetnsError("; ".join(errors))

    def node(self, hostname: str) -> Node:
        return self.nodes[hostname]

    def command(self, hostname: str, argv: Sequence[str]) -> list[str]:
        """`argv` as run on node `hostname`: in its network namespace, with its hostname and /etc/hosts."""
        node = self.nodes[hostname]
        return [
            "ip",
            "netns",
            "exec",
            node.namespace,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            node.hostname,
            *argv,
        ]

    def popen(self, hostname: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start `argv` on a node with exactly `env`, stdout and stderr to `log`; its pid is the process itself."""
        with open(log, "ab") as out:
            return subprocess.Popen(self.command(hostname, argv), env=dict(env), stdout=out, stderr=subprocess.STDOUT)

    def run(
        self, hostname: str, argv: Sequence[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on a node to completion; output captured as text."""
        return subprocess.run(
            self.command(hostname, argv), check=False, env=dict(env), capture_output=True, text=True, timeout=timeout
        )

    def cut(self, hostname: str) -> None:
        """Pull the node's cable: its bridge port goes down, so peers hear nothing more (no FIN, no RST)."""
        ip("link", "set", self.nodes[hostname].link, "down")

    def restore(self, hostname: str) -> None:
        ip("link", "set", self.nodes[hostname].link, "up")

    def pids(self, hostname: str) -> list[int]:
        return _namespace_pids(self.nodes[hostname].namespace)

    def kill(self, hostname: str) -> list[int]:
        """SIGKILL every process in the node; the pids killed."""
        return _kill_all(self.nodes[hostname].namespace)


def _namespace_pids(namespace: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", namespace, check=False).split()]


def _kill_all(namespace: str) -> list[int]:
    """SIGKILL the namespace's processes until none is left (children may be forked meanwhile)."""
    killed: list[int] = []
    for _ in range(50):
        pids = _namespace_pids(namespace)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    raise NetnsError(f"processes in namespace {namespace} survive SIGKILL: {_namespace_pids(namespace)}")


def _remove_namespace(namespace: str, link: str | None) -> list[str]:
    """Kill its processes, delete its link and namespace and its /etc/netns entry; errors as lines."""
    errors = []
    if namespace in ip("netns", "list", check=False).split():
        try:
            _kill_all(namespace)
        except NetnsError as exc:
            errors.append(str(exc))
        # The veth pair would go with the namespace, but only once the kernel frees it; delete it now.
        if link is not None:
            ip("link", "del", link, check=False)
        try:
            ip("netns", "del", namespace)
        except NetnsError as exc:
            errors.append(str(exc))
    shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
    return errors


def _owner_alive(name: str) -> bool:
    match = _TAG.match(name)
    if match is None:
        return True  # not ours
    pid = int(match.group(1), 36)
    if pid == os.getpid():
        return any(name.startswith(c.tag) for c in _open_clusters)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove namespaces, links, bridges and /etc/netns entries of runs whose process is gone; what was removed."""
    removed = []
    for namespace in ip("netns", "list", check=False).split():
        if namespace.startswith(PREFIX) and not _owner_alive(namespace):
            _remove_namespace(namespace, None)
            removed.append(namespace)
    for line in ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":", 2)
        name = parts[1].strip().split("@")[0] if len(parts) > 2 else ""
        if name.startswith(PREFIX) and not _owner_alive(name):
            ip("link", "del", name, check=False)
            removed.append(name)
    if NETNS_ETC.is_dir():
        for entry in NETNS_ETC.iterdir():
            if entry.name.startswith(PREFIX) and not _owner_alive(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(str(entry))
    return removed


@atexit.register
def _close_open_clusters() -> None:
    """Last resort when a run is interrupted before its fixtures finalize."""
    for cluster in _open_clusters[::-1]:  # a copy: close() removes each from the list
        try:
            cluster.close()
        except NetnsError:
            pass
