"""`trainflow run`: the whole example in one command, with defaults that work on a laptop."""

from __future__ import annotations

import sys
import time

import click

from trainflow.cli.options import parameters_option, tracking_uri_option
from trainflow.cli.output import console
from trainflow.cli.watch import DEFAULT_MODEL_NAME, follow
from trainflow.cli.workflows import local
from trainflow.workflows import MODEL_TRAIN, parse_assignments
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.endpoints import model_server, tensorboard


@click.command()
@click.option(
    "--data-url",
    "--s3-data-url",
    "data_url",
    default="",
    show_default="the public MNIST mirror",  # filled in by the backend: the command loads no dataset code
    help="Dataset: s3://, http(s)://, file:// or a path (offline: a local copy, e.g. ../shared/data/mnist-10k).",
)
@click.option("--job-name", default=None, help="Run name (default: mnist-<date>-<time>).")
@click.option("--workers", default=2, show_default=True, help="Training workers (processes).")
@click.option("--steps", default=600, show_default=True, help="Global training steps.")
@click.option(
    "--model",
    default="auto",
    show_default=True,
    help="auto (cnn for images, mlp for feature vectors), cnn, mlp, or module:attr of your own model factory.",
)
@click.option("--store", default="", help="Where checkpoints and models go (default: $TRAINFLOW_HOME/store/models).")
@click.option("--no-serving", is_flag=True, help="Train and export only.")
@tracking_uri_option
@parameters_option("Any other model-train NAME=VALUE.")
def run(
    data_url: str,
    job_name: str | None,
    workers: int,
    steps: int,
    model: str,
    store: str,
    no_serving: bool,
    tracking_uri: str | None,
    params: tuple[str, ...],
) -> None:
    """Download, train, watch, export and serve MNIST (or your model); then say how to query it."""
    values = {
        "job-name": job_name or time.strftime("mnist-%Y%m%d-%H%M%S"),
        "s3-data-url": data_url,
        "tf-worker": str(workers),
        "model-train-steps": str(steps),
        "model": model,
        "s3-train-base-url": store,
        "model-serving": "false" if no_serving else "true",
        **parse_assignments(params),
    }
    from trainflow.workflows.tracking_settings import with_tracking_uri

    backend = local()
    info = backend.submit(MODEL_TRAIN, with_tracking_uri(MODEL_TRAIN, values, tracking_uri))
    console.print(f"workflow {info.name} submitted; following it (Ctrl-C leaves it running)")
    try:
        final = follow(backend, info.name, live=sys.stdout.isatty())
    except KeyboardInterrupt:
        console.print(f"\nstill running: `trainflow get {info.name}`, `trainflow logs {info.name} -f`")
        return
    if final.status != "Succeeded":
        click.echo(f"error: workflow {final.name} failed: {final.message}", err=True)
        click.echo(
            f"`trainflow logs {final.name}` shows why; `trainflow retry {final.name} [-p NAME=VALUE]` resumes "
            "from the failed step",
            err=True,
        )
        sys.exit(1)
    console.print("\n[bold]Next[/bold] (besides the Try: line above)")
    _next_lines(final)
    console.print(f"  trainflow get {final.name}    trainflow delete {final.name}  (stops its services)")


def _next_lines(final: WorkflowInfo) -> None:
    """Where the run's model server and TensorBoard listen, and how to ask the model about a file."""
    server = model_server(final)
    if server is not None and server.rest:
        named = f" --model-name {server.model_name}" if server.model_name != DEFAULT_MODEL_NAME else ""
        if not server.rest.endswith(":8501") or (server.grpc and not server.grpc.endswith(":9000")):
            console.print(
                f"  8501/9000 were taken: the model server listens on {server.rest_url} and "
                f"{server.grpc} (`trainflow predict` without --server finds it)",
                soft_wrap=True,
                markup=False,
            )
        console.print(
            f"  trainflow predict --server {server.rest} --protocol rest{named} "
            "FILE   # FILE: a PNG/JPEG image, CSV rows of features or a .npy array"
        )
        console.print(f"  REST: {server.rest_url}/v1/models/{server.model_name}  (TF Serving and KServe V2 /v2/...)")
    board = tensorboard(final)
    if board is not None and board.url:
        console.print(f"  TensorBoard: {board.url}")
