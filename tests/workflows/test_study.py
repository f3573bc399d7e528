"""A Tune step's study on the local runner, with trials that are quick real processes (each starts a "worker").

Pruned trials end with their workers, a study killed midway resumes on `retry` without re-running its finished
trials, and a study whose every trial fails fails with the first trial's error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import httpx
import psutil
import pytest
from servers import free_port, stop, wait_for_port

from tests.commands import get_workflow, steps_by_name, trainflow

TRIAL = """
import subprocess, sys, time
from pathlib import Path
from trainflow.pipelines import report_progress

def fit(x: float, train_dir: str, steps: int) -> dict:
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # dies with the trial's group
    Path(train_dir).mkdir(parents=True, exist_ok=True)
    (Path(train_dir) / "worker.pid").write_text(str(worker.pid))
    for step in range(1, steps + 1):
        time.sleep(0.2)
        report_progress(step, steps, accuracy=x * step / steps)
    worker.kill()
    worker.wait()
    if x < 0.05:
        raise ValueError(f"x={x:.3f} is too small to train")
    return {"accuracy": x}
"""

PIPELINE = """
from trainflow.pipelines import Param, Pipeline, Train, param
from trainflow.pipelines.tuning import Tune

TRIAL = Train(
    name="fit",
    argv=("trainflow", "step", "call", "trial_steps:fit", "--input", "x", param("x"),
          "--input", "train_dir", param("train-dir"), "--input", "steps", param("steps")),
    train_dir=param("train-dir"),
    outputs=("accuracy",),
)
PIPELINE = Pipeline(
    name="tiny-study",
    name_param="job",
    params=(
        Param("job", "tiny", "run name", cache_key=False),
        Param("x", "0.5", type="float"),
        Param("steps", "8", type="int"),
        Param("train-dir", "TRAIN_DIR", type="url"),
        Param("space", '{"x": {"type": "float", "low": 0.0, "high": 1.0}}', type="search-space"),
        Param("trials", "8", type="int"),
        Param("stopping", "median", "early stopping", type="choice", choices=("none", "median", "hyperband")),
    ),
    steps=(
        Tune(name="study", trial=TRIAL, search_space=param("space"), max_trials=param("trials"),
             parallel_trials=2, algorithm="random", early_stopping=param("stopping"), seed=7),
    ),
)
"""


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "trial_steps.py").write_text(dedent(TRIAL))
    path = folder / "study.py"
    path.write_text(dedent(PIPELINE).replace("TRAIN_DIR", str(tmp_path / "train")))
    return path


def _trials(name: str) -> list[dict[str, object]]:
    return [t for t in get_workflow(name).get("trials", []) if t["study"] == "study"]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("stopping", ["median", "hyperband"])
def test_pruned_trials_end_with_their_workers_and_the_best_is_the_output(
    pipeline_file: Path, tmp_path: Path, stopping: str
) -> None:
    job = f"pruned-{stopping}"
    run = trainflow(
        "submit", str(pipeline_file), "-p", f"job={job}", "-p", f"stopping={stopping}", "--wait", timeout=240
    )
    assert run.returncode == 0, run.stdout + run.stderr
    trials = _trials(job)
    states = [t["state"] for t in trials]
    assert len(trials) == 8 and "pruned" in states, states
    for trial in trials:
        pid = int((Path(str(trial["train_dir"])) / "worker.pid").read_text())
        assert _gone(pid), f"trial {trial['number']} ({trial['state']}) left its worker {pid} running"
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: float(str(t["value"])))
    assert [t["number"] for t in trials if t["best"]] == [best["number"]]
    outputs = steps_by_name(get_workflow(job))["study"]["outputs"]
    assert json.loads(outputs["best-params"]) == best["params"]
    assert outputs["best-train-dir"] == str(tmp_path / "train" / "trials" / str(best["number"]))
    table = trainflow("get", job)
    assert "study: trials" in table.stdout and "pruned" in table.stdout, table.stdout
    compared = trainflow("compare", job)
    assert compared.returncode == 0 and f"{job}#0" in compared.stdout, compared.stdout + compared.stderr
    _dashboard_shows_the_study(job, trials)


def _dashboard_shows_the_study(job: str, trials: list[dict[str, object]]) -> None:
    """The dashboard's study: every trial with its curve, and the best so far after each trial."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "trainflow", "ui", "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60, proc=server)
        [study] = httpx.get(f"http://127.0.0.1:{port}/api/workflows/{job}/trials", timeout=30).json()["studies"]
    finally:
        stop(server)
    assert study["step"] == "study" and study["metric"] == "accuracy" and study["maximize"] is True
    assert [t["number"] for t in study["trials"]] == [t["number"] for t in trials]
    assert all(t["curve"] for t in study["trials"]), "a trial without its curve"
    best = [b for b in study["best_so_far"] if b is not None]
    assert best == sorted(best) and best[-1] == max(t["value"] for t in trials if t["state"] == "complete")


