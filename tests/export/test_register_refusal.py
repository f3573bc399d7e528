"""`trainflow step train-model --register-model` with tracking off: one line naming every way out, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands import trainflow


def train_model(tmp_path: Path, *flags: str) -> tuple[int, str, str]:
    result = trainflow(
        "step",
        "train-model",
        "--data-dir",
        str(tmp_path / "data"),
        "--train-dir",
        str(tmp_path / "train"),
        "--export-base",
        str(tmp_path / "export"),
        *flags,
    )
    return result.returncode, result.stdout, result.stderr


def test_register_model_with_tracking_off_names_every_way_to_turn_it_on_and_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = train_model(tmp_path, "--register-model", "digits")
    assert (code, out) == (2, "")
    assert err == (
        "error: --register-model digits registers the model in MLflow, but tracking is off: set MLFLOW_TRACKING_URI=URI "
        "(an MLflow server, e.g. http://127.0.0.1:5000) for this command, or in a pipeline give --tracking-uri URI or "
        "-p mlflow-tracking-uri=URI to run or submit, or drop --register-model\n"
    )
    assert not (tmp_path / "train").exists() and not (tmp_path / "export").exists()


def test_register_alias_without_register_model_says_so_before_asking_for_tracking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = train_model(tmp_path, "--register-alias", "prod")
    assert (code, out) == (2, "")
    assert err == "error: --register-alias prod needs --register-model NAME: the registered model the alias is of\n"
    assert not (tmp_path / "train").exists()
