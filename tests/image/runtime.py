"""Pods from the built image on this machine: buildah's chroot isolation, on the host's network or a node's.

Each pod is a working container of the image (`buildah from`), its commands run with `buildah run
--isolation chroot` (podman's and crun's runtimes need cgroups this machine does not give them), with
the pod's environment only, its volumes bound in, and a hostname that resolves.

The hostname is the fix for a 2-worker training that hung in the image: chroot isolation gives the
container a UTS namespace of its own named after its id, and an /etc/hosts without that name (Docker and
the kubelet write the pod's name into it). torch's elastic agent advertises the node's hostname to its
workers as MASTER_ADDR; they retried the lookup ("The IPv6 network addresses of (092e0c1eb5f5, 43595)
cannot be retrieved") until killed. So every pod gets its own name as hostname, mapped in /etc/hosts to
its address, as on a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-image"
BUILDAH_PROCESSES = ("ip", "buildah", "buildah-chroot-runtime", "buildah-chroot-exec")


def unavailable_reason() -> str | None:
    """None when this machine can build and run the image; else why not."""
    if os.geteuid() != 0:
        return "building the image with buildah's chroot isolation needs root"
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install buildah debootstrap)"
    return None


def build_image(log: Path, timeout: float) -> str:
    """scripts/build-image (its cache makes a second build quick); the image's name."""
    with log.open("w") as out:
        done = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=out, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"scripts/build-image failed with exit code {done.returncode}:\n{tail}")
    return done.stdout.strip().splitlines()[-1]


def _buildah(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Running:
    """A command started in a pod; `stop` ends it and every process it started."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _inside(self) -> list[psutil.Process]:
        try:
            return [
                p for p in psutil.Process(self.proc.pid).children(recursive=True) if p.name() not in BUILDAH_PROCESSES
            ]
        except psutil.Error:
            return []

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the command itself, as the kubelet sends it (buildah would SIGKILL it), then SIGKILL."""
        inside = self._inside()
        for process in inside:
            try:
                process.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Training workers live in sessions of their own; none may outlive its pod.
        for process in inside + self._inside():
            try:
                process.kill()
            except psutil.Error:
                pass


class Pod:
    """A working container of `image`: its hostname and peers in /etc/hosts, its volumes, this machine's network
    or a node's (`netns`, a network namespace of tests/multinode)."""

    def __init__(
        self,
        image: str,
        hostname: str,
        volumes: Mapping[str, Path],
        hosts: Mapping[str, str] | None = None,
        netns: str | None = None,
    ) -> None:
        self.hostname, self.volumes, self.netns = hostname, dict(volumes), netns
        for host in self.volumes.values():
            host.mkdir(parents=True, exist_ok=True)
        self.name = f"trainflow-test-{hostname}-{uuid.uuid4().hex[:8]}"
        peers = {hostname: "127.0.0.1", **(hosts or {})}
        add_hosts = [f"--add-host={name}:{address}" for name, address in peers.items()]
        _buildah("from", "--pull=never", "--quiet", "--name", self.name, *add_hosts, image)

    def argv(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        volumes = [f"--volume={host}:{path}" for path, host in self.volumes.items()]
        variables = [f"--env={key}={value}" for key, value in env.items()]
        # Chroot isolation takes only the host's network: on a node, "the host's" is the node's namespace.
        node = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [
            *node,
            "buildah",
            "run",
            "--isolation=chroot",
            "--network=host",
            f"--hostname={self.hostname}",
            *volumes,
            *variables,
            self.name,
            "--",
            *command,
        ]

    def run(self, command: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command, env), capture_output=True, text=True, timeout=timeout)

    def start(self, command: Sequence[str], env: Mapping[str, str], log: Path) -> Running:
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(self.argv(command, env), stdout=out, stderr=subprocess.STDOUT)
        return Running(proc, log)

    def close(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=120)
