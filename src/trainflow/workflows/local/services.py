"""Local services: free ports to listen on, the readiness probe, and the URL outputs."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from trainflow.pipelines import Service
from trainflow.pipelines.steps import pairs

HOST = "127.0.0.1"
PROBE_EVERY = 0.05  # seconds between probes of one service: a refused connection costs ~nothing


def free_port() -> int:
    """A port nothing listens on now (the service binds it a moment later)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing listens on `port` now (so a service could bind it a moment later)."""
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def choose_ports(step: Service, usual: bool = True) -> dict[str, int]:
    """Each port's usual number (8501, 9000, 6006: what clients assume) when `usual` and all are free, else free ones."""
    if usual and all(port_is_free(p.container_port) for p in step.ports):
        return {p.name: p.container_port for p in step.ports}
    return {p.name: free_port() for p in step.ports}


@dataclass
class Readiness:
    """Probes one starting service at most every PROBE_EVERY seconds."""

    step: Service
    ports: dict[str, int]
    last: float = 0.0
    probed_ok: bool = field(default=False)

    def probe(self) -> bool:
        """True once the service's probe answered 2xx (at once for a service without a probe)."""
        if self.step.probe is None or self.probed_ok:
            return True
        if time.monotonic() - self.last < PROBE_EVERY:
            return False
        self.last = time.monotonic()
        import httpx  # only a runner with a service to probe pays for it

        url = f"http://{HOST}:{self.ports[self.step.probe.port]}{self.step.probe.path}"
        try:
            self.probed_ok = httpx.get(url, timeout=0.5).is_success
        except httpx.HTTPError:
            return False
        return self.probed_ok

    def on_usual_ports(self) -> bool:
        return bool(self.ports) and all(self.ports[p.name] == p.container_port for p in self.step.ports)

    def lost_a_port(self) -> bool:
        """True when it was given its usual ports and another process holds one now (it took it first)."""
        return self.on_usual_ports() and not all(port_is_free(port) for port in self.ports.values())

    def addresses(self) -> dict[str, str]:
        """Each port's host:port on this machine (what `trainflow.workflows.endpoints` hands to clients)."""
        return {name: f"{HOST}:{port}" for name, port in self.ports.items()}

    def urls(self) -> dict[str, str]:
        """The URL outputs the spec declares, filled in with this machine's host and the ports."""
        return {key: template.format(host=HOST, **self.ports) for key, template in pairs(self.step.urls)}

    def wrote_outputs(self, written: dict[str, object]) -> bool:
        """True when the service wrote every output it declares that is not a URL the runner fills in."""
        own = set(self.step.outputs) - {k for k, _ in pairs(self.step.urls)}
        return own <= set(written)
