"""The step programs of the workflow layer, `get-workflow-info` and `tensorboard`: parse, call, print."""

from __future__ import annotations

import signal
import threading

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import console, write_outputs
from trainflow.pipelines.run_paths import run_paths
from trainflow.settings import trainflow_home
from trainflow.storage import StorageOptions
from trainflow.workflows.tensorboard import start_tensorboard


@click.command("get-workflow-info")
@click.option("--job-name", required=True)
@click.option(
    "--s3-train-base-url", default="", help="Base of train and export dirs (default: $TRAINFLOW_HOME/store/models)."
)
@outputs_option
def get_workflow_info_step(job_name: str, s3_train_base_url: str, outputs: str | None) -> None:
    """Pipeline step: resolve the run's train dir, logs dir and export base."""
    paths = run_paths(s3_train_base_url or str(trainflow_home() / "store" / "models"), job_name)
    for key, value in paths.outputs().items():
        console.print(f"{key}: {value}")
    write_outputs(outputs, paths.outputs())


@click.command("tensorboard")
@click.option("--logdir", required=True, help="Logs dir URL (local path or s3://...).")
@click.option("--port", default=6006, show_default=True, type=int, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--refresh-seconds", default=5.0, show_default=True, help="How often a remote logs dir is mirrored.")
@click.option("--aws-endpoint-url", default=None)
@click.option("--aws-region", default=None)
@outputs_option
def tensorboard_step(
    logdir: str,
    port: int,
    host: str,
    refresh_seconds: float,
    aws_endpoint_url: str | None,
    aws_region: str | None,
    outputs: str | None,
) -> None:
    """Pipeline step (service): TensorBoard on the run's logs, until stopped."""
    options = StorageOptions.from_env(aws_endpoint_url, aws_region)
    stop = threading.Event()
    cache = trainflow_home() / "cache" / "tensorboard"
    url = start_tensorboard(logdir, port, host, cache, options, stop, refresh_seconds)
    console.print(f"TensorBoard {url} on {logdir}")
    write_outputs(outputs, {"url": url, "logdir": logdir})
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
