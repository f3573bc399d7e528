"""Export against diverged, hostile or misplaced inputs: one line, a permanent exit code, no version published."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import torch

from trainflow.export.signature import ModelSignature, SignatureError, image_classifier_signature
from trainflow.training import Checkpoint, CheckpointStore, ModelSpec, build_model
from trainflow.training.checkpoints import FORMAT, checkpoint_name

SPEC = ModelSpec("mlp", 16)


def export(
    train_dir: str, export_base: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainflow",
            "step",
            "export-model",
            "--train-dir",
            train_dir,
            "--export-base",
            export_base,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=180,
    )


def refused(run: subprocess.CompletedProcess[str], says: str) -> bool:
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    return 1 <= run.returncode <= 127 and len(errors) == 1 and says in errors[0] and "Traceback" not in run.stderr


def weights(fill: float | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = build_model(SPEC).state_dict()
    return state if fill is None else {k: torch.full_like(v, fill) for k, v in state.items()}


def test_a_checkpoint_with_nan_weights_is_not_published(tmp_path: Path) -> None:
    CheckpointStore(str(tmp_path / "train")).save(Checkpoint(20, SPEC, weights(float("nan"))))
    run = export(str(tmp_path / "train"), str(tmp_path / "exported"))
    assert refused(run, "NaN or infinite weights"), run.stderr
    assert not (tmp_path / "exported").exists() or not any((tmp_path / "exported").iterdir())


def test_a_model_whose_scores_overflow_is_not_published_to_s3(s3_bucket: str) -> None:
    huge = weights(3e38)  # finite weights, but the logits overflow to infinity and the scores become NaN
    CheckpointStore(f"{s3_bucket}/unfinished/job").save(Checkpoint(20, SPEC, huge))
    run = export(f"{s3_bucket}/unfinished/job", f"{s3_bucket}/exported/job")
    assert refused(run, "scores are NaN or infinite"), run.stderr
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=s3_bucket.removeprefix("s3://"), Prefix="exported/")
    assert listed.get("KeyCount", 0) == 0


def test_export_base_that_is_a_file_is_one_line_and_the_file_is_untouched(tmp_path: Path) -> None:
    CheckpointStore(str(tmp_path / "train")).save(Checkpoint(5, SPEC, weights()))
    target = tmp_path / "exported"
    target.write_text("not a directory")
    run = export(str(tmp_path / "train"), str(target))
    assert refused(run, "cannot create a version"), run.stderr
    assert target.read_text() == "not a directory"


def test_a_file_where_the_next_version_would_go_is_skipped_over(tmp_path: Path) -> None:
    CheckpointStore(str(tmp_path / "train")).save(Checkpoint(5, SPEC, weights()))
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "1").write_text("a stray file")
    run = export(str(tmp_path / "train"), str(tmp_path / "exported"))
    assert run.returncode == 0 and "as version 2" in run.stdout, run.stderr
    assert (tmp_path / "exported" / "1").read_text() == "a stray file"


def test_a_checkpoint_never_chooses_code_to_import(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').close()\nbuild = None\n")
    CheckpointStore(str(tmp_path / "train")).save(Checkpoint(5, ModelSpec("planted:build", 16), weights()))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = export(str(tmp_path / "train"), str(tmp_path / "exported"), env=env)
    assert refused(run, "pass --model"), run.stderr
    assert not marker.exists()


def test_a_pickle_that_runs_code_is_skipped_as_corrupt_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "step": 5, "model_spec": SPEC.to_dict(), "model_state": Payload()}, buffer)
    (tmp_path / "train" / "checkpoints").mkdir(parents=True)
    (tmp_path / "train" / "checkpoints" / checkpoint_name(5)).write_bytes(buffer.getvalue())
    run = export(str(tmp_path / "train"), str(tmp_path / "exported"))
    assert refused(run, "no valid checkpoint"), run.stderr
    assert not marker.exists()


@pytest.mark.parametrize("state", [{"0.weight": [1.0, 2.0]}, {"0.weight": "text"}, {1: torch.zeros(1)}])
def test_a_checkpoint_whose_state_is_not_tensors_is_skipped_as_corrupt(state: dict, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "step": 5, "model_spec": SPEC.to_dict(), "model_state": state}, buffer)
    (tmp_path / "train" / "checkpoints").mkdir(parents=True)
    (tmp_path / "train" / "checkpoints" / checkpoint_name(5)).write_bytes(buffer.getvalue())
    run = export(str(tmp_path / "train"), str(tmp_path / "exported"))
    assert refused(run, "no valid checkpoint"), run.stderr


def signature_with(**changes: object) -> str:
    raw = json.loads(image_classifier_signature().to_json())
    raw.update(changes)
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (signature_with(model_file="../../../etc/passwd"), "not a plain file name"),
        (signature_with(model_file="/etc/passwd"), "not a plain file name"),
        (signature_with(model_file=".."), "not a plain file name"),
        (
            signature_with(
                signatures={
                    "predict_images": {
                        "method": "m",
                        "inputs": {"images": {"onnx_name": "images", "dtype": "object", "shape": [-1, 784]}},
                        "outputs": {},
                    }
                }
            ),
            "dtype 'object'",
        ),
        ("[" * 100_000, "malformed"),
        ("[]", "malformed"),
    ],
)
def test_a_hostile_signature_json_is_refused(text: str, says: str) -> None:
    with pytest.raises(SignatureError, match=says):
        ModelSignature.from_json(text)
