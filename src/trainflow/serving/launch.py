"""What `trainflow serve` and the serve-model step decide before and after the server starts."""

from __future__ import annotations

import os
from typing import Any

from trainflow.serving.errors import ServingError
from trainflow.serving.model_config import read_model_config
from trainflow.serving.repository import check_base_path
from trainflow.serving.server import ServerConfig
from trainflow.storage import StorageOptions


def server_config(
    model_base_path: str | None,
    model_config_file: str | None,
    storage: StorageOptions,
    wait_for_model: bool = False,
    **flags: Any,
) -> ServerConfig:
    """One model from a base path, or several from a model config file; each base checked unless waiting for it."""
    if (model_base_path is None) == (model_config_file is None):
        raise ServingError("give --model-base-path (one model) or --model-config-file (several), not both or neither")
    if model_config_file is not None:
        models = tuple(read_model_config(model_config_file))
        config = ServerConfig(base_url="", storage=storage, **{**flags, "model_name": models[0].name, "models": models})
        bases = [m.base_path for m in models]
    else:
        config = ServerConfig(base_url=model_base_path or "", storage=storage, **flags)
        bases = [config.base_url]
    if not wait_for_model:
        for base in bases:
            check_base_path(base, config.storage)
    return config


def served_outputs(server: Any, config: ServerConfig) -> dict[str, Any]:
    """What the serve-model step tells the runner once it answers: where, what and which version."""
    return {
        "rest-url": server.rest_url,
        "grpc-address": server.grpc_address,
        "model-name": config.model_name,
        "model-version": server.repository.latest_version(),
        "pid": os.getpid(),
    }
