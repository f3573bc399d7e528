"""What the virtual network costs: one world across network namespaces against the same world on loopback.

(a) gloo all-reduce of the MLP's gradient (~80k floats) and of 4 MB, 3 ranks: latency per call;
(b) `trainflow train`, a PyTorchJob of a Master and 2 Workers (MLP, batch 100 per worker):
    examples/s measured inside the workers (start-up excluded).

Each figure is run both ways in the same run; the ratio is namespaces / loopback. Needs root (the
same harness as tests/multinode).

    sudo .venv/bin/python benchmarks/netns.py [--steps 200] [--iters 200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.multinode.netns import Cluster, unavailable_reason  # noqa: E402 - after the sys.path line above
from tests.multinode.operator_env import pytorchjob_pods  # noqa: E402 - after the sys.path line above
from tests.multinode.world import base_env, nodes_for, trainflow  # noqa: E402 - after the sys.path line above

SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist-10k"
RANKS = 3
SIZES = {"80k floats (MLP gradient)": 79_510, "1M floats (4 MB)": 1_048_576}


def allreduce_rank(iters: int) -> None:
    """One rank of the all-reduce figure (run as `netns.py rank`): rank 0 prints seconds per call by size."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://")
    results = {}
    for name, numel in SIZES.items():
        tensor = torch.ones(numel)
        for _ in range(10):
            dist.all_reduce(tensor)
        dist.barrier()
        began = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(tensor)
        results[name] = (time.perf_counter() - began) / iters
    if dist.get_rank() == 0:
        print(json.dumps(results))
    dist.destroy_process_group()


def _rank_env(rank: int, addr: str, port: int) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(RANKS), "MASTER_ADDR": addr, "MASTER_PORT": str(port)}


def allreduce(cluster: Cluster | None, iters: int) -> dict[str, float]:
    """Seconds per all-reduce by size, across the cluster's nodes or (None) on loopback."""
    argv = [sys.executable, str(Path(__file__).resolve()), "rank", "--iters", str(iters)]
    port = 23456 if cluster else _free_port()
    procs = []
    for rank in range(RANKS):
        if cluster is None:
            env = base_env(**_rank_env(rank, "127.0.0.1", port))
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True))
        else:
            env = base_env(**_rank_env(rank, "myjob-master-0", port))
            hostname = list(cluster.nodes)[rank]
            procs.append(subprocess.Popen(cluster.command(hostname, argv), env=env, stdout=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    return json.loads(outputs[0])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training(cluster: Cluster | None, data_dir: Path, steps: int) -> float:
    """Global examples/s of a 3-pod PyTorchJob, across the cluster's nodes or (None) on loopback."""
    pods = pytorchjob_pods("myjob", workers=RANKS - 1)
    with tempfile.TemporaryDirectory() as train_dir:
        argv = trainflow(
            "train",
            "--data-dir",
            str(data_dir),
            "--train-dir",
            train_dir,
            "--model",
            "mlp",
            "--train-steps",
            str(steps),
            "--checkpoint-every",
            str(steps),
            "--log-every",
            str(steps),
        )
        port = _free_port()
        procs = []
        for pod in pods:
            if cluster is None:
                env = base_env(**{**pod.env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
                procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            else:
                procs.append(
                    subprocess.Popen(
                        cluster.command(pod.name, argv),
                        env=base_env(**pod.env),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        codes = [proc.wait(timeout=600) for proc in procs]
        assert codes == [0] * RANKS, f"training failed: exit codes {codes}"
        return float(json.loads((Path(train_dir) / "metrics.json").read_text())["examples_per_sec"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "rank"])
    parser.add_argument("--iters", type=int, default=200, help="all-reduce calls per size")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each figure, each way (median kept)")
    parser.add_argument("--data-dir", type=Path, default=SHARED_MNIST)
    args = parser.parse_args()
    if args.mode == "rank":
        allreduce_rank(args.iters)
        return
    reason = unavailable_reason()
    if reason:
        sys.exit(f"error: {reason}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pods = pytorchjob_pods("myjob", workers=RANKS - 1)
    with Cluster(nodes_for(pods)) as cluster:
        runs: dict[str, list[dict[str, float]]] = {"loopback": [], "netns": []}
        train_runs: dict[str, list[float]] = {"loopback": [], "netns": []}
        for _ in range(args.repeats):  # interleaved, so both ways see the same machine load
            for way, target in (("loopback", None), ("netns", cluster)):
                runs[way].append(allreduce(target, args.iters))
                train_runs[way].append(training(target, args.data_dir, args.steps))
    print(
        f"{RANKS} ranks, gloo, {args.iters} all-reduces per size, {args.steps} training steps, "
        f"median of {args.repeats} runs each way"
    )
    print("| figure | loopback | namespaces | namespaces / loopback |\n|---|---|---|---|")
    for name in SIZES:
        loop = statistics.median(r[name] for r in runs["loopback"]) * 1e3
        ns = statistics.median(r[name] for r in runs["netns"]) * 1e3
        print(f"| all-reduce {name}, ms per call | {loop:.3f} | {ns:.3f} | {ns / loop:.2f} |")
    loop_rate, ns_rate = (statistics.median(train_runs[w]) for w in ("loopback", "netns"))
    print(f"| training, examples/s | {loop_rate:.0f} | {ns_rate:.0f} | {ns_rate / loop_rate:.2f} |")


if __name__ == "__main__":
    main()
