"""Artifacts: a step's files published under the run's artifacts URL (local folder or real S3) and read back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import boto3
import pytest

from trainflow.pipelines import Call, Pipeline, PipelineError, output
from trainflow.pipelines.artifacts import digest, local_path, publish
from trainflow.workflows.backend import FINISHED
from trainflow.workflows.local.backend import LocalBackend


def a_model_dir(root: Path) -> Path:
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (model / "sub" / "config.json").write_text('{"layers": 2}')
    return model


def test_a_directory_and_a_file_published_to_a_local_store_are_urls_with_digests(tmp_path: Path) -> None:
    model = a_model_dir(tmp_path)
    (tmp_path / "report.txt").write_text("ok")
    base = str(tmp_path / "store" / "wf" / "step")
    out = publish({"model": str(model), "report": str(tmp_path / "report.txt"), "n": 3}, ("model", "report"), base)
    assert out["model"] == f"{base}/model" and out["report"] == f"{base}/report/report.txt" and out["n"] == 3
    assert (Path(out["model"]) / "sub" / "config.json").read_text() == '{"layers": 2}'
    assert out["model-digest"] == digest(model) == digest(Path(out["model"]))
    assert local_path(out["report"]).read_text() == "ok"
    (model / "weights.bin").write_bytes(b"retrained")  # a retried step publishes again: the copy follows
    assert Path(publish({"model": str(model)}, ("model",), base)["model"], "weights.bin").read_bytes() == b"retrained"


def test_artifacts_published_to_s3_come_back_whole_through_local_path(tmp_path: Path, s3_bucket: str) -> None:
    model = a_model_dir(tmp_path)
    (tmp_path / "report.txt").write_text("ok")
    out = publish(
        {"model": str(model), "report": str(tmp_path / "report.txt")}, ("model", "report"), f"{s3_bucket}/wf/s"
    )
    model_folder, report_folder = out["model-digest"][7:39], out["report-digest"][7:39]  # sha256:<32 of its hex>
    assert out["model"] == f"{s3_bucket}/wf/s/model/{model_folder}"
    assert out["report"] == f"{s3_bucket}/wf/s/report/{report_folder}/report.txt"
    fetched = local_path(out["model"])
    assert digest(fetched) == out["model-digest"] and fetched != model
    assert local_path(out["report"]).read_text() == "ok"
    assert local_path(out["model"]) == fetched  # fetched once, then read from the cache


def test_a_folder_published_again_to_s3_reads_back_as_the_new_version_alone_and_the_old_one_whole(
    tmp_path: Path, s3_bucket: str, trainflow_home: Path
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a").write_text("a1")
    (folder / "b").write_text("b1")
    first = publish({"model": str(folder)}, ("model",), f"{s3_bucket}/wf/s")
    assert sorted(p.name for p in local_path(first["model"]).iterdir()) == ["a", "b"]
    (folder / "b").unlink()  # a retried step writes fewer files, and other content
    (folder / "a").write_text("a2")
    second = publish({"model": str(folder)}, ("model",), f"{s3_bucket}/wf/s")
    copy = local_path(second["model"])
    assert sorted(p.name for p in copy.iterdir()) == ["a"] and (copy / "a").read_text() == "a2"
    assert digest(copy) == second["model-digest"] != first["model-digest"]
    assert digest(local_path(first["model"])) == first["model-digest"]  # who holds the first URL reads it whole


def test_an_artifact_prefix_holding_an_escaping_key_is_refused_and_caches_nothing(
    s3_bucket: str, aws_env: str, trainflow_home: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    bucket = s3_bucket.removeprefix("s3://")
    s3.put_object(Bucket=bucket, Key="wf/s/model/ok.txt", Body=b"fine")
    s3.put_object(Bucket=bucket, Key="wf/s/model/../../../../escaped.txt", Body=b"evil")
    with pytest.raises(PipelineError, match="refusing object name '../../../../escaped.txt'"):
        local_path(f"{s3_bucket}/wf/s/model")
    cache = trainflow_home / "cache" / "artifacts"
    assert not any(p.name == "escaped.txt" for p in trainflow_home.rglob("*")) and not list(cache.glob("*"))


@pytest.mark.parametrize(
    ("value", "message"),
    [("/no/such/file", "does not exist"), ("LINK", "is a symlink")],
)
def test_an_artifact_output_that_is_missing_or_a_symlink_fails_the_step(
    tmp_path: Path, value: str, message: str
) -> None:
    (tmp_path / "secret").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    value = str(tmp_path / "link") if value == "LINK" else value
    with pytest.raises(PipelineError, match=message):
        publish({"data": value}, ("data",), str(tmp_path / "store"))


STEPS = """
import tempfile
from pathlib import Path
from trainflow.pipelines.artifacts import local_path

