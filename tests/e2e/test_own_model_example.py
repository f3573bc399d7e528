"""examples/own-model: a user's pipeline (its own model factory, a scikit-learn table) is as first-class as model-train.

One run serves every test: submitted with `--wait` as the README says, then asked through predict, the hint
`--wait` prints, tensorboard, compare, list -o wide and the dashboard. None of its steps has a built-in name.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.commands import trainflow
from tests.datasets.sample_data import write_wine_csv

pytestmark = pytest.mark.slow  # trains and serves a model

EXAMPLE = Path(__file__).parents[2] / "examples" / "own-model" / "pipeline.py"
RUN = "own-wine"
MODEL = "wine"


@dataclass(frozen=True)
class Finished:
    data: Path
    submitted: str  # what `submit --wait` printed


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def shared_home(home: Path, trainflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test reads the one run: the module's TRAINFLOW_HOME, not the test's own."""
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))


@pytest.fixture(scope="module")
def finished(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    data = write_wine_csv(tmp_path_factory.mktemp("wine"))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    out = trainflow(
        "submit", str(EXAMPLE), "-p", f"data={data}", "-p", f"model-name={MODEL}", "-p", f"run={RUN}",
        "-p", "steps=150", "--wait", timeout=600,
    )  # fmt: skip
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        yield Finished(data, out.stdout)
    finally:
        trainflow("delete", "--all")
        monkeypatch.undo()


def test_predict_asks_the_runs_model_under_its_name_about_the_datasets_test_split(finished: Finished) -> None:
    out = trainflow("predict", "--workflow", RUN, "--data-dir", str(finished.data), "--num-tests", "100")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"using the model server of workflow {RUN}" in out.stderr
    error_rate = float(out.stdout.rsplit("Inference error rate: ", 1)[1].split("%")[0])
    assert error_rate < 30  # chance is 60% wrong for wine's three classes


def test_the_hint_submit_wait_prints_works_as_printed(finished: Finished) -> None:
    hint = next(line for line in finished.submitted.splitlines() if line.startswith("Try:"))
    argv = shlex.split(hint.removeprefix("Try:"))
    assert argv[argv.index("--model-name") + 1] == MODEL
    tried = trainflow(*argv[1:])
    assert tried.returncode == 0 and tried.stdout.count("predicted") == 10, tried.stdout + tried.stderr


def test_tensorboard_names_the_runs_tensorboard_which_answers(finished: Finished) -> None:
    out = trainflow("tensorboard", RUN)
    assert out.returncode == 0, out.stderr
    assert httpx.get(out.stdout.strip(), timeout=30).status_code == 200


def test_list_wide_and_compare_read_the_train_dir_the_fit_step_declares(finished: Finished) -> None:
    listed = next(line.split() for line in trainflow("list", "-o", "wide").stdout.splitlines() if RUN in line)
    accuracy = float(listed[listed.index("Succeeded") + 3])
    assert 0.7 < accuracy <= 1 and listed[listed.index("Succeeded") + 5] == "1"  # model version 1
    again = trainflow("resubmit", RUN, "--job-name", f"{RUN}-2", "-p", "steps=60", "--no-cache", "--wait", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    compared = trainflow("compare", RUN, f"{RUN}-2", "-o", "json")
    assert compared.returncode == 0, compared.stderr
    runs = json.loads(compared.stdout)
    assert runs[RUN]["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert runs[RUN]["model_version"] == 1 and runs[f"{RUN}-2"]["metrics"]["global_step"] == 60


def test_the_dashboard_draws_the_curves_and_offers_the_models_own_input_form(finished: Finished) -> None:
    from starlette.testclient import TestClient

    from trainflow.settings import trainflow_home
    from trainflow.ui.app import create_app
    from trainflow.workflows.local.backend import LocalBackend

    with TestClient(create_app(LocalBackend(trainflow_home()), allowed_hosts=frozenset({"*"}))) as client:
        view = client.get(f"/api/workflows/{RUN}").json()
        assert view["serves_model"] is True and view["model"]["name"] == MODEL
        curves = client.get(f"/api/workflows/{RUN}/curves").json()
        assert curves["series"]["train/loss"] and (curves["step"], curves["total_steps"]) == (150, 150)
        form = client.get(f"/api/workflows/{RUN}/model-input").json()
        assert form["kind"] == "table" and form["input_shape"] == [13] and len(form["class_names"]) == 3
        answer = client.post(f"/api/workflows/{RUN}/predict", json={"features": [0.0] * 13})
        assert answer.status_code == 200, answer.text
        assert answer.json()["class_names"] == form["class_names"]
