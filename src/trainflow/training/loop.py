"""The train loop one worker runs: DDP over its shard, checkpoints, TensorBoard events, final evaluation.

A worker is started by the elastic agent (see `launcher`), which sets RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; the process group is initialised from them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainflow.datasets import Dataset, Normalization, Split, load_dataset, shard_range
from trainflow.progress import METRICS_FILE, report_progress
from trainflow.storage import StorageError, StorageOptions, open_store
from trainflow.training.batches import ShardBatches, to_tensor
from trainflow.training.checkpoints import Checkpoint, CheckpointStore
from trainflow.training.config import TrainConfig
from trainflow.training.errors import TrainingError
from trainflow.training.events import EventLog
from trainflow.training.model_spec import ModelSpec
from trainflow.training.models import build_model
from trainflow.training.worker_server import threads_per_worker

log = logging.getLogger(__name__)

EVAL_BATCH = 1000
DIVERGED_SUFFIX = ".diverged"


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    examples: int


@dataclass
class Worker:
    """One rank's view of the run: who it is, where it computes and what it trains."""

    config: TrainConfig
    rank: int
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    checkpoints: CheckpointStore
    dataset: Dataset
    mixed: torch.dtype | None = None  # the autocast dtype of forward passes in training; None: fp32

    @property
    def spec(self) -> ModelSpec:
        return self.config.model_spec(self.dataset.descriptor)

    def checkpoint(self, step: int) -> Checkpoint:
        return Checkpoint(
            step,
            self.spec,
            self.model.state_dict(),
            self.optimizer.state_dict(),
            dataset=self.dataset.descriptor.to_dict(),
        )

    def evaluate(self) -> Evaluation:
        """Loss and accuracy of the current weights on the test split (every rank takes part)."""
        world_size = dist.get_world_size()
        return evaluate(
            self.model, self.dataset.test, self.rank, world_size, self.device, self.dataset.descriptor.normalization
        )


