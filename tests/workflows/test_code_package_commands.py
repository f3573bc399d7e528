"""A local run with `--code-package` runs its `Command` steps' own programs from the unpacked package, as a cluster does.

The pipeline's folder (its scripts, a data file they read by a relative path) is packed and uploaded to a real S3
endpoint (moto); the run is submitted from another folder that holds a same-named script of its own: the package's
script runs, in the package's folder, with its exit code; a tampered package runs nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.commands import get_workflow, steps_by_name, trainflow
from trainflow.storage import open_store

PIPELINE = """
from trainflow.pipelines import Command, Param, Pipeline, param

PIPELINE = Pipeline(
    name="scripted",
    name_param="run",
    params=(Param("run", "scripted", "Names the run."), Param("code", "0", "The exit code of the script.")),
    steps=(
        Command(name="prep", argv=("./prepare.sh",), outputs=("prepared",)),
        Command(name="fit", argv=("python", "train_script.py", param("code")), outputs=("words", "where"), depends=("prep",)),
    ),
)
"""
SCRIPT = """
import os
import sys
from pathlib import Path

from helpers import shout

out = Path(os.environ["TRAINFLOW_OUTPUTS"])
(out / "words").write_text(shout(Path("data/words.txt").read_text().strip()))
(out / "where").write_text("package")
if sys.argv[1] != "0":
    print(f"train_script.py: stopping with code {sys.argv[1]}", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""
OTHER_SCRIPT = """
import os
from pathlib import Path

out = Path(os.environ["TRAINFLOW_OUTPUTS"])
(out / "words").write_text("from the submitting folder")
(out / "where").write_text("submitting folder")
"""


def project(root: Path, words: str = "hello from the package") -> Path:
    """A pipeline folder: its script, the helper module it imports, a data file and an executable shell script."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "words.txt").write_text(words + "\n")
    (root / "helpers.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    (root / "train_script.py").write_text(SCRIPT)
    prepare = root / "prepare.sh"
    prepare.write_text('#!/bin/sh\nprintf yes > "$TRAINFLOW_OUTPUTS/prepared"\n')
    prepare.chmod(0o755)
    (root / "pipeline.py").write_text(PIPELINE)
    return root / "pipeline.py"


def submitting_folder(root: Path, source: Path) -> Path:
    """Where the user submits from: the pipeline file and a train_script.py of its own, no data, no helpers."""
    root.mkdir(parents=True)
    shutil.copy(source, root / "pipeline.py")
    (root / "train_script.py").write_text(OTHER_SCRIPT)
    return root


def package(source: Path, bucket: str) -> str:
    packed = trainflow("code-package", str(source), "--to", f"{bucket}/team")
    assert packed.returncode == 0, packed.stderr
    return packed.stdout.strip()


def submit(folder: Path, url: str, *params: str) -> tuple[int, dict[str, dict[str, object]]]:
    """`trainflow submit pipeline.py --code-package URL --wait` from `folder`: its exit code and the run's steps."""
    run = next(p.partition("=")[2] for p in params if p.startswith("run="))
    args = [a for p in params for a in ("-p", p)]
    result = trainflow("submit", "pipeline.py", "--code-package", url, *args, "--wait", cwd=folder, timeout=600)
    return result.returncode, steps_by_name(get_workflow(run))


@pytest.mark.slow
def test_command_steps_run_the_packages_scripts_and_data_not_the_submitting_folders(
    tmp_path: Path, s3_bucket: str
) -> None:
    url = package(project(tmp_path / "proj"), s3_bucket)
    here = submitting_folder(tmp_path / "here", tmp_path / "proj" / "pipeline.py")
    code, steps = submit(here, url, "run=first")
    assert code == 0, steps
    assert steps["prep"]["outputs"]["prepared"] == "yes"  # ./prepare.sh: only the package has it
    assert steps["fit"]["outputs"]["where"] == "package"
    assert steps["fit"]["outputs"]["words"] == "HELLO FROM THE PACKAGE"  # its data file, its helper module
    assert (here / "train_script.py").read_text() == OTHER_SCRIPT  # the submitting folder is left as it was
    assert not (here / "outputs").exists() and not (here / "data").exists()


@pytest.mark.slow
def test_the_packaged_scripts_exit_code_fails_its_step(tmp_path: Path, s3_bucket: str) -> None:
    url = package(project(tmp_path / "proj"), s3_bucket)
    here = submitting_folder(tmp_path / "here", tmp_path / "proj" / "pipeline.py")
    code, steps = submit(here, url, "run=failing", "code=3")
    assert code == 1
    assert steps["prep"]["status"] == "Succeeded"
    assert steps["fit"]["status"] == "Failed"
    assert steps["fit"]["message"] == "train_script.py: stopping with code 3"  # the package's script said it


@pytest.mark.slow
def test_a_cached_command_step_runs_again_when_the_package_changes(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj")
    here = submitting_folder(tmp_path / "here", source)
    first = package(source, s3_bucket)
    assert submit(here, first, "run=one")[0] == 0
    code, steps = submit(here, first, "run=two")
    assert code == 0 and steps["fit"]["status"] == "Cached"  # the same package: its result stands
    (source.parent / "data" / "words.txt").write_text("edited words\n")  # a data file, not Python
    edited = package(source, s3_bucket)
    assert edited != first
    code, steps = submit(here, edited, "run=three")
    assert code == 0 and steps["fit"]["status"] == "Succeeded"
    assert steps["fit"]["outputs"]["words"] == "EDITED WORDS"


def test_a_tampered_package_runs_no_command_step(tmp_path: Path, s3_bucket: str) -> None:
    url = package(project(tmp_path / "proj"), s3_bucket)
    here = submitting_folder(tmp_path / "here", tmp_path / "proj" / "pipeline.py")
    base, _, name = url.rpartition("/")
    open_store(base).write_bytes(name, b"not the package")
    result = trainflow("submit", "pipeline.py", "--code-package", url, "--wait", cwd=here)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not match its digest" in result.stderr
    assert trainflow("list", "-o", "json").stdout.strip() == "[]"


STUDY = """
from trainflow.pipelines import Param, Pipeline, Train, param
from trainflow.pipelines.tuning import Tune

TRIAL = Train(name="fit", argv=("python", "trial_script.py", param("x")), outputs=("accuracy",))
PIPELINE = Pipeline(
    name="scripted-study",
    name_param="run",
    params=(
        Param("run", "study", "Names the run."),
        Param("x", "0.5", type="float"),
        Param("space", '{"x": {"type": "float", "low": 0.1, "high": 0.2}}', type="search-space"),
    ),
    steps=(Tune(name="study", trial=TRIAL, search_space=param("space"), max_trials=1, algorithm="random", seed=7),),
)
"""
TRIAL_SCRIPT = """
import json, os
from pathlib import Path

words = Path("data/words.txt").read_text().strip()  # the package's data, by a path relative to its folder
Path(os.environ["TRAINFLOW_OUTPUTS"]).write_text(json.dumps({"accuracy": len(words)}))
"""


@pytest.mark.slow
def test_a_studys_trials_run_the_packages_script_as_katibs_trials_do(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj", words="twelve chars")
    (source.parent / "trial_script.py").write_text(TRIAL_SCRIPT)
    source.write_text(STUDY)
    here = submitting_folder(tmp_path / "here", source)
    (here / "trial_script.py").write_text(OTHER_SCRIPT)  # would fail: it writes no objective
    code, steps = submit(here, package(source, s3_bucket), "run=study")
    assert code == 0, steps["study"]["message"]
    assert float(str(steps["study"]["outputs"]["best-value"])) == len("twelve chars")


@pytest.mark.slow
def test_a_relative_trainflow_home_holds_the_outputs_of_steps_started_in_the_package(
    tmp_path: Path, s3_bucket: str
) -> None:
    url = package(project(tmp_path / "proj"), s3_bucket)
    here = submitting_folder(tmp_path / "here", tmp_path / "proj" / "pipeline.py")
    relative = {"TRAINFLOW_HOME": "tf-home"}  # under the submitting folder, not the package's
    result = trainflow(
        "submit", "pipeline.py", "--code-package", url, "-p", "run=rel", "--wait", cwd=here, env=relative
    )
    shown = trainflow("get", "rel", cwd=here, env=relative).stdout
    assert result.returncode == 0, shown
    assert (here / "tf-home" / "workflows" / "rel" / "outputs" / "prep" / "prepared").read_text() == "yes"
