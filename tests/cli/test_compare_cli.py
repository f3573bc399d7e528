"""`trainflow compare` and `list -o wide`: runs side by side, from what each run's training wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import trainflow

STEPS = """
import json, os

def fit(lr: float, steps: int, train_dir: str) -> dict:
    os.makedirs(train_dir, exist_ok=True)
    loss = float("nan") if lr > 1 else round(lr * 10, 4)
    metrics = {"accuracy": round(0.9 + lr, 4), "loss": loss, "global_step": steps, "note": {"nested": 1}}
    with open(os.path.join(train_dir, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics))
    return {"train-dir": train_dir, "model-version": 1 if lr < 0.05 else 2}
"""

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, param

PIPELINE = Pipeline(
    name="fits",
    name_param="job",
    params=(Param("job", "fit"), Param("lr", 0.01, type="float"), Param("steps", 5, type="int"),
            Param("where", "")),
    steps=(Call(name="fit", function="user_steps:fit", cache=False, outputs=("train-dir", "model-version"),
                kinds={"train-dir": "train-dir", "model-version": "model-version"},
                inputs={"lr": param("lr"), "steps": param("steps"), "train_dir": param("where")}),),
)
"""


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[str]]:
    """Three finished runs: lr 0.01, 0.1, and 2 (whose loss is NaN)."""
    (tmp_path / "user_steps.py").write_text(dedent(STEPS))
    (tmp_path / "fits.py").write_text(dedent(PIPELINE))
    names = []
    for i, lr in enumerate(("0.01", "0.1", "2")):
        name = f"fit-{i}"
        out = trainflow(
            "submit", str(tmp_path / "fits.py"), "-p", f"job={name}", "-p", f"lr={lr}",
            "-p", f"where={tmp_path / name}", "--wait",
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        names.append(name)
    yield names
    trainflow("delete", "--all")


def row(text: str, label: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if f" {label} " in f" {line} ")


def test_compare_and_list_wide_show_parameters_and_final_metrics_side_by_side(runs: list[str]) -> None:
    out = trainflow("compare", *runs)
    assert out.returncode == 0, out.stderr
    assert row(out.stdout, "-p lr") == ["*", "-p", "lr", "0.01", "0.1", "2.0"]
    assert row(out.stdout, "accuracy") == ["*", "accuracy", "0.9100", "1.0000", "2.9000"]
    assert row(out.stdout, "loss") == ["*", "loss", "0.1000", "1.0000", "-"]  # NaN: no number to show
    assert row(out.stdout, "global_step") == ["global_step", "5", "5", "5"]  # the same: not marked
    assert row(out.stdout, "model version") == ["*", "model", "version", "1", "2", "2"]
    assert "-p steps" not in out.stdout  # equal everywhere: only with --all
    assert "nested" not in out.stdout  # only plain values from metrics.json
    assert row(trainflow("compare", "--all", *runs).stdout, "-p steps") == ["-p", "steps", "5", "5", "5"]

    as_json = json.loads(trainflow("compare", runs[0], runs[1], "-o", "json").stdout)
    assert as_json[runs[1]]["metrics"]["accuracy"] == 1.0 and as_json[runs[0]]["params"]["lr"] == "0.01"

    # list -o wide: the same numbers, one run a line
    out = trainflow("list", "-o", "wide")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:7] == ["NAME", "STATUS", "AGE", "DURATION", "ACCURACY", "LOSS", "VERSION"]
    first = row(out.stdout, runs[0])
    assert first[0] == runs[0] and first[1] == "Succeeded" and first[4:7] == ["0.9100", "0.1000", "1"], first


def test_compare_refuses_fewer_than_two_runs_or_an_unknown_one() -> None:
    one = trainflow("compare", "fit-0#1", "fit-0#1")  # one trial, named twice
    assert one.returncode == 2 and one.stderr.startswith("error: give two or more"), one.stderr
    alone = trainflow("compare", "fit-0", "fit-0")  # one run alone compares its study's trials: it must exist
    assert alone.returncode == 2 and "no workflow named 'fit-0'" in alone.stderr, alone.stderr
    unknown = trainflow("compare", "nope", "nada")
    assert unknown.returncode == 2 and "no workflow named 'nope'" in unknown.stderr
