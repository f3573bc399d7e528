"""`trainflow train` and the `train-model` step: thin wrappers over `trainflow.training.train`."""

from __future__ import annotations

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
            default="auto",
            show_default=True,
            help="auto (cnn for images, mlp for feature vectors; the run says which), cnn, mlp, "
            "or module:attr of a factory returning a torch.nn.Module.",
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


def report_training(result: TrainResult) -> None:
    """One line: what the run reached, or why this process did not train."""
    if not result.trained:
        console.print(f"not training: {result.cluster.reason}")  # type: ignore[union-attr]
    elif result.metrics is not None:
        m = result.metrics
        console.print(
            f"trained {m['global_step']} steps ({m['precision']}): test accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f}, "
            f"{m['examples_per_sec']:.0f} examples/s -> {result.metrics_url}"
        )
        # NAME=VALUE words: what Katib's StdOut metrics collector reads as a trial's final metrics
        console.print(f"final accuracy={m['accuracy']:.6f} loss={m['loss']:.6f}", markup=False, soft_wrap=True)
    else:
        console.print(f"node {result.cluster.node_rank} finished; rank 0 writes {result.metrics_url}")  # type: ignore[union-attr]


@click.command("train")
@train_options
def train_command(workers: int, **options: Any) -> None:
    """Train data-parallel: --workers local processes, or this pod's part of a TFJob/PyTorchJob."""
    from trainflow.training import TrainConfig, train  # torch loads only for the commands that need it

    report_training(train(TrainConfig(**options), workers=workers))


@click.command("train-model")
@train_options
@click.option(
    "--export-base",
    default=None,
    help="Also export the trained model as the next version here (export-model then reuses it).",
)
@click.option("--register-model", default="", help="Register the exported model as a new version of NAME (MLflow).")
@click.option("--register-alias", default="", help="Move this alias of the registered model to the new version.")
@outputs_option
def train_model_step(
    workers: int,
    export_base: str | None,
    register_model: str,
    register_alias: str,
    outputs: str | None,
    **options: Any,
) -> None:
    """Pipeline step: train the model; outputs accuracy, global-step and metrics-url."""
    from trainflow.export.tracked import train_tracked

    step, registered = train_tracked(workers, export_base, register_model, register_alias, **options)
    report_training(step.training)
    if step.export is not None and step.export.result is not None:
        done = step.export.result
        console.print(
            f"exported step {done.global_step} as version {done.version} in {step.export.seconds:.2f} s -> {done.url}"
        )
    elif step.export is not None:
        console.print(f"not exported after training ({step.export.failure}): export-model exports it")
    if registered is not None:
        alias = f" (alias {register_alias})" if register_alias else ""
        console.print(f"registered as {register_model} version {registered}{alias}")
    if step.outputs is not None:
        write_outputs(outputs, step.outputs)
