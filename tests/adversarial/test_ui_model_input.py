"""Issue 22, item 13: the dashboard's predict trusts no step's `dataset-path`: a descriptor's input size is bounded."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from servers import stop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_ui_security import Ui, start_ui

from trainflow.datasets.descriptor import ArrayFiles, DatasetDescriptor, Normalization
from trainflow.serving.tensor_specs import MAX_EXAMPLE_VALUES

HUGE = (1, 20000, 20000)  # 400 M values: ~3.5 GB once the dashboard scaled a canvas to it

STEPS = """
def dataset(path: str) -> dict:
    return {"dataset-path": path}
"""
PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, param

PIPELINE = Pipeline(
    name="huge-input",
    params=(Param("path", ""),),
    steps=(Call(name="download-dataset", function="huge_steps:dataset", inputs={"path": param("path")},
                outputs=("dataset-path",), kinds={"dataset-path": "dataset"}),),
)
"""


def write_descriptor(directory: Path, shape: tuple[int, ...]) -> None:
    directory.mkdir(parents=True)
    DatasetDescriptor(
        format="idx",
        input_shape=shape,
        dtype="uint8",
        class_names=tuple(str(d) for d in range(10)),
        train_count=1,
        test_count=1,
        normalization=Normalization(255.0, (0.0,), (1.0,)),
        arrays=ArrayFiles("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"),
        source_digest="0" * 64,
    ).save(directory)


def peak_rss_mb(ui: Ui) -> float:
    """The dashboard's peak resident memory so far (VmHWM): large arrays freed by now still count."""
    status = Path(f"/proc/{ui.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def canvas_png() -> str:
    """A 280x280 canvas with a white stroke on black, as the page sends it."""
    from PIL import Image

    pixels = np.zeros((280, 280), np.uint8)
    pixels[60:220, 130:150] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def huge_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ui, str]]:
    """A dashboard, and a workflow whose step names a dataset declaring [1, 20000, 20000] examples."""
    root = tmp_path_factory.mktemp("ui-huge")
    env = {**os.environ, "TRAINFLOW_HOME": str(root / "home")}
    write_descriptor(root / "dataset", HUGE)
    (root / "huge_steps.py").write_text(STEPS)
    (root / "huge.py").write_text(PIPELINE)
    submitted = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainflow",
            "submit",
            str(root / "huge.py"),
            "-p",
            f"path={root / 'dataset'}",
            "--wait",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    name = next(line.split()[1] for line in submitted.stdout.splitlines() if line.startswith("Name:"))
    ui = start_ui(root / "home", env)
    try:
        yield ui, name
    finally:
        stop(ui.proc)


def test_a_descriptor_declaring_a_huge_input_is_refused_before_the_dashboard_allocates_it(
    huge_ui: tuple[Ui, str],
) -> None:
    ui, workflow = huge_ui
    before = peak_rss_mb(ui)
    response = httpx.post(f"{ui.url}/api/workflows/{workflow}/predict", json={"image": canvas_png()}, timeout=60)
    grown = peak_rss_mb(ui) - before
    assert grown < 100, f"the dashboard's peak memory grew by {grown:.0f} MB"
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "[1, 20000, 20000]" in error and f"at most {MAX_EXAMPLE_VALUES} values" in error and "\n" not in error


def test_the_model_panel_of_such_a_workflow_shows_the_same_refusal(huge_ui: tuple[Ui, str]) -> None:
    ui, workflow = huge_ui
    response = httpx.get(f"{ui.url}/api/workflows/{workflow}/model-input", timeout=30)
    assert response.status_code == 400 and "[1, 20000, 20000]" in response.json()["error"]