def _study_processes(name: str, home: Path) -> list[psutil.Process]:
    """The study's program and its trials (each trial a process group: its own program and its worker)."""
    marker = str(home / "workflows" / name)
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"], ad_value=None):
        cmdline, env = proc.info["cmdline"] or [], proc.info["environ"] or {}
        if env.get("TRAINFLOW_WORKFLOW") == marker and "workflow-runner" not in cmdline:
            found.append(proc)
    return found


def test_retry_resumes_a_killed_study_without_rerunning_finished_trials(
    pipeline_file: Path, trainflow_home: Path
) -> None:
    started = trainflow("submit", str(pipeline_file), "-p", "job=killed", "-p", "steps=15", "-p", "trials=6")
    assert started.returncode == 0, started.stderr
    folder = trainflow_home / "workflows" / "killed" / "studies" / "study"
    deadline = time.monotonic() + 120
    while True:  # two trials finished, a later one training
        finished = sorted(folder.glob("trial-*/outputs.json"))
        training = [p for p in folder.glob("trial-*/progress.jsonl") if not p.with_name("outputs.json").exists()]
        if len(finished) >= 2 and training:
            break
        assert time.monotonic() < deadline, "no two trials finished and a third training in 2 minutes"
        time.sleep(0.1)
    doomed = _study_processes("killed", trainflow_home)
    assert any("tune" in (p.info["cmdline"] or []) for p in doomed)
    for proc in doomed:  # the study dies with its trials (a crash); their records stay in the database
        os.kill(proc.pid, signal.SIGKILL)
    kept = {p.parent.name: p.parent.joinpath("log.txt").stat().st_mtime_ns for p in finished}
    deadline = time.monotonic() + 60
    while get_workflow("killed")["status"] not in ("Failed", "Error"):
        assert time.monotonic() < deadline, "the workflow did not fail after its study was killed"
        time.sleep(0.5)

    retried = trainflow("retry", "killed", "--wait", timeout=240)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    trials = _trials("killed")
    by_folder = {f"trial-{t['number']}": t for t in trials}
    for name, mtime in kept.items():
        assert by_folder[name]["state"] in ("complete", "pruned", "failed"), by_folder[name]
        assert folder.joinpath(name, "log.txt").stat().st_mtime_ns == mtime, f"{name} ran again"
    counted = [t for t in trials if t["state"] != "interrupted"]
    assert len(counted) == 6, [t["state"] for t in trials]
    interrupted = [t for t in trials if t["state"] == "interrupted"]
    assert interrupted, "no trial was running when the study was killed"
    rerun = [t["params"] for t in counted]
    assert all(t["params"] in rerun for t in interrupted), "an interrupted trial's parameters were not run again"


def test_a_study_whose_every_trial_fails_fails_with_the_first_error(pipeline_file: Path) -> None:
    space = '{"x": {"type": "float", "low": 0.0, "high": 0.01}}'
    run = trainflow(
        "submit", str(pipeline_file), "-p", "job=failing", "-p", f"space={space}", "-p", "trials=2", "--wait"
    )
    assert run.returncode != 0
    study = steps_by_name(get_workflow("failing"))["study"]
    assert study["status"] == "Failed"
    assert "is too small to train" in study["message"], study["message"]


@pytest.mark.parametrize(
    ("algorithm", "stopping"), [("random", "none"), ("grid", "median"), ("tpe", "hyperband"), ("cmaes", "median")]
)
def test_every_algorithm_and_stopping_runs_a_study(tmp_path: Path, algorithm: str, stopping: str) -> None:
    (tmp_path / "trial_steps.py").write_text(dedent(TRIAL))
    space = (
        {"x": {"type": "int", "low": 1, "high": 9}}
        if algorithm == "grid"
        else {"x": {"type": "float", "low": 0.1, "high": 1.0}}
    )
    words = [("text", "trainflow"), ("text", "step"), ("text", "call"), ("text", "trial_steps:fit")]
    words += [
        ("text", "--input"),
        ("text", "x"),
        ("param:x", "0.5"),
        ("text", "--input"),
        ("text", "steps"),
        ("text", "3"),
    ]
    words += [("text", "--input"), ("text", "train_dir"), ("train-dir", str(tmp_path / "train"))]
    args = ["step", "tune", "--study", "s", "--search-space", json.dumps(space), "--max-trials", "3"]
    args += ["--algorithm", algorithm, "--early-stopping", stopping, "--study-dir", str(tmp_path / "study")]
    args += ["--outputs", str(tmp_path / "out.json"), *(t for how, text in words for t in ("--trial-arg", how, text))]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = json.loads((tmp_path / "out.json").read_text())
    trials = json.loads((tmp_path / "study" / "study.json").read_text())["trials"]
    assert len(trials) == 3 and outputs["best-value"] == max(t["value"] for t in trials if t["state"] == "complete")
