"""Values that reach a cluster are checked against their type with a full-string match (issue 22, item 1).

A pattern ending in `$` also matches before a trailing newline, so `--node-selector "disk=ssd\n"` passed
its check. Every refusal is one `error:` line with exit code 2, whatever the value holds.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from click.testing import CliRunner

import trainflow
from trainflow.cli.main import cli


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(trainflow.__path__, "trainflow.")]
    return [n for n in names if ".protos" not in n and not n.endswith("__main__")]


def test_no_pattern_in_trainflow_ends_a_match_with_dollar() -> None:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern) and re.search(r"(?<!\\)\$", str(value.pattern)):
                found.append(f"{name}.{attr}")
    assert found == [], "use \\Z (or fullmatch): '$' also matches before a trailing newline"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--node-selector", "disk=ssd\n"], "node selector"),
        (["--toleration", "nvidia.com/gpu:NoSchedule\n"], "toleration"),
        (["--toleration", "nvidia.com/gpu\n"], "toleration"),
        (["--resources", "train-model:memory=4Gi\n"], "is not a Kubernetes quantity"),
        (["--resources", "train-model:gpu=1\n"], "is not a GPU count"),
        (["--resources", "train-model:gpu=99999999999999999999"], "is not a GPU count"),
        (["--image-pull-secret", "regcred\n"], "image pull secret"),
        (["--service-account", "trainer\n"], "service account"),
        (["--cache-storage-class", "fast\n"], "storage class"),
        (["--cache-size", "10Gi\n"], "cache size"),
        (["--cache-mode", "per-node", "--cache-host-path", "/mnt/cache\n"], "cache host path"),
        (["--kserve", "serve-model\n"], "--kserve step"),
        (["--replicas", "serve-model=99999999999999999999"], "replicas"),
        (["--replicas", "serve-model=2\n"], "replicas"),
        (["-p", "tf-worker=99999999999999999999"], "train-model workers '99999999999999999999' is not a whole"),
        (["-p", "data-label-column=y'\nsecurityContext: {privileged: true}"], "data-label-column holds a line break"),
        (["-p", "s3-train-base-url=s3://bucket/p\n  privileged: true"], "s3-train-base-url holds a line break"),
        (["-p", "aws-region=us-east-1'"], "aws-region"),
        (["-p", 'aws-region=us"east'], "aws-region"),
        (["-p", "aws-endpoint-url=http://minio:9000/'x"], "aws-endpoint-url"),
        (["-p", 'aws-endpoint-url=http://minio:9000" x: y'], "aws-endpoint-url"),
        (["-p", "s3-endpoint=minio:9000'"], "s3-endpoint"),
        (["-p", "s3-endpoint=minio:9000 {a: b}"], "s3-endpoint"),
        (["-p", "namespace=team\nx"], "namespace holds a line break"),
        (["-p", "job-name=run\nx"], "job-name holds a line break"),
        (["-p", "model-name=mnist\u2028x"], "model-name holds a line break"),
        (["-p", "model=pkg.mod:build\x00"], "model holds a line break"),
    ],
)
def test_a_value_with_a_trailing_newline_or_quote_is_one_error_line_and_exit_2(flags: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["compile", "model-train", *flags])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and says in line, line


@pytest.mark.parametrize(
    "flags",
    [
        ["-p", "aws-region=eu-central-1", "-p", "aws-endpoint-url=https://s3.example.com:8443/base"],
        ["-p", "s3-endpoint=minio.storage.svc:9000"],
        ["-p", "s3-endpoint=http://[fd00::1]:9000"],
        ["-p", "data-label-column=quality score"],
        ["--replicas", "serve-model=1000", "--resources", "train-model:gpu=8,memory=64Gi"],
    ],
)
def test_ordinary_values_still_compile(flags: list[str]) -> None:
    result = CliRunner().invoke(cli, ["compile", "model-train", *flags])
    assert result.exit_code == 0, result.output
