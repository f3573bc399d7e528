"""A `Command` step's own script runs from the pipeline's code package on Kubernetes, as its pod would run it.

No cluster here: the compiled container's command, args and env are run as a local process (the manifest's env,
a moto S3 server holding the uploaded package, TRAINFLOW_HOME a temp folder, a working folder without the script).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors, template
from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.pipelines import Param, Pipeline, Train, Tune, param
from trainflow.pipelines.loading import load_pipeline
from trainflow.storage import open_store
from trainflow.workflows.code_packages import CODE_ENV, pack, upload
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.katib_trials import trial_job
from trainflow.workflows.kubernetes.options import cluster_options

Validate = Callable[..., list[str]]
PACKAGE = f"s3://team-bucket/artifacts/code/{'ab' * 32}.tar.gz"

PIPELINE = """\
from trainflow.pipelines import Command, Param, Pipeline, param

PIPELINE = Pipeline(
    name="scripted",
    params=(Param("lr", "0.1", "Learning rate."), Param("exit-code", "0", "What the script exits with.")),
    steps=(
        Command(
            name="fit",
            argv=("python", "train_script.py", "--lr", param("lr"), "--exit-code", param("exit-code")),
            outputs=("score", "words"),
        ),
        Command(name="in-its-image", argv=("echo", "hello"), image="alpine:3.20"),
        Command(name="info", argv=("trainflow", "step", "get-workflow-info", "--job-name", "x")),
    ),
)
"""
SCRIPT = """\
import argparse, os, sys
from pathlib import Path

from mycode.scoring import score

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--exit-code", type=int)
args = parser.parse_args()
words = Path("data/words.txt").read_text().strip()  # relative to the pipeline's folder
assert os.getcwd() in os.environ["PYTHONPATH"].split(os.pathsep)
out = Path(os.environ["TRAINFLOW_OUTPUTS"])
(out / "score").write_text(str(score(args.lr)))
(out / "words").write_text(words)
print(f"trained with lr={args.lr}: {words}")
sys.exit(args.exit_code)
"""


def project(root: Path, script: str = SCRIPT) -> Path:
    (root / "mycode").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "pipeline.py").write_text(PIPELINE)
    (root / "train_script.py").write_text(script)
    (root / "mycode" / "__init__.py").write_text("")
    (root / "mycode" / "scoring.py").write_text("def score(lr: float) -> float:\n    return lr * 10\n")
    (root / "data" / "words.txt").write_text("hello from the package\n")
    return root


def compiled(folder: Path, package: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    options = cluster_options(code_package=package)
    [workflow] = compile_pipeline(load_pipeline(str(folder / "pipeline.py")), values or {}, options=options)
    return workflow


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_a_command_step_runs_through_the_code_package_entry_and_stays_schema_valid(
    tmp_path: Path, validate: Validate
) -> None:
    folder = project(tmp_path / "proj")
    workflow = compiled(folder, PACKAGE)
    fit = template(workflow, "fit")["container"]
    assert fit["command"] == ["trainflow", "step", "run-command"]
    assert fit["args"] == [
        "--",
        "python",
        "train_script.py",
        "--lr",
        "{{workflow.parameters.lr}}",
        "--exit-code",
        "{{workflow.parameters.exit-code}}",
    ]
    assert env_of(fit)[CODE_ENV] == PACKAGE and env_of(fit)["TRAINFLOW_OUTPUTS"] == "/tmp/outputs/"
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    # Another image may not hold trainflow: it runs its program as before; trainflow's own steps are unchanged.
    other = template(workflow, "in-its-image")["container"]
    assert (other["command"], other["args"]) == (["echo"], ["hello"])
    info = template(workflow, "info")["container"]
    assert info["command"] == ["trainflow", "step", "get-workflow-info"]


def test_without_a_code_package_a_command_step_runs_its_program_directly(tmp_path: Path) -> None:
    [workflow] = compile_pipeline(load_pipeline(str(project(tmp_path / "proj") / "pipeline.py")), {})
    fit = template(workflow, "fit")["container"]
    assert fit["command"] == ["python"] and fit["args"][0] == "train_script.py"
    assert CODE_ENV not in env_of(fit)


def test_a_command_steps_memoization_key_changes_with_the_code_package(tmp_path: Path) -> None:
    folder = project(tmp_path / "proj")
    other = PACKAGE.replace("ab" * 32, "cd" * 32)
    first, second = (template(compiled(folder, p), "fit")["memoize"]["key"] for p in (PACKAGE, other))
    assert first != second


def pod_run(
    container: dict[str, Any], params: dict[str, str], tmp_path: Path, home: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The container's command and args as its pod runs them: the manifest's env (credentials from the Secret),
    the workflow parameters filled in as Argo fills them, in a working folder that does not hold the script."""
    argv = [*container["command"], *container["args"]]
    for name, value in params.items():
        argv = [a.replace("{{workflow.parameters.%s}}" % name, value) for a in argv]
    assert argv[0] == "trainflow"
    outputs = tmp_path / "outputs"  # not there, as in a pod: the entry makes it as the local runner does
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINFLOW")}
    for entry in container["env"]:
        name = entry["name"]
        env[name] = entry["value"] if "value" in entry else os.environ.get(name, "")
    env |= {"TRAINFLOW_HOME": str(home), "TRAINFLOW_OUTPUTS": f"{outputs}/"}
    pod = tmp_path / "pod"
    pod.mkdir(exist_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "trainflow", *argv[1:]], cwd=pod, env=env, capture_output=True, text=True, timeout=120
    )
    return run, outputs


