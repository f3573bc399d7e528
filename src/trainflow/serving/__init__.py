"""serving: the model server (TF Serving REST/gRPC and KServe V2 REST/gRPC over one ONNX Runtime core).

Names load on first use, so that importing the generated protos (`trainflow.serving.protos`, which the
client shares) does not pull in ONNX Runtime or the web stack.
"""

from __future__ import annotations

from trainflow.lazy_names import lazy_names
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

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
