"""The guide's pipelines, from examples/: they run as printed, in both forms, and the guide shows them whole."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.commands import trainflow
from tests.pipelines.test_user_pipelines import submitted_name
from trainflow.workflows.local.backend import LocalBackend

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sweep"


def test_the_guide_shows_the_example_files_whole() -> None:
    """The *Your own pipeline* guide includes the example files themselves (pymdownx.snippets), in this order."""
    page = (ROOT / "docs" / "how-to" / "your-own-pipeline.md").read_text()
    included = re.findall(r'```(?:python|yaml)\n--8<-- "([^"]+)"\n```', page)
    sweep = [f"examples/sweep/{name}" for name in ("sweep_steps.py", "pipeline.py", "pipeline.yaml")]
    assert included == [*sweep, "examples/gated/pipeline.py", "examples/gated/gate.py"]
    assert all((ROOT / path).is_file() for path in included)


@pytest.fixture
def cleanup() -> Iterator[None]:
    yield
    trainflow("delete", "--all")


@pytest.mark.slow
def test_the_sweep_runs_in_yaml_form_and_the_python_form_reuses_every_step(
    tmp_path: Path, trainflow_home: Path, cleanup: None
) -> None:
    out = tmp_path / "out"
    first = submitted_name(
        trainflow(
            "submit",
            "examples/sweep/pipeline.yaml",
            "-p",
            f"out={out}",
            "-p",
            "steps=20",
            "--wait",
            cwd=ROOT,
            timeout=400,
        )
    )
    info = json.loads(trainflow("get", first, "-o", "json").stdout)
    steps = {s["name"]: s for s in info["steps"]}
    assert info["status"] == "Succeeded", info["message"]
    assert [steps[f"fit[{i}]"]["outputs"]["workers"] for i in range(3)] == [2, 2, 2]  # each on 2 workers
    losses = [steps[f"fit[{i}]"]["outputs"]["loss"] for i in range(3)]
    assert steps["pick"]["outputs"]["best-loss"] == min(losses)
    page = httpx.get(steps["show"]["outputs"]["url"], timeout=10)
    assert page.status_code == 200 and f"best learning rate {steps['pick']['outputs']['best-lr']}" in page.text
    events = LocalBackend(trainflow_home).progress(first, "fit[0]")
    assert events[-1]["step"] == 20 and events[-1]["total"] == 20 and "loss" in events[-1]

    again = submitted_name(
        trainflow(
            "submit",
            "examples/sweep/pipeline.py",
            "-p",
            f"out={out}",
            "-p",
            "steps=20",
            "--wait",
            cwd=ROOT,
            timeout=200,
        )
    )
    steps = {s["name"]: s for s in json.loads(trainflow("get", again, "-o", "json").stdout)["steps"]}
    assert {n: s["status"] for n, s in steps.items() if n != "show"} == {
        n: "Cached" for n in ("make-data", "fit[0]", "fit[1]", "fit[2]", "pick", "report")
    }
    assert steps["show"]["status"] == "Succeeded" and steps["fit[2]"]["message"] == f"cached: outputs of {first}/fit[2]"
