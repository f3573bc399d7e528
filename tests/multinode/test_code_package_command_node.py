"""A compiled `Command` step's own script runs on a node that reaches only the object store, from the code package.

The pipeline folder is packed and uploaded from the node to moto's S3 on a node of its own; the step's container
command, args and env, as compiled, then run on the node: the user's script (on no path of the node) runs from the
fetched, verified copy, reads its data file by a relative path, and its outputs and exit code come back.
"""

from __future__ import annotations

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
from tests.workflows.kubernetes.test_code_package_command import compiled, project
from tests.workflows.kubernetes.test_k8s_manifests import template

pytestmark = pytest.mark.slow

POD = "step-0"


def test_a_command_steps_script_runs_from_the_package_on_a_node_that_reaches_only_the_store(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    from servers import AWS_TEST_ENV

    cluster = make_cluster({STORE: service_names(STORE_SERVICE, "kubeflow"), POD: ()})
    env = base_env(**AWS_TEST_ENV, AWS_ENDPOINT_URL=STORE_URL, TRAINFLOW_HOME=str(tmp_path / "home"))
    start_store(cluster, env, tmp_path, POD)
    folder = project(tmp_path / "proj")
    packed = cluster.run(POD, trainflow("code-package", str(folder / "pipeline.py"), "--to", f"s3://{BUCKET}/t"), env)
    assert packed.returncode == 0, packed.stderr
    fit = template(compiled(folder, packed.stdout.strip()), "fit")["container"]
    argv = [a.replace("{{workflow.parameters.lr}}", "0.5") for a in [*fit["command"], *fit["args"]]]
    argv = [a.replace("{{workflow.parameters.exit-code}}", "3") for a in argv]
    outputs = tmp_path / "out"
    pod_env = {**env, **{e["name"]: e["value"] for e in fit["env"] if "value" in e}}
    pod_env |= {"TRAINFLOW_HOME": str(tmp_path / "home"), "TRAINFLOW_OUTPUTS": f"{outputs}/"}
    assert argv[0] == "trainflow"
    ran = cluster.run(POD, trainflow(*argv[1:]), pod_env)
    assert ran.returncode == 3, ran.stderr
    assert "trained with lr=0.5: hello from the package" in ran.stdout
    assert (outputs / "score").read_text() == "5.0" and (outputs / "words").read_text() == "hello from the package"
