"""`trainflow run`: the whole example in one command, with defaults that work on a laptop."""

from __future__ import annotations

import sys
import time

import click

from trainflow.cli.options import parameters_option
from trainflow.cli.output import console
from trainflow.cli.watch import follow
from trainflow.cli.workflows import local
from trainflow.workflows import MODEL_TRAIN, parse_assignments


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
@click.option("--model", default="cnn", show_default=True, help="cnn, mlp, or module:attr of your own model factory.")
@click.option("--store", default="", help="Where checkpoints and models go (default: $TRAINFLOW_HOME/store/models).")
@click.option("--no-serving", is_flag=True, help="Train and export only.")
@parameters_option("Any other model-train NAME=VALUE.")
def run(
    data_url: str,
    job_name: str | None,
    workers: int,
    steps: int,
    model: str,
    store: str,
    no_serving: bool,
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
    backend = local()
    info = backend.submit(MODEL_TRAIN, values)
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
    outputs = {k: v for s in final.steps for k, v in s.outputs.items()}  # read by what they are, not by step
    console.print("\n[bold]Next[/bold] (besides the Try: line above)")
    model = str(outputs.get("model-name", "mnist"))
    named = f" --model-name {model}" if model != "mnist" else ""
    if "grpc-address" in outputs and (
        not str(outputs["grpc-address"]).endswith(":9000") or not str(outputs.get("rest-url")).endswith(":8501")
    ):
        console.print(
            f"  8501/9000 were taken: the model server listens on {outputs.get('rest-url')} and "
            f"{outputs['grpc-address']} (`trainflow predict` without --server finds it)",
            soft_wrap=True,
            markup=False,
        )
    if "rest-url" in outputs:
        rest = str(outputs["rest-url"])
        console.print(
            f"  trainflow predict --server {rest.removeprefix('http://')} --protocol rest{named} "
            "FILE   # FILE: a PNG/JPEG image, CSV rows of features or a .npy array"
        )
        console.print(
            f"  REST: {rest}/v1/models/{outputs.get('model-name', 'mnist')}  (TF Serving and KServe V2 /v2/...)"
        )
    if "url" in outputs:
        console.print(f"  TensorBoard: {outputs['url']}")
    console.print(f"  trainflow get {final.name}    trainflow delete {final.name}  (stops its services)")
