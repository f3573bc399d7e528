"""`trainflow predict`: ask a served model about example files (images, CSV rows, .npy) or a dataset's test split."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
import numpy as np

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console
from trainflow.cli.watch import DEFAULT_MODEL_NAME
from trainflow.client import (
    PROTOCOLS,
    ClientError,
    PredictClient,
    Prediction,
    default_server,
    evaluate,
    image_layout,
    load_examples,
    render_digit,
)


def _show(
    client: PredictClient,
    title: str,
    example: np.ndarray,
    prediction: Prediction,
    label: int | None = None,
    names: tuple[str, ...] = (),
) -> None:
    layout = image_layout(client.input_shape)
    if layout is not None and layout[0] == 1:
        console.print(render_digit(example), markup=False)

    def named(index: int) -> str:
        return f"{index} ({names[index]})" if 0 <= index < len(names) and names[index] != str(index) else str(index)

    verdict = "" if label is None else f" (label {named(label)}: {'right' if prediction.cls == label else 'WRONG'})"
    console.print(f"{title}: predicted {named(prediction.cls)}, score {prediction.score:.3f}{verdict}\n", markup=False)


def _test_split(data_dir: Path | None, count: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The first `count` test examples of any dataset trainflow reads, as the model's raw input, with class names."""
    from trainflow.datasets import DatasetError, load_dataset

    if data_dir is None:
        raise ClientError("no examples: pass files (images, .csv, .npy), or --data-dir with a dataset")
    try:
        dataset = load_dataset(data_dir)
    except DatasetError:
        if not data_dir.is_dir():
            raise
        dataset = load_dataset(_synced(data_dir))
    count = min(count, len(dataset.test))
    examples = np.asarray(dataset.test.images[:count])
    if dataset.descriptor.kind == "image" and examples.dtype != np.uint8:
        examples = (examples * np.float32(dataset.descriptor.normalization.scale)).astype(np.float32)
    return examples, np.asarray(dataset.test.labels[:count]), dataset.descriptor.class_names


def _synced(source: Path) -> Path:
    """A dataset folder as the cache holds it, under the name a pipeline's sync gives it (so it is copied once)."""
    from trainflow.datasets import DatasetCache, default_name
    from trainflow.settings import trainflow_home

    result = DatasetCache(trainflow_home() / "cache" / "datasets").ensure(str(source), default_name(str(source)))
    click.echo(f"{source} is not a synced dataset: reading its cached copy {result.path}", err=True)
    return result.path


def _latest_served(protocol: str) -> tuple[str, str | None] | None:
    """The address (for `protocol`) and model name of the model server a local workflow started last."""
    from trainflow.cli.workflows import local
    from trainflow.settings import trainflow_home
    from trainflow.workflows.endpoints import model_server
    from trainflow.workflows.local.layout import Layout

    if not Layout(trainflow_home()).db.exists():  # no workflow ever ran here: nothing to find, nothing to create
        return None
    servers = [
        (w, server, s.finished_at or 0.0)
        for w, s in local().services()
        if (server := model_server(w)) is not None and server.step == s.name
    ]
    found = [(w, server.address(protocol), server.model_name, at) for w, server, at in servers]
    found = [f for f in found if f[1]]
    if not found:
        return None
    latest, address, name, _ = max(found, key=lambda f: f[3])
    click.echo(f"using the model server of workflow {latest.name} at {address} (--server picks another)", err=True)
    return str(address), name or None


@click.command("predict")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--server",
    default=None,
    help="HOST:PORT (default: the model server a local workflow started last, else 127.0.0.1:9000 for gRPC, "
    ":8501 for REST).",
)
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True)
@click.option(
    "--model-name",
    default=None,
    help=f"Model to ask (default: the name the workflow's model server serves, else {DEFAULT_MODEL_NAME}).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A synced dataset (or a folder of IDX files): predict its test examples.",
)
@click.option("--num", default=10, show_default=True, help="How many test examples to show, with the accuracy.")
@click.option(
    "--num-tests",
    "--num_tests",
    type=click.IntRange(1, 10000),
    default=None,
    help="The example's client: this many test examples, '.' per answer, then the error rate.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests in flight with --num-tests.",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per request.")
@click.option(
    "--invert/--no-invert",
    default=True,
    show_default=True,
    help="Invert mostly-light one-channel pictures (models trained on white-on-black data, as MNIST).",
)
@click.option(
    "--workflow",
    default=None,
    help="Ask this workflow's model server (on Kubernetes: through a port-forward open while the command runs).",
)
@backend_option
@namespace_option
def predict_command(
    files: tuple[Path, ...],
    server: str | None,
    protocol: str,
    model_name: str | None,
    data_dir: Path | None,
    num: int,
    num_tests: int | None,
    concurrency: int,
    timeout: float,
    invert: bool,
    workflow: str | None,
    backend: str,
    namespace: str,
) -> None:
    """Predict classes: FILES (PNG/JPEG images, CSV rows, .npy arrays), or --data-dir's test examples."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would bury the output
    with ExitStack() as stack:
        if workflow is not None and server is not None:
            raise ClientError("give --workflow (its model server) or --server (an address), not both")
        if workflow is not None:
            server, served = stack.enter_context(_workflow_server(workflow, backend, namespace, protocol))
            model_name = model_name or served
        elif server is None:
            server, latest = _latest_served(protocol) or (default_server(protocol), None)
            model_name = model_name or latest
        model = model_name or DEFAULT_MODEL_NAME
        _predict(files, server, protocol, model, data_dir, num, num_tests, concurrency, timeout, invert)


@contextmanager
def _workflow_server(workflow: str, backend: str, namespace: str, protocol: str) -> Iterator[tuple[str, str]]:
    """The address here of `workflow`'s model server (forwarded while the command runs, where the backend must), and
    the model name it serves."""
    from trainflow.cli.forward import model_server_of
    from trainflow.cli.workflows import backend_for

    with model_server_of(backend_for(backend, namespace), workflow, protocol) as found:
        yield found


def _predict(
    files: tuple[Path, ...],
    server: str,
    protocol: str,
    model_name: str,
    data_dir: Path | None,
    num: int,
    num_tests: int | None,
    concurrency: int,
    timeout: float,
    invert: bool,
) -> None:
    """Ask the server about FILES, or --data-dir's test examples, and print what it says."""
    with PredictClient(server, protocol, model_name, timeout) as client:
        if files:
            for path in files:
                examples = load_examples(path, client.input_shape, invert)
                for index, (example, prediction) in enumerate(zip(examples, client.predict(examples), strict=True)):
                    _show(client, str(path) if len(examples) == 1 else f"{path} row {index + 1}", example, prediction)
            return
        if num_tests is not None:
            examples, labels, _ = _test_split(data_dir, num_tests)
            result = evaluate(
                client,
                examples,
                labels,
                concurrency,
                on_answer=lambda i, p: click.echo("." if p is not None else "E", nl=False),
            )
            click.echo()
            if result.failed:
                console.print(f"{result.failed} requests failed")
            console.print(f"Inference error rate: {result.error_rate * 100:.1f}%")
            return
        examples, labels, names = _test_split(data_dir, num)
        right = 0
        for index, (example, label) in enumerate(zip(examples, labels, strict=True)):
            prediction = client.predict(example)[0]
            right += prediction.cls == int(label)
            _show(client, f"test example {index}", example, prediction, int(label), names)
        console.print(f"Accuracy: {right}/{len(labels)} = {right / len(labels) * 100:.1f}%")
