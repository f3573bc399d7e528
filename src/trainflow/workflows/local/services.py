"""Local services: free ports to listen on, the readiness probe, and the URL outputs."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from trainflow.pipelines import Service
from trainflow.pipelines.steps import pairs

HOST = "127.0.0.1"
PROBE_EVERY = 0.2  # seconds between probes of one service


def free_port() -> int:
    """A port nothing listens on now (the service binds it a moment later)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


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

    def urls(self) -> dict[str, str]:
        """The URL outputs the spec declares, filled in with this machine's host and the ports."""
        return {key: template.format(host=HOST, **self.ports) for key, template in pairs(self.step.urls)}

    def wrote_outputs(self, written: dict[str, object]) -> bool:
        """True when the service wrote every output it declares that is not a URL the runner fills in."""
        own = set(self.step.outputs) - {k for k, _ in pairs(self.step.urls)}
        return own <= set(written)
