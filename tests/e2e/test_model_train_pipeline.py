"""The whole example on one machine: S3 data -> cache -> 3 workers -> export -> served -> queried -> deployed."""

from __future__ import annotations

import json
import re
import shlex
import socket
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests import commands

pytestmark = pytest.mark.slow


trainflow = partial(commands.trainflow, timeout=600)  # whole pipelines run here


def listening(address: str) -> bool:
    host, port = address.replace("http://", "").split("/")[0].rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_model_train_then_predict_then_deploy(aws_env: str, mnist_dir: Path, trainflow_home: Path) -> None:
    try:
        upload = trainflow("data", "upload", str(mnist_dir), "s3://mybucket/data/mnist/")
        assert upload.returncode == 0, upload.stderr
        run = trainflow(
            "submit",
            "model-train",
            "-p",
            "s3-data-url=s3://mybucket/data/mnist/",
            "-p",
            "s3-train-base-url=s3://mybucket/models",
            "-p",
            "job-name=myjob-ab12c",
            "-p",
            "tf-worker=3",
            "-p",
            "model-train-steps=150",
            "--wait",
        )
        assert run.returncode == 0, run.stdout + run.stderr
        info = json.loads(trainflow("get", "myjob-ab12c", "-o", "json").stdout)
        outputs = {s["name"]: s["outputs"] for s in info["steps"]}
        assert info["status"] == "Succeeded"
        assert all(s["status"] == "Succeeded" for s in info["steps"])
        serve = outputs["serve-model"]
        assert serve["model-name"] == "mnist" and serve["model-version"] == 1

        # the example's client contract, with individual images, over gRPC on the served model
        dataset = outputs["download-dataset"]["dataset-path"]
        predicted = trainflow(
            "predict",
            "--server",
            serve["grpc-address"],
            "--data-dir",
            dataset,
            "--num-tests",
            "200",
            "--concurrency",
            "4",
        )
        assert predicted.returncode == 0, predicted.stderr
        rate = float(re.search(r"Inference error rate: ([\d.]+)%", predicted.stdout).group(1))
        assert rate < 15.0, predicted.stdout
        pictures = trainflow(
            "predict",
            "--server",
            serve["rest-url"].removeprefix("http://"),
            "--protocol",
            "rest",
            "--data-dir",
            dataset,
            "--num",
            "3",
        )
        assert pictures.returncode == 0 and "accuracy" in pictures.stdout.lower(), pictures.stdout + pictures.stderr

        # the command `get` suggests works as printed
        suggested = next(
            line for line in trainflow("get", "myjob-ab12c").stdout.splitlines() if line.startswith("Try:")
        )
        assert suggested.split(None, 1)[1] == (
            f"trainflow predict --server {serve['grpc-address']} --data-dir {dataset} --num 10"
        )
        tried = trainflow(*shlex.split(suggested)[2:])
        assert tried.returncode == 0 and tried.stdout.count("predicted") == 10, tried.stdout + tried.stderr

        status = httpx.get(f"{serve['rest-url']}/v1/models/mnist", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"

        # model-deploy serves the same workflow's model under the same model name
        deploy = trainflow("submit", "model-deploy", "-p", "workflow=myjob-ab12c", "--wait")
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        deployed = json.loads(trainflow("get", "myjob-ab12c-deploy", "-o", "json").stdout)
        dserve = {s["name"]: s["outputs"] for s in deployed["steps"]}["serve-model"]
        assert dserve["model-name"] == "mnist" and dserve["rest-url"] != serve["rest-url"]
        assert httpx.get(f"{dserve['rest-url']}/v1/models/mnist", timeout=10).status_code == 200

        # a resubmission under a new job-name reuses the download, the training and the export, and serves
        again = trainflow("resubmit", "myjob-ab12c", "--job-name", "myjob-again", "--wait")
        assert again.returncode == 0, again.stdout + again.stderr
        cached = {s["name"]: s for s in json.loads(trainflow("get", "myjob-again", "-o", "json").stdout)["steps"]}
        for step in ("download-dataset", "train-model", "export-model"):
            assert cached[step]["status"] == "Cached" and "myjob-ab12c" in cached[step]["message"], step
        aserve = cached["serve-model"]["outputs"]
        assert aserve["model-version"] == 1 and aserve["rest-url"] != serve["rest-url"]
        assert httpx.get(f"{aserve['rest-url']}/v1/models/mnist", timeout=10).status_code == 200

        # a changed training parameter trains again (and exports and serves that model), not the download
        lr = trainflow(
            "submit",
            "model-train",
            "-p",
            "s3-data-url=s3://mybucket/data/mnist/",
            "-p",
            "s3-train-base-url=s3://mybucket/models",
            "-p",
            "job-name=myjob-lr",
            "-p",
            "tf-worker=1",
            "-p",
            "model-train-steps=30",
            "-p",
            "model-serving=false",
            "--wait",
        )
        assert lr.returncode == 0, lr.stdout + lr.stderr
        rerun = {s["name"]: s["status"] for s in json.loads(trainflow("get", "myjob-lr", "-o", "json").stdout)["steps"]}
        assert rerun == {
            "download-dataset": "Cached",
            "get-workflow-info": "Succeeded",
            "tensorboard": "Succeeded",
            "train-model": "Succeeded",
            "export-model": "Succeeded",
            "serve-model": "Skipped",
        }

        services = trainflow("services").stdout
        assert services.count("serve-model") == 3 and "tensorboard" in services
        assert trainflow("delete", "--all").returncode == 0
        assert not listening(serve["rest-url"]) and not listening(dserve["grpc-address"])
    finally:
        trainflow("delete", "--all")
