"""An exported model version as an MLflow model (ONNX flavour, signature, input example), registered on request."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainflow.tracking.step_run import StepRun

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"  # trainflow's own signature, beside the model: what the model server reads
ARTIFACT_PATH = "model"


def log_onnx_model(
    run: StepRun, model_dir: Path, example: Any, register: str, alias: str, tags: dict[str, str]
) -> str | None:
    """Log `model_dir`'s model.onnx and signature.json to the run; register it as `register` (and move `alias`)."""
    import mlflow
    import mlflow.onnx
    import numpy as np
    import onnx
    import onnxruntime as ort
    from mlflow.models.signature import infer_signature

    model = onnx.load(str(model_dir / MODEL_FILE))
    signature = None
    if example is not None:
        session = ort.InferenceSession(str(model_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
        declared = session.get_inputs()[0]
        rows = np.asarray(example, dtype=np.float32)
        if len(declared.shape) == 2:  # a model taking flat rows: the example's images flattened as the server does
            rows = rows.reshape(len(rows), -1)
        feed = {declared.name: rows}
        outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, feed))}
        signature = infer_signature(feed, outputs)
        example = feed
    mlflow.set_tracking_uri(run.uri)
    mlflow.set_registry_uri(run.uri)
    active = mlflow.active_run()
    opened = active is None or active.info.run_id != run.run_id
    if opened:
        mlflow.start_run(run_id=run.run_id, nested=active is not None)
    try:
        info = mlflow.onnx.log_model(
            model,
            name=ARTIFACT_PATH,
            signature=signature,
            input_example=example,
            extra_files=[str(model_dir / SIGNATURE_FILE)],
            save_as_external_data=False,
            onnx_execution_providers=["CPUExecutionProvider"],
        )
    finally:
        if opened:  # leave the run open: the step's run ends when the step does
            mlflow.end_run("RUNNING")
    run.log_artifact(model_dir / SIGNATURE_FILE)
    if not register:
        return None
    from trainflow.tracking.client import client

    c = client(run.uri)
    try:
        c.get_registered_model(register)
    except Exception:  # noqa: BLE001 - not registered yet (or a race with another step): create it
        try:
            c.create_registered_model(register)
        except Exception:  # noqa: BLE001 - another step created it first
            pass
    version = c.create_model_version(register, info.model_uri, run_id=run.run_id, tags=tags, model_id=info.model_id)
    if alias:
        c.set_registered_model_alias(register, alias, version.version)
    run.set_tags({"trainflow.registered-model": f"{register}/{version.version}"})
    return str(version.version)
