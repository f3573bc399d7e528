"""`trainflow submit model-deploy -p model-uri=models:/NAME@ALIAS`: the pipeline serves a registry model (from the real
`mlflow server` fixture), and an unknown model or alias, or no tracking server, is one error line before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.tracking.conftest import MlflowServer, run_trainflow
from tests.tracking.test_registry_serving import answer_of, register_constant_model

NAME = "digits-deploy"


@pytest.fixture(scope="module")
def champion(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> int:
    """A registered model whose version answers 4 for every input, carrying the alias `champion`."""
    version = register_constant_model(mlflow_server, NAME, 4, tmp_path_factory.mktemp("deploy-model"))
    mlflow_server.client().set_registered_model_alias(NAME, "champion", str(version))
    return version


def test_model_deploy_serves_the_registry_alias_and_answers_a_predict(
    mlflow_server: MlflowServer, champion: int, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    given = ["-p", f"model-uri=models:/{NAME}@champion", "-p", f"mlflow-tracking-uri={mlflow_server.uri}"]
    env = {"MLFLOW_TRACKING_URI": ""}  # the parameter alone says where the registry is
    try:
        out = run_trainflow(
            home, env, "submit", "model-deploy", "-p", "workflow=champion", *given, "-p", "model-name=digits", "--wait"
        )
        assert out.returncode == 0, out.stdout + out.stderr
        info = json.loads(run_trainflow(home, {}, "get", "champion-deploy", "-o", "json").stdout)
        served = {s["name"]: s for s in info["steps"]}["serve-model"]["outputs"]
        assert served["model-name"] == "digits" and served["model-version"] == champion
        assert answer_of(served["rest-url"]) == 4
        status = httpx.get(f"{served['rest-url']}/v1/models/digits", timeout=10).json()["model_version_status"]
        assert [s["version"] for s in status] == [str(champion)]  # the registry's version number
    finally:
        run_trainflow(home, {}, "delete", "--all")


@pytest.mark.parametrize("uri", [f"models:/{NAME}@nobody", "models:/no-such-model@champion", f"models:/{NAME}/999"])
def test_an_unknown_registry_model_or_alias_is_one_error_line_at_submit(
    mlflow_server: MlflowServer, champion: int, tmp_path: Path, uri: str
) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri}
    out = run_trainflow(tmp_path, env, "submit", "model-deploy", "-p", "workflow=champion", "-p", f"model-uri={uri}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "is not in the registry" in out.stderr, out.stderr
    assert json.loads(run_trainflow(tmp_path, {}, "list", "-o", "json").stdout) == []


def test_a_registry_model_without_a_tracking_server_is_one_error_line(tmp_path: Path) -> None:
    given = ["-p", "workflow=champion", "-p", f"model-uri=models:/{NAME}@champion"]
    out = run_trainflow(tmp_path, {"MLFLOW_TRACKING_URI": ""}, "submit", "model-deploy", *given)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "no tracking server is set" in out.stderr, out.stderr
    assert "-p mlflow-tracking-uri=URI" in out.stderr


def test_a_malformed_model_uri_is_one_error_line(tmp_path: Path) -> None:
    out = run_trainflow(tmp_path, {}, "submit", "model-deploy", "-p", "workflow=x", "-p", "model-uri=s3://b/model")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "models:/NAME@ALIAS" in out.stderr, out.stderr


def test_pipeline_show_lists_the_registry_parameters(tmp_path: Path) -> None:
    out = run_trainflow(tmp_path, {}, "pipeline", "show", "model-deploy")
    assert out.returncode == 0, out.stderr
    assert "model-uri" in out.stdout and "registry-model" in out.stdout and "mlflow-tracking-uri" in out.stdout