def make(rows: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "data"
    out.mkdir()
    (out / "rows.txt").write_text("\\n".join(str(i) for i in range(rows)))
    return {"data": str(out)}

def total(data: str) -> dict:
    return {"sum": sum(int(x) for x in (local_path(data) / "rows.txt").read_text().split())}
"""


def artifact_pipeline(artifacts_url: str) -> Pipeline:
    return Pipeline(
        name="rows",
        params=(),
        artifacts_url=artifacts_url,
        steps=(
            Call(name="make", function="row_steps:make", inputs={"rows": "5"}, artifacts=("data",)),
            Call(name="total", function="row_steps:total", inputs={"data": output("make", "data")}, outputs=("sum",)),
        ),
    )


def run(backend: LocalBackend, pipeline: Pipeline, folder: Path) -> dict[str, tuple[str, dict]]:
    info = backend.submit(pipeline, {}, python_path=[str(folder)])
    deadline = time.monotonic() + 120
    while (info := backend.get(info.name)).status not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert info.status == "Succeeded", info.message
    return {s.name: (s.status, s.outputs) for s in info.steps}


def test_a_step_reads_the_artifact_an_earlier_step_published_to_s3_and_a_resubmission_reuses_it(
    tmp_path: Path, trainflow_home: Path, s3_bucket: str
) -> None:
    (tmp_path / "row_steps.py").write_text(dedent(STEPS))
    backend = LocalBackend(trainflow_home)
    first = run(backend, artifact_pipeline(f"{s3_bucket}/runs"), tmp_path)
    assert first["make"][1]["data"].startswith(f"{s3_bucket}/runs/") and first["total"][1] == {"sum": 10}
    again = run(backend, artifact_pipeline(f"{s3_bucket}/runs"), tmp_path)
    assert again["make"][0] == "Cached" and again["total"][0] == "Cached"


def test_a_bad_artifacts_url_is_refused_at_submit(tmp_path: Path, trainflow_home: Path) -> None:
    (tmp_path / "row_steps.py").write_text(dedent(STEPS))
    (tmp_path / "rows.py").write_text(
        "from trainflow.pipelines import Call, Pipeline\n"
        "PIPELINE = Pipeline(name='rows', params=(), artifacts_url='ftp://nowhere/x',\n"
        "    steps=(Call(name='make', function='row_steps:make', inputs={'rows': '5'}, artifacts=('data',)),))\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "submit", str(tmp_path / "rows.py")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "artifacts_url of rows: unsupported URL scheme 'ftp://'" in out.stderr
    assert (
        "ftp" not in subprocess.run([sys.executable, "-m", "trainflow", "list"], capture_output=True, text=True).stdout
    )


def test_two_workers_fetching_the_same_artifact_at_once_both_get_it(tmp_path: Path, s3_bucket: str) -> None:
    from trainflow.pipelines import artifacts
    from trainflow.storage import StorageOptions

    model = a_model_dir(tmp_path)
    url = publish({"model": str(model)}, ("model",), f"{s3_bucket}/wf/s")["model"]
    cache = tmp_path / "cache" / "artifacts" / "one"
    # Ranks of a training step call local_path together: the second to finish finds the first's copy in place.
    artifacts._download(url, cache, StorageOptions.from_env())
    artifacts._download(url, cache, StorageOptions.from_env())
    assert digest(cache) == digest(model) and [p.name for p in cache.parent.iterdir()] == ["one"]


def test_an_artifact_prefix_holding_a_key_and_a_folder_of_that_name_is_one_error_and_caches_nothing(
    s3_bucket: str, aws_env: str, trainflow_home: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    bucket = s3_bucket.removeprefix("s3://")
    s3.put_object(Bucket=bucket, Key="wf/s/model/x", Body=b"a file")
    s3.put_object(Bucket=bucket, Key="wf/s/model/x/y", Body=b"a file in a folder of the same name")
    with pytest.raises(PipelineError, match=r"cannot fetch artifact .*'x'.*'x/y'"):
        local_path(f"{s3_bucket}/wf/s/model")
    assert not list((trainflow_home / "cache" / "artifacts").glob("*"))


def test_a_folder_artifact_published_to_s3_keeps_its_hidden_files_as_its_digest_does(
    tmp_path: Path, s3_bucket: str
) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 10)
    (model / ".cfg").write_text("lr=0.1")
    (model / "sub" / ".hidden").write_text("inner")
    out = publish({"model": str(model)}, ("model",), f"{s3_bucket}/wf/s")
    copy = local_path(out["model"])
    assert (copy / ".cfg").read_text() == "lr=0.1" and (copy / "sub" / ".hidden").read_text() == "inner"
    assert digest(copy) == out["model-digest"] == digest(model)
