"""Bring your own data: scikit-learn's datasets in each format, synced, trained on 2 workers, exported, served, queried.

Every dataset is trained once for the module (all at the same time: the runs mostly wait on imports)
and served by a real server; each protocol must clear the accuracy floor stated per dataset. A floor
is well below what a correct pipeline reaches (measured: digits 0.92, colours 1.0, wine 0.97, iris
0.97, breast cancer 0.97) and well above what a broken one does (features left unstandardised, pixels
sent unscaled, labels in another order, class names out of step): chance is 0.1 to 0.5.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.datasets.sample_data import (
    breast_cancer,
    digits,
    write_arrays_npy,
    write_colour_folders,
    write_digits_folders,
    write_iris_csv,
    write_wine_csv,
)
from trainflow.client import PROTOCOLS, PredictClient
from trainflow.datasets import DatasetCache, FormatOptions, load_dataset
from trainflow.export import export_model
from trainflow.serving.server import ModelServer, ServerConfig

pytestmark = pytest.mark.slow  # the module's fixtures train and serve a model per dataset

TRAIN_TIMEOUT = 240


@dataclass(frozen=True)
class Case:
    """A dataset as a user brings it, how it is trained, and the accuracy every protocol must reach."""

    write: Callable[[Path], Path]
    options: FormatOptions
    model: str
    steps: int
    floor: float
    learning_rate: str = "0.01"
    optimizer: str = "adam"
    schedule: str = "constant"


CASES = {
    "digits-png-folders": Case(write_digits_folders, FormatOptions(), "cnn", 80, 0.85),
    "colour-rgb-folders": Case(write_colour_folders, FormatOptions(image_size=(10, 12)), "cnn", 30, 0.9),
    "wine-csv": Case(write_wine_csv, FormatOptions(), "mlp", 60, 0.9),
    "iris-csv-named-labels": Case(
        write_iris_csv, FormatOptions(label_column="species"), "mlp", 60, 0.85, "0.05", "sgd", "cosine"
    ),
    "breast-cancer-npy": Case(
        lambda d: write_arrays_npy(d, *breast_cancer()), FormatOptions(), "mlp", 40, 0.9, "0.01", "adamw"
    ),
}


@dataclass(frozen=True)
class Served:
    name: str
    dataset: Path
    train_dir: Path
    server: ModelServer

    def address(self, protocol: str) -> str:
        return self.server.grpc_address if "grpc" in protocol else self.server.rest_url.removeprefix("http://")


def _train_all(root: Path, env: dict[str, str]) -> dict[str, Path]:
    """Sync every case into the cache, then train them all at once (2 workers each); dataset dirs by name."""
    cache = DatasetCache(root / "home" / "cache" / "datasets")
    datasets, procs = {}, {}
    for name, case in CASES.items():
        datasets[name] = cache.ensure(str(case.write(root / "sources" / name)), name, options=case.options).path
    for name, case in CASES.items():
        argv = [sys.executable, "-m", "trainflow", "train", "--data-dir", str(datasets[name])]
        argv += ["--train-dir", str(root / "train" / name), "--workers", "2", "--train-steps", str(case.steps)]
        argv += ["--batch-size", "32", "--model", case.model, "--learning-rate", case.learning_rate]
        argv += ["--eval-every", "20", "--log-every", "10", "--optimizer", case.optimizer]
        argv += ["--lr-schedule", case.schedule]
        log = open(root / f"{name}.log", "w")  # noqa: SIM115 - closed below, once the run ends
        procs[name] = (subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    try:
        for name, (proc, log) in procs.items():
            code = proc.wait(timeout=TRAIN_TIMEOUT)
            log.close()
            assert code == 0, f"training {name} failed:\n{(root / f'{name}.log').read_text()[-3000:]}"
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return datasets


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    root = tmp_path_factory.mktemp("own-data")
    env = {**os.environ, "TRAINFLOW_HOME": str(root / "home")}
    datasets = _train_all(root, env)
    servers: dict[str, Served] = {}
    try:
        for name, path in datasets.items():
            export_model(str(root / "train" / name), str(root / "exported" / name))
            config = ServerConfig(name, str(root / "exported" / name), rest_port=0, grpc_port=0)
            servers[name] = Served(name, path, root / "train" / name, ModelServer(config).start())
        yield servers
    finally:
        for entry in servers.values():
            entry.server.stop(grace=0.5)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_trained_on_own_data_clears_its_floor_over_every_protocol(
    served: dict[str, Served], name: str, protocol: str
) -> None:
    entry = served[name]
    dataset = load_dataset(entry.dataset)
    examples, labels = np.asarray(dataset.test.images), np.asarray(dataset.test.labels)
    with PredictClient(entry.address(protocol), protocol, name) as client:
        predictions = client.predict(examples)
    accuracy = float(np.mean([p.cls for p in predictions] == labels))
    assert accuracy >= CASES[name].floor, f"{name} over {protocol}: accuracy {accuracy:.3f}"


def test_metadata_and_classify_speak_the_datasets_shape_and_class_names(served: dict[str, Served]) -> None:
    iris, colours = served["iris-csv-named-labels"], served["colour-rgb-folders"]
    v2 = httpx.get(f"{colours.server.rest_url}/v2/models/{colours.name}").json()
    assert [i["shape"] for i in v2["inputs"]] == [[-1, 3, 10, 12]]
    dataset = load_dataset(iris.dataset)
    assert dataset.descriptor.class_names == ("setosa", "versicolor", "virginica")
    features = np.asarray(dataset.test.images[:10]).tolist()
    answer = httpx.post(
        f"{iris.server.rest_url}/v1/models/{iris.name}:classify",
        json={"examples": [{"inputs": row} for row in features]},
    ).json()
    top = [pairs[0][0] for pairs in answer["result"]]
    truth = [dataset.descriptor.class_names[int(y)] for y in dataset.test.labels[:10]]
    assert sum(t == p for t, p in zip(truth, top, strict=True)) >= 8, (truth, top)


def trainflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_predict_sends_pngs_csv_rows_and_npy_arrays_to_any_model(served: dict[str, Served], tmp_path: Path) -> None:
    x_test, y_test = digits()[2:]
    digit = served["digits-png-folders"]
    for i in range(3):
        Image.fromarray(x_test[i], "L").resize((32, 32)).save(tmp_path / f"digit{i}.png")  # any size: resized
    pngs = [str(tmp_path / f"digit{i}.png") for i in range(3)]
    out = trainflow(
        "predict", *pngs, "--server", digit.address("rest"), "--protocol", "rest", "--model-name", digit.name
    )
    assert out.returncode == 0, out.stderr
    assert sum(f"digit{i}.png: predicted {y_test[i]}," in out.stdout for i in range(3)) >= 2, out.stdout

    cancer = served["breast-cancer-npy"]
    x_cancer, y_cancer = breast_cancer()[2:]
    np.save(tmp_path / "rows.npy", x_cancer[:5])
    with open(tmp_path / "rows.csv", "w") as f:
        f.write("\n".join(",".join(f"{v:.6g}" for v in row) for row in x_cancer[:5]))
    for file in ("rows.npy", "rows.csv"):
        out = trainflow(
            "predict", str(tmp_path / file), "--server", cancer.address("v2-grpc"), "--protocol", "v2-grpc",
            "--model-name", cancer.name,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        predicted = [
            int(line.split("predicted ")[1].split(",")[0]) for line in out.stdout.splitlines() if " row " in line
        ]
        assert len(predicted) == 5 and sum(p == y for p, y in zip(predicted, y_cancer[:5], strict=True)) >= 4, (
            out.stdout
        )


def test_num_tests_reports_the_error_rate_on_any_synced_dataset(served: dict[str, Served]) -> None:
    wine = served["wine-csv"]
    out = trainflow(
        "predict", "--num-tests", "35", "--data-dir", str(wine.dataset), "--server", wine.address("grpc"),
        "--model-name", wine.name, "--concurrency", "4",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rate = float(out.stdout.split("Inference error rate: ")[1].split("%")[0])
    assert rate <= (1 - CASES["wine-csv"].floor) * 100, out.stdout


def test_csv_rows_of_the_wrong_width_get_one_clear_line(served: dict[str, Served], tmp_path: Path) -> None:
    wine = served["wine-csv"]
    (tmp_path / "short.csv").write_text("1,2,3\n")
    out = trainflow(
        "predict", str(tmp_path / "short.csv"), "--server", wine.address("rest"), "--protocol", "rest",
        "--model-name", wine.name,
    )  # fmt: skip
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'short.csv'} line 1 is not 13 numbers (the model's features, without a label): got 3 values"
    ]


@pytest.fixture
def synced_wine(tmp_path: Path, trainflow_home: Path) -> Path:
    cache = DatasetCache(trainflow_home / "cache" / "datasets")
    return cache.ensure(str(write_wine_csv(tmp_path / "wine")), "wine").path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: {**d, "class_names": ["0", "1"]}, r"train label 2 is outside the 2 classes of its descriptor"),
        (lambda d: {**d, "input_shape": [7]}, r"no longer matches .*descriptor\.json: remove the dataset"),
        (lambda d: {**d, "input_shape": ["wide"]}, r"descriptor\.json is damaged"),
    ],
    ids=["label-outside-classes", "shape-mismatch", "bad-value"],
)
def test_altered_descriptor_stops_training_with_one_line(
    synced_wine: Path, tmp_path: Path, edit: Callable[[dict], dict], message: str
) -> None:
    path = synced_wine / "descriptor.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    out = trainflow("train", "--data-dir", str(synced_wine), "--train-dir", str(tmp_path / "train"), "--model", "mlp")
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(message, errors[0]), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "train" / "checkpoints").exists()


def _scalars(train_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(train_dir / "logs")).Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_held_out_evaluation_every_k_steps_lands_in_tensorboard(served: dict[str, Served]) -> None:
    wine = _scalars(served["wine-csv"].train_dir)
    assert [step for step, _ in wine["eval/accuracy"]] == [20, 40, 60]
    assert [step for step, _ in wine["eval/loss"]] == [20, 40, 60]
    assert wine["eval/accuracy"][-1][1] >= CASES["wine-csv"].floor


def test_cosine_schedule_anneals_the_rate_and_sgd_still_learns(served: dict[str, Served]) -> None:
    iris = served["iris-csv-named-labels"]
    rates = [rate for _, rate in _scalars(iris.train_dir)["train/learning_rate"]]
    assert rates == sorted(rates, reverse=True) and rates[0] < 0.05 and rates[-1] < 0.001, rates
    constant = [rate for _, rate in _scalars(served["wine-csv"].train_dir)["train/learning_rate"]]
    assert constant and constant == pytest.approx([0.01] * len(constant))
    metrics = json.loads((iris.train_dir / "metrics.json").read_text())
    assert metrics["optimizer"] == "sgd" and metrics["accuracy"] >= CASES["iris-csv-named-labels"].floor
