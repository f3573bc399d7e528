"""A step on a node that reaches only the object store (its own network namespace) runs from a code package.

The pipeline folder is packed and uploaded from the node to moto's S3 on a node of its own; the step then
imports the pipeline's modules from the fetched, verified copy (they are on no import path of the node), and a
package changed in the store after upload is refused in one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.multinode.conftest import MakeCluster
from tests.multinode.operator_env import service_names
from tests.multinode.test_pytorchjob_to_served_model import (
    BUCKET,
    STORE,
    STORE_SERVICE,
    STORE_URL,
    start_store,
)
from tests.multinode.world import base_env, trainflow
from tests.workflows.test_code_packages import project
from trainflow.workflows.code_packages import CODE_ENV

pytestmark = pytest.mark.slow

POD = "step-0"
TAMPER = f"""
import boto3, botocore.config, sys
s3 = boto3.client("s3", config=botocore.config.Config(s3={{"addressing_style": "path"}}))
s3.put_object(Bucket={BUCKET!r}, Key=sys.argv[1], Body=b"not the package")
"""


def test_a_step_on_a_node_that_reaches_only_the_store_runs_from_the_package(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    from servers import AWS_TEST_ENV

    cluster = make_cluster({STORE: service_names(STORE_SERVICE, "kubeflow"), POD: ()})
    env = base_env(**AWS_TEST_ENV, AWS_ENDPOINT_URL=STORE_URL, TRAINFLOW_HOME=str(tmp_path / "home"))
    start_store(cluster, env, tmp_path, POD)
    source = project(tmp_path / "proj") / "pipeline.py"
    packed = cluster.run(POD, trainflow("code-package", str(source), "--to", f"s3://{BUCKET}/team"), env)
    assert packed.returncode == 0, packed.stderr
    url = packed.stdout.strip()
    outputs = tmp_path / "out"
    step_env = {**env, CODE_ENV: url, "TRAINFLOW_OUTPUTS": f"{outputs}/"}
    ran = cluster.run(POD, trainflow("step", "call", "mycode.fit:small", "--input", "where", POD), step_env)
    assert ran.returncode == 0, ran.stderr
    assert (outputs / "loss").read_text() == "0.5" and (outputs / "where").read_text() == POD
    assert "running from the code package" in ran.stderr
    key = url.split(f"s3://{BUCKET}/", 1)[1]
    tampered = cluster.run(POD, [sys.executable, "-c", TAMPER, key], env)
    assert tampered.returncode == 0, tampered.stderr
    fresh = {**step_env, "TRAINFLOW_HOME": str(tmp_path / "home2")}
    refused = cluster.run(POD, trainflow("step", "call", "mycode.fit:small"), fresh)
    assert refused.returncode != 0
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "does not match its digest" in line
