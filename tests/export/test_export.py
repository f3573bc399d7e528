"""Export: the latest checkpoint becomes the next numbered ONNX version, equal to torch, published whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import onnxruntime
import pytest
import torch

from trainflow.datasets import load_split
from trainflow.export import ExportError, export_model, publish_version
from trainflow.export.onnx_graph import ServingModule
from trainflow.export.signature import MODEL_FILE, PREDICT_SIGNATURE, SIGNATURE_FILE, ModelSignature
from trainflow.training import Checkpoint, CheckpointStore, ModelSpec, build_model


def train_briefly(train_dir: str, spec: ModelSpec, mnist_dir: Path, steps: int = 30) -> torch.nn.Module:
    """A model fitted for a few steps on real data and saved as the train dir's checkpoint."""
    torch.manual_seed(0)
    model = build_model(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    split = load_split(mnist_dir, "train")
    for step in range(steps):
        images = torch.from_numpy(np.array(split.images[step * 64 : (step + 1) * 64])).unsqueeze(1).float() / 255
        labels = torch.from_numpy(split.labels[step * 64 : (step + 1) * 64].astype(np.int64))
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    CheckpointStore(train_dir).save(Checkpoint(steps, spec, model.state_dict(), optimizer.state_dict()))
    return model.eval()


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_onnx_runtime_matches_torch_on_the_test_split(name: str, mnist_dir: Path, tmp_path: Path) -> None:
    model = train_briefly(str(tmp_path / "train"), ModelSpec(name, 100), mnist_dir)
    result = export_model(str(tmp_path / "train"), str(tmp_path / "exported"))
    test = load_split(mnist_dir, "test")
    images = (np.array(test.images).reshape(len(test), 784) / 255.0).astype(np.float32)
    session = onnxruntime.InferenceSession(str(Path(result.url) / MODEL_FILE), providers=["CPUExecutionProvider"])
    scores, classes = session.run(["scores", "classes"], {"images": images})
    with torch.no_grad():
        torch_scores, torch_classes = ServingModule(model)(torch.from_numpy(images))
    assert scores.dtype == np.float32 and scores.shape == (len(test), 10)
    assert classes.dtype == np.int64 and classes.shape == (len(test),)
    assert np.abs(scores - torch_scores.numpy()).max() <= 1e-5
    assert (classes == torch_classes.numpy()).all()
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)


def test_two_exports_are_versions_1_and_2_with_signatures(mnist_dir: Path, tmp_path: Path) -> None:
    train_briefly(str(tmp_path / "train"), ModelSpec("mlp", 32), mnist_dir, steps=5)
    base = tmp_path / "exported" / "myjob"
    first = export_model(str(tmp_path / "train"), str(base))
    second = export_model(str(tmp_path / "train"), str(base))
    assert (first.version, second.version) == (1, 2)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no temp dirs left behind
    for version in ("1", "2"):
        assert sorted(p.name for p in (base / version).iterdir()) == [MODEL_FILE, SIGNATURE_FILE]
    signature = ModelSignature.from_json((base / "2" / SIGNATURE_FILE).read_text())
    predict = signature.signatures[PREDICT_SIGNATURE]
    assert predict.inputs["images"].shape == (-1, 784)
    assert (predict.outputs["scores"].dtype, predict.outputs["classes"].dtype) == ("float32", "int64")
    assert signature.metadata["global_step"] == 5 and signature.metadata["model"] == {
        "name": "mlp",
        "hidden_units": 32,
        "input_shape": [1, 28, 28],
        "num_classes": 10,
    }


def test_a_half_written_version_never_gets_reused(tmp_path: Path) -> None:
    (tmp_path / "3").mkdir()  # an export that died before its signature
    version, url = publish_version(str(tmp_path), b"onnx", "{}")
    assert version == 4 and url.endswith("/4")


def test_export_to_s3_uploads_the_model_before_the_signature(mnist_dir: Path, s3_bucket: str, tmp_path: Path) -> None:
    train_dir = f"{s3_bucket}/unfinished/myjob"
    train_briefly(train_dir, ModelSpec("mlp", 16), mnist_dir, steps=3)
    export_base = f"{s3_bucket}/exported/myjob"
    assert [export_model(train_dir, export_base).version for _ in range(2)] == [1, 2]
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    objects = s3.list_objects_v2(Bucket=s3_bucket.removeprefix("s3://"), Prefix="exported/myjob/")["Contents"]
    by_key = {o["Key"]: o["LastModified"] for o in objects}
    assert set(by_key) == {f"exported/myjob/{v}/{f}" for v in (1, 2) for f in (MODEL_FILE, SIGNATURE_FILE)}
    assert by_key["exported/myjob/1/model.onnx"] <= by_key["exported/myjob/1/signature.json"]


def test_export_without_checkpoint_says_to_train_first(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no valid checkpoint .* train first") as info:
        export_model(str(tmp_path / "train"), str(tmp_path / "exported"))
    assert 1 <= info.value.exit_code <= 127
    assert not (tmp_path / "exported").exists()


def test_model_override_that_does_not_fit_the_checkpoint_is_one_clear_line(mnist_dir: Path, tmp_path: Path) -> None:
    train_briefly(str(tmp_path / "train"), ModelSpec("mlp", 16), mnist_dir, steps=2)
    with pytest.raises(ExportError, match="does not fit model mlp \\(hidden units 64\\)"):
        export_model(str(tmp_path / "train"), str(tmp_path / "exported"), hidden_units=64)


def test_export_model_step_writes_version_and_url(mnist_dir: Path, tmp_path: Path) -> None:
    train_briefly(str(tmp_path / "train"), ModelSpec("mlp", 16), mnist_dir, steps=2)
    outputs = tmp_path / "out.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainflow",
            "step",
            "export-model",
            "--train-dir",
            str(tmp_path / "train"),
            "--export-base",
            str(tmp_path / "exported"),
            "--outputs",
            str(outputs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(outputs.read_text()) == {
        "export-base": str(tmp_path / "exported"),
        "model-version": 1,
        "model-url": str(tmp_path / "exported" / "1"),
        "global-step": 2,
    }
    assert "exported step 2 as version 1" in run.stdout
    assert "WARNING" not in run.stderr, run.stderr  # e.g. a failed exporter attempt before the one that works
