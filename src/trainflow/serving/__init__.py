"""serving: the model server (TF Serving REST/gRPC and KServe V2 REST/gRPC over one ONNX Runtime core).

Names load on first use, so that importing the generated protos (`trainflow.serving.protos`, which the
client shares) does not pull in ONNX Runtime or the web stack.
"""

from __future__ import annotations

from typing import Any

from trainflow.serving.errors import (
    InvalidInput,
    ModelLoadError,
    NotFound,
    RequestTimeout,
    ServingError,
    TooLarge,
    Unavailable,
    Unimplemented,
)

_LAZY = {
    "ModelServer": "trainflow.serving.server",
    "ServerConfig": "trainflow.serving.server",
    "ModelRepository": "trainflow.serving.repository",
    "RepositoryConfig": "trainflow.serving.repository",
    "OnnxModel": "trainflow.serving.runtime",
    "BatchingConfig": "trainflow.serving.batching",
}

__all__ = [
    "InvalidInput",
    "ModelLoadError",
    "NotFound",
    "RequestTimeout",
    "ServingError",
    "TooLarge",
    "Unavailable",
    "Unimplemented",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainflow.serving' has no attribute {name!r}")
