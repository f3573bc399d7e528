"""torch's elastic agent, run as torchrun runs it, except that a permanent failure is not restarted
and the workers are forked from the fork server (see `forked_workers`).

A worker that exits with a deliberate permanent code (a TrainflowError: bad data, a diverged loss)
would fail the same way after every restart, so the agent gives up at once and the launcher reports
that code. Anything else (a signal, a lost peer, an unexpected exception) is restarted up to
`max_restarts` times, as torchrun does. The agent's logs and error files go to `log_dir`, which the
caller owns and removes: torch would otherwise leave a `torchelastic_*` directory in the temp dir.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainflow.training.cluster import ClusterSpec
from trainflow.training.config import TrainConfig

RDZV_TIMEOUT_SECONDS = 300
MONITOR_INTERVAL_SECONDS = 0.1  # how soon finished workers are noticed: a wait the whole run pays at its end


@dataclass(frozen=True)
class AgentOutcome:
    """How the workers ended: `failure` (a ChildFailedError) is None when they succeeded.

    `global_ranks` are the ranks this node's workers finished as (empty on failure).
    """

    failure: Any
    restarts: int
    global_ranks: frozenset[int] = frozenset()


def worker_spec(
    cluster: ClusterSpec, config: TrainConfig, entrypoint: Callable[..., Any], args: tuple[str, ...]
) -> Any:
    """The WorkerSpec torchrun would build for this node (rendezvous, restarts, entry point)."""
    from torch.distributed.elastic.agent.server.api import WorkerSpec
    from torch.distributed.elastic.rendezvous import RendezvousParameters
    from torch.distributed.elastic.rendezvous import registry as rdzv_registry

    configs: dict[str, Any] = {"timeout": RDZV_TIMEOUT_SECONDS}
    if cluster.rdzv_backend == "static":
        configs["rank"] = cluster.node_rank
    params = RendezvousParameters(
        backend=cluster.rdzv_backend,
        endpoint=f"{cluster.master_addr}:{cluster.master_port}",
        run_id=cluster.rdzv_id or f"trainflow-{uuid.uuid4().hex[:12]}",
        min_nodes=cluster.min_nodes or cluster.nnodes,
        max_nodes=cluster.nnodes,
        **configs,
    )
    static = cluster.rdzv_backend == "static"  # the static rendezvous is told the master; c10d finds it
    return WorkerSpec(
        role="default",
        local_world_size=cluster.nproc_per_node,
        entrypoint=entrypoint,
        args=args,
        rdzv_handler=rdzv_registry.get_rendezvous_handler(params),
        max_restarts=config.max_restarts,
        monitor_interval=MONITOR_INTERVAL_SECONDS,
        master_addr=cluster.master_addr if static else None,
        master_port=cluster.master_port if static else None,
    )


def run_agent(
    cluster: ClusterSpec, config: TrainConfig, entrypoint: Callable[..., Any], args: tuple[str, ...], log_dir: str
) -> AgentOutcome:
    """Run this node's workers (`entrypoint(environ, *args)`, forked) to the end, restarting them while that can help."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from trainflow.training.forked_workers import ForkingAgent

    spec = worker_spec(cluster, config, entrypoint, args)
    agent = ForkingAgent(spec=spec, logs_specs=DefaultLogsSpecs(log_dir=log_dir))
    shutdown_rendezvous = True
    try:
        result = agent.run()
        if result.is_failed():
            return AgentOutcome(ChildFailedError(name=entrypoint.__name__, failures=result.failures), agent.restarts())
        return AgentOutcome(None, agent.restarts(), frozenset(result.return_values))
    except SignalException:
        shutdown_rendezvous = False  # as torchrun: a signalled agent leaves the rendezvous to the others
        raise
    finally:
        if shutdown_rendezvous:
            spec.rdzv_handler.shutdown()
