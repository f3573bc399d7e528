"""`trainflow train` and the `train-model` step: thin wrappers over `trainflow.training.train`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import console, write_outputs
from trainflow.training.choices import LR_SCHEDULES, OPTIMIZERS, PRECISIONS

if TYPE_CHECKING:
    from trainflow.training import TrainResult


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `train` and `step train-model` share."""
    options = [
        click.option(
            "--data-dir",
            required=True,
            type=click.Path(file_okay=False),
            help="A synced dataset (its descriptor.json says the format, shape and classes) or a folder of IDX files.",
        ),
        click.option(
            "--train-dir", required=True, help="Where checkpoints/, logs/ and metrics.json go: a path or s3:// URL."
        ),
        click.option(
            "--workers",
            default=1,
            show_default=True,
            type=int,
            help="Local worker processes (ignored when TF_CONFIG or PyTorchJob variables describe the world).",
        ),
        click.option("--train-steps", default=200, show_default=True, type=int, help="Global training steps."),
        click.option("--batch-size", default=100, show_default=True, type=int, help="Examples per worker per step."),
        click.option(
            "--learning-rate", default=0.01, show_default=True, type=float, help="The optimizer's learning rate."
        ),
        click.option(
            "--optimizer", default="adam", show_default=True, type=click.Choice(OPTIMIZERS), help="Optimizer."
        ),
        click.option(
            "--lr-schedule",
            default="constant",
            show_default=True,
            type=click.Choice(LR_SCHEDULES),
            help="Learning rate over the run: constant, or cosine-annealed to 0 at the last step.",
        ),
        click.option(
            "--eval-every",
            default=0,
            show_default=True,
            type=click.IntRange(min=0),
            help="Steps between evaluations on the test split (TensorBoard's eval/ curves); 0: only at the end.",
        ),
        click.option(
            "--precision",
            default="auto",
            show_default=True,
            type=click.Choice(PRECISIONS),
            help="bf16: mixed precision (weights, gradients and optimizer state stay fp32; the forward pass runs in "
            "bfloat16). auto: bf16 on CPUs with bfloat16 instructions (AVX512-BF16, AMX), else fp32.",
        ),
        click.option(
            "--hidden-units", default=100, show_default=True, type=int, help="Hidden units of the built-in models."
        ),
        click.option(
            "--model",
            default="cnn",
            show_default=True,
            help="cnn, mlp, or module:attr of a factory returning a torch.nn.Module.",
        ),
        click.option("--checkpoint-every", default=100, show_default=True, type=int, help="Steps between checkpoints."),
        click.option("--log-every", default=20, show_default=True, type=int, help="Steps between progress lines."),
        click.option(
            "--max-restarts",
            default=3,
            show_default=True,
            type=int,
            help="Times the worker group is restarted after a failure.",
        ),
        click.option(
            "--peer-timeout",
            default=300.0,
            show_default=True,
            type=float,
            envvar="TRAINFLOW_PEER_TIMEOUT",
            show_envvar=True,
            help="Seconds a worker waits on a silent peer (joining, every all-reduce) "
            "before the pod exits with the transient code.",
        ),
        click.option("--aws-endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
        click.option("--aws-region", default=None, help="S3 region (default: AWS_REGION)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_training(workers: int, **options: Any) -> TrainResult:
    from trainflow.training import TrainConfig, train  # torch loads only for the commands that need it

    result = train(TrainConfig(**options), workers=workers)
    if not result.trained:
        console.print(f"not training: {result.cluster.reason}")  # type: ignore[union-attr]
    elif result.metrics is not None:
        m = result.metrics
        console.print(
            f"trained {m['global_step']} steps ({m['precision']}): test accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f}, "
            f"{m['examples_per_sec']:.0f} examples/s -> {result.metrics_url}"
        )
    else:
        console.print(f"node {result.cluster.node_rank} finished; rank 0 writes {result.metrics_url}")  # type: ignore[union-attr]
    return result


@click.command("train")
@train_options
def train_command(workers: int, **options: Any) -> None:
    """Train data-parallel: --workers local processes, or this pod's part of a TFJob/PyTorchJob."""
    run_training(workers, **options)


def export_after_training(export_base: str, options: dict[str, Any]) -> None:
    """Export the newest checkpoint in this process, which has torch loaded already; export-model then reuses it.

    A failure here fails nothing: export-model exports again and reports it as its own.
    """
    from trainflow.export import ExportError, export_model
    from trainflow.storage import StorageOptions

    storage = StorageOptions.from_env(options["aws_endpoint_url"], options["aws_region"])
    start = time.perf_counter()
    try:
        result = export_model(options["train_dir"], export_base, options["model"], options["hidden_units"], storage)
    except ExportError as exc:
        console.print(f"not exported after training ({exc}): export-model exports it")
        return
    console.print(
        f"exported step {result.global_step} as version {result.version} in {time.perf_counter() - start:.2f} s "
        f"-> {result.url}"
    )


@click.command("train-model")
@train_options
@click.option(
    "--export-base",
    default=None,
    help="Also export the trained model as the next version here (export-model then reuses it).",
)
@outputs_option
def train_model_step(workers: int, export_base: str | None, outputs: str | None, **options: Any) -> None:
    """Pipeline step: train the model; outputs accuracy, global-step and metrics-url."""
    result = run_training(workers, **options)
    if not result.trained or result.cluster.node_rank != 0:  # type: ignore[union-attr]
        return  # the node hosting rank 0 reports; on a cluster the others share its outputs directory
    if export_base and result.ran_rank_0:  # one export per run: from the node whose rank 0 saved the checkpoint
        export_after_training(export_base, options)
    metrics = result.metrics or {}
    write_outputs(
        outputs,
        {
            "trained": result.trained,
            "accuracy": metrics.get("accuracy"),
            "global-step": metrics.get("global_step"),
            "metrics-url": result.metrics_url,
            "train-dir": options["train_dir"],
        },
    )