@pytest.mark.parametrize("code", [0, 3])
def test_the_compiled_command_runs_the_users_script_from_the_package_as_its_pod_would(
    tmp_path: Path, s3_bucket: str, code: int
) -> None:
    folder = project(tmp_path / "proj")
    url = upload(pack(folder), f"{s3_bucket}/team")
    fit = template(compiled(folder, url), "fit")["container"]
    home = tmp_path / "home"
    run, outputs = pod_run(fit, {"lr": "0.25", "exit-code": str(code)}, tmp_path, home)
    assert run.returncode == code, run.stderr
    assert "trained with lr=0.25: hello from the package" in run.stdout
    assert (outputs / "score").read_text() == "2.5" and (outputs / "words").read_text() == "hello from the package"
    assert not (tmp_path / "pod" / "train_script.py").exists()


def test_a_tampered_package_stops_the_pod_in_one_line_before_any_of_the_users_command_runs(
    tmp_path: Path, s3_bucket: str
) -> None:
    folder = project(tmp_path / "proj")
    package = pack(folder)
    url = upload(package, s3_bucket)
    marker = tmp_path / "ran"
    evil = project(tmp_path / "evil", f"open({str(marker)!r}, 'w').write('pwned')\n")
    open_store(f"{s3_bucket}/code").write_bytes(package.name, pack(evil).data)
    fit = template(compiled(folder, url), "fit")["container"]
    home = tmp_path / "home"
    run, outputs = pod_run(fit, {"lr": "0.1", "exit-code": "0"}, tmp_path, home)
    assert run.returncode != 0
    [line] = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert "does not match its digest" in line
    assert not marker.exists() and not outputs.exists()
    assert not (home / "code" / package.digest).exists()


def test_the_entry_becomes_the_users_program_so_its_signals_and_words_are_its_own(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upload(pack(project(tmp_path / "proj")), s3_bucket)
    monkeypatch.setenv(CODE_ENV, url)
    monkeypatch.setenv("TRAINFLOW_HOME", str(tmp_path / "home"))
    show = "import os, sys, time; print(os.getpid(), sys.argv[1:], os.path.exists('train_script.py'), flush=True); "
    argv = ["python", "-c", show + "time.sleep(60)", "--help", "--", "$(touch pwned)"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainflow", "step", "run-command", "--", *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"{proc.pid} ['--help', '--', '$(touch pwned)'] True\n"  # the same process, words as given
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.communicate()
    assert not (tmp_path / "pwned").exists()


def test_a_studys_trial_script_runs_through_the_code_package_entry_too(validate: Validate) -> None:
    trial = Train(name="fit", argv=("python", "train_script.py", "--lr", param("lr")), outputs=("accuracy",))
    space = json.dumps({"lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": True}})
    pipeline = Pipeline(
        name="study",
        params=(Param("lr", "0.1"), Param("space", space, type="search-space")),
        steps=(Tune(name="study", trial=trial, search_space=param("space"), max_trials=2),),
    ).validate()
    compiled = compile_pipeline(pipeline, {}, "pytorchjob", options=cluster_options(code_package=PACKAGE))
    [experiment] = [m for m in manifests(argo_submit(to_yaml(compiled), {}, "study-1")) if m["kind"] == "Experiment"]
    job = trial_job(experiment, {"lr": "0.0123"})
    [container] = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    env = env_of(container)
    words = [env[f"TRAINFLOW_ARG_{i}"] for i in range(sum(1 for n in env if n.startswith("TRAINFLOW_ARG_")))]
    assert words == ["trainflow", "step", "run-command", "--", "python", "train_script.py", "--lr", "0.0123"]
    assert container["command"] == ["sh", "-c"]  # the trial's shell is trainflow's: the package is fetched once
    assert env[CODE_ENV] == PACKAGE and validate(container, "Container") == [] and problems(job) == []


def test_a_training_steps_outputs_reader_copies_without_fetching_the_code_package() -> None:
    train = Train(name="fit", argv=("python", "train_script.py", "--lr", param("lr")), outputs=("accuracy",))
    pipeline = Pipeline(name="trained", params=(Param("lr", "0.1"),), steps=(train,)).validate()
    [workflow] = compile_pipeline(pipeline, {}, "pytorchjob", options=cluster_options(code_package=PACKAGE))
    reader = template(workflow, "fit-outputs")["container"]
    assert reader["command"] == ["sh", "-c"] and reader["args"][0] == 'mkdir -p "$1" && cp -R "$0". "$1"'
    [job] = [m for m in manifests(argo_submit(to_yaml([workflow]), {}, "trained-1")) if m["kind"] == "PyTorchJob"]
    [trainer] = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert trainer["command"] == ["trainflow", "step", "run-command"]  # the step's own program: from the package
