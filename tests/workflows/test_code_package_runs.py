"""A user pipeline's Train and Call steps run from a code package on S3 (moto), in a folder where its modules are absent.

The pipeline's folder (its modules beside it) is packed and uploaded; the pipeline file alone is copied
elsewhere and submitted with `--code-package`: every step imports the modules from the verified, unpacked
copy. A tampered package is refused before anything runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.commands import get_workflow, steps_by_name, trainflow
from trainflow.storage import open_store
from trainflow.workflows.code_packages import digest_of

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, Train, output, param

PIPELINE = Pipeline(
    name="packaged",
    name_param="run",
    params=(Param("run", "packaged", "Names the run."), Param("scale", 3, "A factor.", type="int")),
    steps=(
        Train(name="fit", function="mycode.fit:fit", inputs={"scale": param("scale")}, outputs=("loss",)),
        Call(name="report", function="mycode.report:report", inputs={"loss": output("fit", "loss")}, outputs=("line",)),
    ),
)
"""
FIT = """
import torch.distributed as dist

from mycode.helpers import halve


def fit(scale: str) -> dict:
    return {"loss": halve(float(scale)) * dist.get_world_size()}
"""
REPORT = """
from mycode.helpers import halve


def report(loss: str) -> dict:
    return {"line": f"loss {float(loss)} half {halve(float(loss))}"}
"""


def project(root: Path) -> Path:
    (root / "mycode").mkdir(parents=True)
    (root / "mycode" / "__init__.py").write_text("")
    (root / "mycode" / "helpers.py").write_text("def halve(x: float) -> float:\n    return x / 2\n")
    (root / "mycode" / "fit.py").write_text(FIT)
    (root / "mycode" / "report.py").write_text(REPORT)
    (root / "pipeline.py").write_text(PIPELINE)
    return root / "pipeline.py"


@pytest.mark.slow
def test_train_and_call_steps_run_from_the_package_where_the_modules_are_absent(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj")
    packed = trainflow("code-package", str(source), "--to", f"{s3_bucket}/team")
    assert packed.returncode == 0, packed.stderr
    url = packed.stdout.strip()
    assert url.startswith(f"{s3_bucket}/team/code/") and digest_of(url)
    alone = tmp_path / "elsewhere" / "pipeline.py"
    alone.parent.mkdir()
    shutil.copy(source, alone)
    assert not (alone.parent / "mycode").exists()
    result = trainflow("submit", str(alone), "--code-package", url, "-p", "scale=8", "--wait", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = steps_by_name(get_workflow("packaged"))
    assert steps["fit"]["outputs"]["loss"] in ("4.0", 4.0)
    assert steps["report"]["outputs"]["line"] == "loss 4.0 half 2.0"
    again = trainflow("code-package", str(source), "--to", f"{s3_bucket}/team")
    assert again.stdout.strip() == url  # equal code, equal package: stored once


def test_submit_from_a_tampered_package_is_refused_in_one_line_and_nothing_runs(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj")
    url = trainflow("code-package", str(source), "--to", s3_bucket).stdout.strip()
    base, _, name = url.rpartition("/")
    open_store(base).write_bytes(name, b"not the package")
    result = trainflow("submit", str(source), "--code-package", url)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not match its digest" in result.stderr
    assert trainflow("list", "-o", "json").stdout.strip() == "[]"


def test_compile_code_package_uploads_once_and_every_pod_fetches_it(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj")
    result = trainflow("compile", str(source), "--code-package", f"{s3_bucket}/team", "--job-kind", "trainjob")
    assert result.returncode == 0, result.stderr
    [url] = {line.split("value: ")[1] for line in result.stdout.splitlines() if "code/" in line and "value: " in line}
    url = url.strip("'\"")
    assert url.startswith(f"{s3_bucket}/team/code/") and open_store(f"{s3_bucket}/team/code").exists(url.split("/")[-1])
    assert "kind: TrainJob" in result.stdout


def test_compile_no_upload_prints_the_upload_command_and_uploads_nothing(tmp_path: Path, s3_bucket: str) -> None:
    source = project(tmp_path / "proj")
    result = trainflow("compile", str(source), "--code-package", f"{s3_bucket}/team", "--no-upload")
    assert result.returncode == 0, result.stderr
    assert f"trainflow code-package {source} --to {s3_bucket}/team" in result.stderr
    assert open_store(s3_bucket).list() == []
    printed = trainflow("code-package", str(source), "--to", f"{s3_bucket}/team").stdout.strip()
    assert printed in result.stdout  # the command uploads exactly the package the workflow names
