"""The functions the sweep pipeline calls: plain Python, each run in its own process by trainflow."""

from __future__ import annotations

import json
from pathlib import Path


def make_data(rows: int, out: str) -> dict:
    """Write a noisy line y = 3x + 1 as JSON; the file is the step's artifact (trainflow publishes it)."""
    import random

    rng = random.Random(0)
    points = [(x / rows, 3 * x / rows + 1 + rng.gauss(0, 0.05)) for x in range(rows)]
    path = Path(out) / "data.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(points))
    return {"data": str(path), "rows": rows}


def fit(data: str, lr: float, steps: int) -> dict:
    """Fit y = wx + b data-parallel: every worker takes its share of the points, gradients are averaged."""
    import torch
    import torch.distributed as dist

    from trainflow.pipelines import report_progress
    from trainflow.pipelines.artifacts import local_path

    rank, world = dist.get_rank(), dist.get_world_size()
    points = torch.tensor(json.loads(local_path(data).read_text()))[rank::world]  # a path, or fetched from S3
    model = torch.nn.Linear(1, 1)
    for p in model.parameters():
        dist.broadcast(p.data, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(points[:, :1]), points[:, 1:])
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
        optimizer.step()
        if rank == 0:
            report_progress(step, steps, loss=float(loss))
    return {"loss": float(loss), "weight": float(model.weight), "workers": world}


def pick(loss: list, lr: list) -> dict:
    """The learning rate whose fit had the lowest loss."""
    best = min(range(len(loss)), key=lambda i: float(loss[i]))
    return {"best-lr": lr[best], "best-loss": float(loss[best])}


def report(best_lr: str, best_loss: float, out: str) -> dict:
    """Write a small HTML report the service step serves."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "index.html").write_text(f"<h1>best learning rate {best_lr}: loss {best_loss:.4f}</h1>\n")
    return {"report": str(path)}
