"""`trainflow serve` (the tensorflow_model_server equivalent) and the `serve-model` pipeline step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import console, write_outputs
from trainflow.serving.images import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_REQUEST_PIXELS
from trainflow.serving.launch import served_outputs, server_config
from trainflow.serving.server import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_INLINE_MAX_MICROS,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUEST_BYTES,
    ServerConfig,
    serve_until_stopped,
)
from trainflow.storage import StorageOptions

if TYPE_CHECKING:
    from trainflow.tracking.registry import RegistryFollower

_SERVER_OPTIONS = [
    click.option("--model-name", default="mnist", show_default=True, help="Name clients address the model by."),
    click.option("--rest-port", default=8501, show_default=True, type=int, help="REST port (0 = any free port)."),
    click.option("--grpc-port", default=9000, show_default=True, type=int, help="gRPC port (0 = any free port)."),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
    click.option(
        "--poll-seconds", default=1.0, show_default=True, type=float, help="How often to look for new versions."
    ),
    click.option(
        "--max-batch-size", default=0, show_default=True, type=int, help="Dynamic batching: rows per batch (0 = off)."
    ),
    click.option(
        "--batch-timeout-micros",
        default=0,
        show_default=True,
        type=int,
        help="Dynamic batching: wait for more requests.",
    ),
    click.option(
        "--max-request-bytes",
        default=DEFAULT_MAX_REQUEST_BYTES,
        show_default=True,
        type=int,
        help="Larger requests get 413 / RESOURCE_EXHAUSTED; REST holds 8 times this in large bodies "
        "at once, more get 503.",
    ),
    click.option(
        "--max-concurrency",
        default=DEFAULT_MAX_CONCURRENCY,
        show_default=True,
        type=int,
        help="Inference requests in flight (bodies read); more get 503 / UNAVAILABLE.",
    ),
    click.option(
        "--body-timeout-seconds",
        default=DEFAULT_BODY_TIMEOUT_S,
        show_default=True,
        type=float,
        help="A REST body must arrive within this time after its headers; slower ones get 408.",
    ),
    click.option(
        "--header-timeout-seconds",
        default=DEFAULT_HEADER_TIMEOUT_S,
        show_default=True,
        type=float,
        help="A REST request's headers must arrive within this time; slower connections are closed.",
    ),
    click.option(
        "--max-image-pixels",
        default=DEFAULT_MAX_IMAGE_PIXELS,
        show_default=True,
        type=int,
        help="Largest b64 image (width x height) decoded; larger ones get 413.",
    ),
    click.option(
        "--max-request-pixels",
        default=DEFAULT_MAX_REQUEST_PIXELS,
        show_default=True,
        type=int,
        help="Decoded b64 image pixels per request, all images together; more get 413.",
    ),
    click.option("--threads", default=1, show_default=True, type=int, help="ONNX Runtime threads per request."),
    click.option(
        "--inline-max-micros",
        default=DEFAULT_INLINE_MAX_MICROS,
        show_default=True,
        type=int,
        help="Requests of numbers (REST and gRPC) estimated to cost less CPU than this run on their protocol's "
        "event loop, skipping a thread hand-off (0: every inference request in a worker thread).",
    ),
    click.option("--aws-endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    click.option("--aws-region", default=None, help="S3 region (default: AWS_REGION)."),
]


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SERVER_OPTIONS):
        command = option(command)
    return command


def _run(config: ServerConfig, outputs: str | None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def ready(server: Any) -> None:
        served = ", ".join(f"'{r.name}' version {r.latest_version()}" for r in server.repositories)
        console.print(f"Serving model {served}: REST {server.rest_url}, gRPC {server.grpc_address}")
        write_outputs(outputs, served_outputs(server, config))

    serve_until_stopped(config, stop, ready)


@click.command("serve")
@click.option(
    "--model-base-path",
    default=None,
    help="Directory or s3:// URL holding numbered versions, or models:/NAME@ALIAS | models:/NAME/N of the MLflow "
    "registry at MLFLOW_TRACKING_URI (an alias is followed: moving it swaps the served version).",
)
@click.option(
    "--model-config-file",
    default=None,
    help="Serve several models: TF Serving's model_config_list text format (instead of --model-base-path).",
)
@click.option(
    "--wait-for-model",
    is_flag=True,
    help="Start even where the base path does not exist yet, and serve once a version appears there.",
)
@server_options
def serve_command(
    model_base_path: str | None,
    model_config_file: str | None,
    wait_for_model: bool,
    aws_endpoint_url: str | None,
    aws_region: str | None,
    **flags: Any,
) -> None:
    """Serve models (the newest versions) over TF Serving REST/gRPC and KServe V2 REST/gRPC until stopped."""
    from trainflow.tracking.registry import follower_for  # models:/ paths only: the registry's client loads then

    storage = StorageOptions.from_env(aws_endpoint_url, aws_region)
    follower = follower_for(model_base_path, flags["poll_seconds"])
    if follower is None:
        _run(server_config(model_base_path, model_config_file, storage, wait_for_model, **flags), None)
        return
    with _following(follower, model_base_path or "") as folder:
        _run(server_config(folder, model_config_file, storage, wait_for_model, **flags), None)


@contextmanager
def _following(follower: RegistryFollower, uri: str) -> Iterator[str]:
    """While serving: the local folder `follower` keeps holding the version its registry URI names now."""
    version = follower.first()  # an unknown model or alias: one line, before the server starts
    console.print(f"{uri} is version {version}: following it in {follower.folder}")
    follower.start()
    try:
        yield str(follower.folder)
    finally:
        follower.stop()


@click.command("serve-model")
@click.option("--export-base", required=True, help="The run's export base (numbered versions inside).")
@click.option(
    "--model-uri",
    default="",
    help="Serve models:/NAME@ALIAS or models:/NAME/N of the MLflow registry at MLFLOW_TRACKING_URI instead.",
)
@server_options
@outputs_option
def serve_model_step(
    export_base: str,
    model_uri: str,
    aws_endpoint_url: str | None,
    aws_region: str | None,
    outputs: str | None,
    **flags: Any,
) -> None:
    """Pipeline step (service): serve the exported model (or a registry model) until stopped."""
    storage = StorageOptions.from_env(aws_endpoint_url, aws_region)
    if not model_uri:
        _run(ServerConfig(base_url=export_base, storage=storage, **flags), outputs)
        return
    from trainflow.tracking.registry import follower_for  # a registry model only: the registry's client loads then

    follower = follower_for(model_uri, flags["poll_seconds"])
    if follower is None:
        raise click.UsageError(f"--model-uri {model_uri!r} is not a registry URI: give models:/NAME@ALIAS")
    with _following(follower, model_uri) as folder:
        _run(ServerConfig(base_url=folder, storage=storage, **flags), outputs)
