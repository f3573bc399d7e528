"""The built-in models export, serve and answer at every input size they accept, as torch computes them.

A user's own image folder can be synced at any size (`--image-size 32`, `17x23`, RGB or grey); training
accepted a CNN on it, so exporting it must not fail afterwards. Each case trains two steps, is exported
by the project's exporter and served by one real model server, whose scores must equal torch's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainflow.client import PredictClient
from trainflow.datasets import DatasetDescriptor
from trainflow.datasets.descriptor import ArrayFiles, Normalization
from trainflow.export import export_model
from trainflow.serving.model_config import ModelEntry, VersionPolicy
from trainflow.serving.server import ModelServer, ServerConfig
from trainflow.training import Checkpoint, CheckpointStore, ModelSpec, TrainingError, build_model, check_model

pytestmark = pytest.mark.slow  # the module's fixture trains (two steps) and exports a model per case

CLASSES = ("circle", "square", "star")
# the CNN's smallest image (4x4), odd and non-square sides, sizes its feature map is pooled from
# evenly (64 -> 13 -> 4 is not even; 96 -> 21) or not at all (28, 30), grey and RGB
CASES = {
    "cnn-1x4x4": ("cnn", (1, 4, 4)),
    "cnn-3x5x7": ("cnn", (3, 5, 7)),
    "cnn-1x16x16": ("cnn", (1, 16, 16)),
    "cnn-3x17x23": ("cnn", (3, 17, 23)),
    "cnn-1x28x28": ("cnn", (1, 28, 28)),
    "cnn-3x30x30": ("cnn", (3, 30, 30)),
    "cnn-3x32x32": ("cnn", (3, 32, 32)),
    "cnn-1x64x64": ("cnn", (1, 64, 64)),
    "cnn-3x96x96": ("cnn", (3, 96, 96)),
    "cnn-1x4x200": ("cnn", (1, 4, 200)),
    "cnn-3x100x17": ("cnn", (3, 100, 17)),
    "mlp-3x32x32": ("mlp", (3, 32, 32)),
    "mlp-1x17x23": ("mlp", (1, 17, 23)),
}


def descriptor(shape: tuple[int, ...]) -> DatasetDescriptor:
    """An 8-bit image folder's description, standardised per channel as a sync computes it."""
    channels = shape[0]
    normalization = Normalization(1 / 255, tuple(0.4 + 0.05 * c for c in range(channels)), (0.25,) * channels)
    arrays = ArrayFiles("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")
    return DatasetDescriptor("image-folders", shape, "uint8", CLASSES, 64, 16, normalization, arrays, "0" * 64)


def train_two_steps(spec: ModelSpec, dataset: DatasetDescriptor, train_dir: Path) -> nn.Module:
    """The model after two Adam steps on random pixels, saved as `train_dir`'s checkpoint."""
    torch.manual_seed(0)
    model = build_model(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        raw = np.random.default_rng(1).integers(0, 256, (8, *spec.input_shape), dtype=np.uint8)
        optimizer.zero_grad()
        logits = model(torch.from_numpy(dataset.normalization.apply(raw)))
        nn.functional.cross_entropy(logits, torch.arange(8) % len(CLASSES)).backward()
        optimizer.step()
    checkpoint = Checkpoint(2, spec, model.state_dict(), optimizer.state_dict(), dataset=dataset.to_dict())
    CheckpointStore(str(train_dir)).save(checkpoint)
    return model.eval()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelServer, dict[str, nn.Module]]]:
    root = tmp_path_factory.mktemp("sizes")
    models, entries = {}, []
    for name, (model, shape) in CASES.items():
        spec = ModelSpec(model, 16, shape, len(CLASSES))
        models[name] = train_two_steps(spec, descriptor(shape), root / "train" / name)
        export_model(str(root / "train" / name), str(root / "exported" / name))
        entries.append(ModelEntry(name, str(root / "exported" / name), VersionPolicy()))
    server = ModelServer(ServerConfig("", "", rest_port=0, grpc_port=0, models=tuple(entries))).start()
    try:
        yield server, models
    finally:
        server.stop(grace=0.5)


@pytest.mark.parametrize("name", list(CASES))
def test_builtin_model_of_any_accepted_size_is_exported_served_and_scores_as_torch(
    served: tuple[ModelServer, dict[str, nn.Module]], name: str
) -> None:
    server, models = served
    shape = CASES[name][1]
    raw = np.random.default_rng(2).integers(0, 256, (5, *shape), dtype=np.uint8)
    with PredictClient(server.rest_url, "v2-rest", name) as client:
        predictions = client.predict(raw)
    with torch.no_grad():
        expected = torch.softmax(models[name](torch.from_numpy(descriptor(shape).normalization.apply(raw))), 1)
    scores = np.array([p.scores for p in predictions])
    assert scores.shape == (5, len(CLASSES))
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-5)


_EXPORT_AND_REPORT_RSS = """
import resource, sys
from trainflow.export import export_model
export_model(sys.argv[1], sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_exporting_a_cnn_of_large_rgb_images_takes_memory_like_training_it_not_gigabytes(tmp_path: Path) -> None:
    shape = (3, 256, 256)  # verifying on 256 such images at once took 4.3 GB and 20 s
    spec = ModelSpec("cnn", 16, shape, len(CLASSES))
    torch.manual_seed(0)
    state = build_model(spec).state_dict()
    CheckpointStore(str(tmp_path / "train")).save(Checkpoint(1, spec, state, dataset=descriptor(shape).to_dict()))
    run = subprocess.run(
        [sys.executable, "-c", _EXPORT_AND_REPORT_RSS, str(tmp_path / "train"), str(tmp_path / "exported")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) < 1500, f"export peaked at {run.stdout.split()[-1]} MB"
    assert (tmp_path / "exported" / "1" / "signature.json").is_file()


@pytest.mark.parametrize("side", [1, 2, 3])
def test_cnn_refuses_images_below_its_smallest_size_in_one_line(side: int) -> None:
    with pytest.raises(TrainingError, match="at least 4x4 pixels"):
        check_model(ModelSpec("cnn", 16, (3, side, 8), len(CLASSES)))


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 64, 64), (3, 17, 90), (1, 4, 200), (3, 100, 17)])
def test_cnn_weights_saved_with_adaptive_pooling_load_and_give_the_same_logits(shape: tuple[int, int, int]) -> None:
    spec = ModelSpec("cnn", 16, shape, len(CLASSES))
    torch.manual_seed(0)
    saved = build_model(spec).eval()
    pool = 6  # after the two conv blocks; no parameters, so the state dict's keys are the same either way
    bins = (saved[pool].rows.shape[0], saved[pool].columns.shape[1])
    saved[pool] = nn.AdaptiveAvgPool2d(bins)  # the layer stack checkpoints were written with before
    model = build_model(spec).eval()
    model.load_state_dict(saved.state_dict())
    images = torch.rand(6, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(images), saved(images), rtol=0, atol=1e-5)


def test_mnist_cnn_keeps_its_layer_stack_so_its_checkpoints_export_as_before() -> None:
    layers = [type(layer).__name__ for layer in build_model(ModelSpec("cnn", 100))]
    assert layers == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear",
    ]  # fmt: skip
