"""`trainflow predict`: ask a served model about image files or MNIST test images."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np

from trainflow.cli.output import console
from trainflow.client import (
    PROTOCOLS,
    ClientError,
    PredictClient,
    Prediction,
    default_server,
    evaluate,
    load_image_file,
    render_digit,
)


def _show(title: str, image: np.ndarray, prediction: Prediction, label: int | None = None) -> None:
    console.print(render_digit(image), markup=False)
    verdict = "" if label is None else f" (label {label}: {'right' if prediction.cls == label else 'WRONG'})"
    console.print(f"{title}: predicted {prediction.cls}, score {prediction.score:.3f}{verdict}\n", markup=False)


def _test_split(data_dir: Path | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    from trainflow.datasets import load_split

    if data_dir is None:
        raise ClientError("no images: pass IMAGE files, or --data-dir with an MNIST directory (the IDX files)")
    split = load_split(data_dir, "test")
    count = min(count, len(split.labels))
    return np.asarray(split.images[:count]), np.asarray(split.labels[:count])


def _latest_served(protocol: str) -> tuple[str, str | None] | None:
    """The address (for `protocol`) and model name of the model server a local workflow started last."""
    from trainflow.cli.workflows import local
    from trainflow.settings import trainflow_home
    from trainflow.workflows.local.layout import Layout

    if not Layout(trainflow_home()).db.exists():  # no workflow ever ran here: nothing to find, nothing to create
        return None
    servers = [(w, s) for w, s in local().services() if "grpc-address" in s.outputs and "rest-url" in s.outputs]
    if not servers:
        return None
    workflow, step = max(servers, key=lambda found: found[1].finished_at or 0.0)
    grpc = protocol.endswith("grpc")
    address = str(step.outputs["grpc-address"] if grpc else step.outputs["rest-url"]).removeprefix("http://")
    click.echo(f"using the model server of workflow {workflow.name} at {address} (--server picks another)", err=True)
    name = step.outputs.get("model-name")
    return address, str(name) if name else None


@click.command("predict")
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--server",
    default=None,
    help="HOST:PORT (default: the model server a local workflow started last, else 127.0.0.1:9000 for gRPC, "
    ":8501 for REST).",
)
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True)
@click.option("--model-name", default=None, help="Model to ask (default: the served one's name, else mnist).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="MNIST directory: predict its test images.",
)
@click.option("--num", default=10, show_default=True, help="How many test images to show, with the accuracy.")
@click.option(
    "--num-tests",
    "--num_tests",
    type=click.IntRange(1, 10000),
    default=None,
    help="The example's client: this many test images, '.' per answer, then the error rate.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests in flight with --num-tests.",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per request.")
def predict_command(
    images: tuple[Path, ...],
    server: str | None,
    protocol: str,
    model_name: str | None,
    data_dir: Path | None,
    num: int,
    num_tests: int | None,
    concurrency: int,
    timeout: float,
) -> None:
    """Predict digits: IMAGE files, or MNIST test images from --data-dir (one image per request)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would bury the output
    if server is None:
        server, served_name = _latest_served(protocol) or (default_server(protocol), None)
        model_name = model_name or served_name
    with PredictClient(server, protocol, model_name or "mnist", timeout) as client:
        if images:
            for path in images:
                image = load_image_file(path)
                _show(str(path), image, client.predict(image)[0])
            return
        if num_tests is not None:
            pixels, labels = _test_split(data_dir, num_tests)
            result = evaluate(
                client,
                pixels,
                labels,
                concurrency,
                on_answer=lambda i, p: click.echo("." if p is not None else "E", nl=False),
            )
            click.echo()
            if result.failed:
                console.print(f"{result.failed} requests failed")
            console.print(f"Inference error rate: {result.error_rate * 100:.1f}%")
            return
        pixels, labels = _test_split(data_dir, num)
        right = 0
        for index, (image, label) in enumerate(zip(pixels, labels)):
            prediction = client.predict(image)[0]
            right += prediction.cls == int(label)
            _show(f"test image {index}", image, prediction, int(label))
        console.print(f"Accuracy: {right}/{len(labels)} = {right / len(labels) * 100:.1f}%")