def make_optimizer(name: str, model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """adam (the default), sgd (with momentum 0.9) or adamw (weight decay 0.01)."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    return torch.optim.Adam(model.parameters(), lr=learning_rate)


def _resume(worker: Worker) -> int:
    """Load the latest valid checkpoint rank 0 finds (every rank the same one); the step to start from."""
    chosen = [worker.checkpoints.latest(finite=True) if worker.rank == 0 else None]
    step = [chosen[0].step if chosen[0] is not None else 0]
    dist.broadcast_object_list(step, src=0)
    if step[0] == 0:
        log.info("no checkpoint in %s: starting at step 0", worker.checkpoints.url)
        return 0
    checkpoint = chosen[0] if worker.rank == 0 else worker.checkpoints.load(step[0])
    if checkpoint is None:  # rank 0 chose it a moment ago: it cannot be missing there
        raise RuntimeError(f"checkpoint at step {step[0]} vanished while resuming")
    worker.model.load_state_dict(checkpoint.model_state)
    if checkpoint.optimizer_state is not None:
        worker.optimizer.load_state_dict(checkpoint.optimizer_state)
        for group in worker.optimizer.param_groups:  # the saved state carries the old run's rate
            group["lr"] = worker.config.learning_rate
    log.info("resumed from checkpoint %s at step %d", checkpoint.name, checkpoint.step)
    return checkpoint.step


def select_device(local_rank: int, local_world_size: int, requested: str = "") -> tuple[str, torch.device]:
    """(backend, device): NCCL on this rank's GPU when every local worker has one, else gloo on CPU.

    `requested` (TRAINFLOW_DIST_BACKEND, set by the Kubernetes manifests from the pod's GPU request): "gloo"
    keeps a pod that asked for no GPU on the CPU even where the node has one; "nccl" without a usable GPU
    falls back to gloo with a warning rather than failing the job.
    """
    has_gpus = torch.cuda.is_available() and torch.cuda.device_count() >= local_world_size
    if requested == "nccl" and not has_gpus:
        log.warning(
            "NCCL was requested but %d GPU(s) are visible for %d workers: training on CPU with gloo",
            torch.cuda.device_count() if torch.cuda.is_available() else 0,
            local_world_size,
        )
    if has_gpus and requested != "gloo":
        torch.cuda.set_device(local_rank)
        return "nccl", torch.device("cuda", local_rank)
    return "gloo", torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` is a CPU with bfloat16 instructions (AVX512-BF16 or AMX), where bf16 matmuls run faster."""
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype training's forward passes autocast to for `--precision` on `device`; None for fp32."""
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


def _precision_name(mixed: torch.dtype | None) -> str:
    return "fp32" if mixed is None else "bf16-mixed"


def _reduced(values: list[float], device: torch.device) -> list[float]:
    """Sum `values` over all ranks."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def diverged(config: TrainConfig, step: int, what: str) -> TrainingError:
    """The permanent error of a run whose numbers left the finite range: retrying cannot help, a smaller rate can."""
    lower = min(config.learning_rate / 10, TrainConfig.learning_rate)
    return TrainingError(
        f"training diverged at step {step}/{config.train_steps}: {what} with --learning-rate "
        f"{config.learning_rate:g}; lower it (e.g. --learning-rate {lower:g}) and run again: "
        "it resumes from the last checkpoint with finite weights"
    )


def _backward_checked(worker: Worker, loss: torch.Tensor, step: int) -> float:
    """Backpropagate `loss` and return its value; every rank raises at once if any loss or gradient is not finite.

    No extra collective is needed: DDP's all-reduce spreads a NaN or infinite gradient to every rank, and a
    rank whose own loss is not finite makes its gradients NaN first, so all ranks decide alike.
    """
    local = float(loss.detach())
    if not math.isfinite(local):
        loss = loss * float("nan")
    loss.backward()
    grads = [p.grad for p in worker.model.parameters() if p.grad is not None]
    if math.isfinite(float(torch.nn.utils.get_total_norm(grads))):
        return local
    if worker.rank == 0:
        _set_aside(worker, step - 1)
    if dist.get_world_size() > 1:
        dist.barrier()  # nobody exits (and has the agent stop the others) before rank 0 is done
    raise diverged(
        worker.config, step, f"the loss is {local}" if not math.isfinite(local) else "the gradients are NaN or infinite"
    )


def _set_aside(worker: Worker, step: int) -> None:
    """The weights of `step` gave a non-finite loss: resuming from its checkpoint would give it again."""
    try:
        moved = worker.checkpoints.set_aside(step, DIVERGED_SUFFIX)
    except StorageError as exc:
        log.warning("could not set aside the checkpoint of step %d, which gives a non-finite loss: %s", step, exc)
        return
    if moved:
        log.warning("set aside checkpoint step=%d -> %s: its weights give a non-finite loss", step, moved)


def evaluate(
    model: nn.Module,
    split: Split,
    rank: int,
    world_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
) -> Evaluation:
    """Loss and accuracy on `split`, each rank scoring its shard, summed over ranks."""
    shard = shard_range(len(split), rank, world_size)
    loss_sum, correct = 0.0, 0.0
    model.eval()
    with torch.no_grad():
        for start in range(shard.start, shard.stop, EVAL_BATCH):
            stop = min(start + EVAL_BATCH, shard.stop)
            examples = split.images[start:stop]
            logits = model((to_tensor(examples, normalization) if normalization else to_tensor(examples)).to(device))
            labels = torch.from_numpy(split.labels[start:stop].astype("int64")).to(device)
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += float((logits.argmax(1) == labels).sum())
    model.train()
    loss_sum, correct, count = _reduced([loss_sum, correct, float(len(shard))], device)
    return Evaluation(loss_sum / max(count, 1), correct / max(count, 1), int(count))


def _train_steps(worker: Worker, ddp: nn.Module, batches: ShardBatches, start: int, events: EventLog | None) -> float:
    """Run steps start..train_steps; returns the seconds spent."""
    config = worker.config
    began = window_start = time.perf_counter()
    loss_sum = correct = seen = 0.0
    for step in range(start, config.train_steps):
        images, labels = (t.to(worker.device, non_blocking=True) for t in batches.batch(step))
        rate_now = config.learning_rate_at(step)
        for group in worker.optimizer.param_groups:
            group["lr"] = rate_now
        worker.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(worker.device.type, worker.mixed) if worker.mixed else contextlib.nullcontext():
            logits = ddp(images)
            loss = nn.functional.cross_entropy(logits, labels)
        loss_sum += _backward_checked(worker, loss, step + 1) * len(labels)  # before the update: weights stay finite
        worker.optimizer.step()
        done = step + 1
        correct += float((logits.detach().argmax(1) == labels).sum())
        seen += len(labels)
        if done % config.log_every == 0 or done == config.train_steps:
            loss_sum, correct, seen = _reduced([loss_sum, correct, seen], worker.device)
            rate = seen / (time.perf_counter() - window_start)
            if worker.rank == 0:
                log.info(
                    "step=%d/%d loss=%.4f acc=%.4f examples/s=%.0f",
                    done,
                    config.train_steps,
                    loss_sum / seen,
                    correct / seen,
                    rate,
                )
                report_progress(
                    done, config.train_steps, **{"train/loss": loss_sum / seen, "train/accuracy": correct / seen}
                )
                if events is not None:
                    events.scalars(
                        done,
                        {
                            "train/loss": loss_sum / seen,
                            "train/accuracy": correct / seen,
                            "train/learning_rate": rate_now,
                            "train/examples_per_sec": rate,
                        },
                    )
            window_start = time.perf_counter()
            loss_sum = correct = seen = 0.0
        if done % config.checkpoint_every == 0 or done == config.train_steps:
            _save(worker, done, events)
        if config.eval_every and done % config.eval_every == 0 and done < config.train_steps:
            _evaluate_now(worker, done, events)
    return time.perf_counter() - began


def _evaluate_now(worker: Worker, step: int, events: EventLog | None) -> None:
    """A held-out evaluation during training: a point on TensorBoard's eval curves."""
    result = worker.evaluate()
    if worker.rank != 0:
        return
    log.info("step=%d eval accuracy=%.4f loss=%.4f", step, result.accuracy, result.loss)
    if math.isfinite(result.loss):  # a study prunes from these (trainflow.workflows.study)
        report_progress(step, worker.config.train_steps, **{"eval/accuracy": result.accuracy, "eval/loss": result.loss})
    if events is not None and math.isfinite(result.loss):
        events.scalars(step, {"eval/accuracy": result.accuracy, "eval/loss": result.loss})
        events.sync()


def _save(worker: Worker, step: int, events: EventLog | None) -> None:
    checkpoint = worker.checkpoint(step)
    bad = checkpoint.non_finite()  # the same on every rank: DDP keeps the weights equal
    if bad is not None:
        raise diverged(worker.config, step, f"weight '{bad}' is no longer finite")
    if worker.rank != 0:
        return
    url = worker.checkpoints.save(checkpoint)
    log.info("checkpoint step=%d -> %s", step, url)
    if events is not None:
        events.sync()


def _write_metrics(config: TrainConfig, options: StorageOptions, metrics: dict[str, object]) -> str:
    store = open_store(config.train_dir, options)
    store.ensure_container()
    store.write_bytes(METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False).encode())
    return store.object_url(METRICS_FILE)


def _attempt_store(rank: int, world_size: int, timeout: timedelta) -> dist.Store:
    """The rendezvous store, namespaced by restart attempt.

    After a restart the elastic agent hands the new workers the same TCPStore as the old ones, so
    without a namespace gloo can read a dead worker's address from the previous attempt and hang.
    """
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size,
        is_master=not agent_hosts_store and rank == 0,
        timeout=timeout,
    )
    return dist.PrefixStore(f"trainflow/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def run_worker(config: TrainConfig) -> None:
    """Train as the rank the environment names, until `train_steps` global steps are done."""
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(threads_per_worker(local_world_size))
    requested = os.environ.get("TRAINFLOW_DIST_BACKEND", "").strip().lower()
    backend, device = select_device(int(os.environ.get("LOCAL_RANK", "0")), local_world_size, requested)
    # A peer that vanishes (a node lost, a cut link) sends nothing, not even a reset: every wait on it
    # ends only at this timeout, which is when the pod exits with the transient code.
    timeout = timedelta(seconds=config.peer_timeout)
    dist.init_process_group(
        backend, store=_attempt_store(rank, world_size, timeout), rank=rank, world_size=world_size, timeout=timeout
    )
    _run(config, rank, world_size, device)
    # Only after success: a failed rank exits holding its connections (worker.main). Closing them first would
    # tell its peers before it records its cause; a peer that then exits first has the agent stop this rank by
    # signal and restart the group for a failure that is permanent.
    dist.destroy_process_group()


def _run(config: TrainConfig, rank: int, world_size: int, device: torch.device) -> None:
    options = StorageOptions.from_env(config.aws_endpoint_url, config.aws_region)
    dataset = load_dataset(Path(config.data_dir))
    normalization = dataset.descriptor.normalization
    batches = ShardBatches(dataset.train, rank, world_size, config.batch_size, config.seed, normalization)
    torch.manual_seed(config.seed)
    mixed = autocast_dtype(config.precision, device)
    spec = config.model_spec(dataset.descriptor)
    model = build_model(spec).to(device)
    if mixed is not None and spec.name == "cnn":
        # bf16 max-pooling of NCHW maps is as slow as fp32's (~7 ms a batch, against 0.7 ms in channels_last): with
        # both, a step takes 0.6-0.7x fp32's under 2-worker DDP. Users' models keep their layout (a .view() would fail).
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented; untyped
    worker = Worker(
        config,
        rank,
        device,
        model,
        make_optimizer(config.optimizer, model, config.learning_rate),
        CheckpointStore(config.train_dir, options),
        dataset,
        mixed,
    )
    start = _resume(worker)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    events = EventLog(config.train_dir, options) if rank == 0 else None
    try:
        log.info(
            "training steps %d..%d on a shard of %d examples (world size %d, batch %d per worker, %d threads, %s precision)",
            start,
            config.train_steps,
            len(batches),
            world_size,
            config.batch_size,
            torch.get_num_threads(),
            _precision_name(worker.mixed),
        )
        seconds = _train_steps(worker, ddp, batches, start, events)
        result = worker.evaluate()
        if not (math.isfinite(result.loss) and math.isfinite(result.accuracy)):
            raise diverged(config, config.train_steps, f"the test loss is {result.loss}")
        if rank == 0:
            steps = config.train_steps - start
            rate = steps * config.batch_size * world_size / seconds if seconds > 0 else 0.0
            metrics = {
                "accuracy": result.accuracy,
                "loss": result.loss,
                "global_step": config.train_steps,
                "examples_per_sec": rate,
                "train_seconds": seconds,
                "resumed_from_step": start,
                "world_size": world_size,
                "test_examples": result.examples,
                "model": worker.spec.to_dict(),
                "optimizer": config.optimizer,
                "precision": _precision_name(worker.mixed),
                "class_names": list(dataset.descriptor.class_names),
            }
            if events is not None:
                events.scalars(config.train_steps, {"eval/accuracy": result.accuracy, "eval/loss": result.loss})
            url = _write_metrics(config, options, metrics)
            log.info(
                "test accuracy=%.4f loss=%.4f on %d examples -> %s", result.accuracy, result.loss, result.examples, url
            )
    finally:
        if events is not None:
            events.close()
