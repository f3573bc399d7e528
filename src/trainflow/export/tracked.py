"""What the train-model step tells MLflow when tracking is on: its options, dataset, final metrics and model.

The step's run (`trainflow.tracking.step_run`) is open already; this reads what only the layers below
know (the dataset's descriptor and source, the exported version's files) and hands it over as plain
values. Whatever fails here is a warning in the step's log, never a failed step.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE
from trainflow.storage import StorageOptions, join_url, open_store
from trainflow.tracking import URI_ENV, tracking_uri
from trainflow.tracking.client import redacted
from trainflow.tracking.errors import TrackingError
from trainflow.tracking.workflow_run import URI_PARAM

if TYPE_CHECKING:
    from trainflow.export.steps import TrainStep
    from trainflow.tracking.step_run import StepRun

log = logging.getLogger(__name__)

EXAMPLE_ROWS = 2  # the input example logged with the model: the test split's first rows


def train_tracked(
    workers: int, export_base: str | None, register: str = "", alias: str = "", **options: Any
) -> tuple[TrainStep, str | None]:
    """The train-model step in its MLflow run when tracking is on: train, export, log; the registered version, if any."""
    from trainflow.export.steps import train_and_export
    from trainflow.tracking.step_run import step_run

    if alias and not register:
        raise TrackingError(
            f"--register-alias {alias} needs --register-model NAME: the registered model the alias is of"
        )
    if register and not tracking_uri():
        raise TrackingError(
            f"--register-model {register} registers the model in MLflow, but tracking is off: set {URI_ENV}=URI "
            "(an MLflow server, e.g. http://127.0.0.1:5000) for this command, or in a pipeline give --tracking-uri URI "
            f"or -p {URI_PARAM}=URI to run or submit, or drop --register-model"
        )
    with step_run("train-model", "train") as run:
        step = train_and_export(workers, export_base, **options)
        if run is None or step.outputs is None:  # not tracked, or a node that does not report
            return step, None
        logged = {**options, "workers": workers, "export_base": export_base}
        return step, track_training(run, logged, step, register, alias, run.workflow)


def track_training(
    run: StepRun, options: dict[str, Any], step: TrainStep, register: str = "", alias: str = "", workflow: str = ""
) -> str | None:
    """Log the step's options, dataset, final metrics, metrics.json and exported model; the registered version, if any."""
    run.log_params({k.replace("_", "-"): v for k, v in options.items() if not k.startswith("aws_")})
    data_dir = Path(str(options.get("data_dir", "")))
    facts = dataset_facts(data_dir)
    if facts is not None:
        run.log_dataset(**facts)
    metrics = step.training.metrics or {}
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    run.log_metrics(numbers, int(numbers.get("global_step", 0)))
    if metrics:
        run.log_text(json.dumps(metrics, indent=2, sort_keys=True, default=str), "metrics.json")
    export = step.export.result if step.export is not None else None
    export_base = options.get("export_base")
    if export is None or not export_base:
        if register:
            log.warning("no model version was exported after training: %s is not registered", register)
        return None
    storage = StorageOptions.from_env(options.get("aws_endpoint_url"), options.get("aws_region"))
    tags = {
        "accuracy": f"{numbers.get('accuracy', float('nan')):.6f}",
        "workflow": workflow,
        "trainflow-version-url": export.url,
    }
    store = open_store(join_url(str(export_base), str(export.version)), storage)
    with store.local_copy([MODEL_FILE, SIGNATURE_FILE]) as directory:
        return run.log_model(directory, input_example(data_dir), register, alias, tags)


def dataset_facts(data_dir: Path) -> dict[str, Any] | None:
    """The dataset's name, source URL, digest, schema and counts, as MLflow's dataset input takes them."""
    from trainflow.datasets import DatasetError, load_descriptor
    from trainflow.datasets.manifest import load_manifest

    try:
        descriptor = load_descriptor(data_dir)
    except (DatasetError, OSError) as exc:
        log.warning("the dataset in %s is not logged to MLflow: %s", data_dir, exc)
        return None
    manifest = load_manifest(data_dir)
    source = manifest.source if manifest is not None else data_dir.resolve().as_uri()
    return {
        "name": manifest.name if manifest is not None else data_dir.name,
        "source": redacted(source),
        "digest": descriptor.source_digest,
        "schema": {
            "input_shape": list(descriptor.input_shape),
            "dtype": "float32",
            "classes": list(descriptor.class_names),
            "format": descriptor.format,
        },
        "profile": {"train_count": descriptor.train_count, "test_count": descriptor.test_count},
    }


def input_example(data_dir: Path) -> np.ndarray | None:
    """The test split's first rows, normalized as the model takes them; None where the dataset cannot be read."""
    from trainflow.datasets import DatasetError, load_dataset

    try:
        dataset = load_dataset(data_dir)
        raw = np.asarray(dataset.test.images[:EXAMPLE_ROWS])
        return np.asarray(dataset.descriptor.normalization.apply(raw), dtype=np.float32)
    except (DatasetError, OSError, AttributeError, ValueError) as exc:
        log.warning("no input example for the MLflow model from %s: %s", data_dir, exc)
        return None
