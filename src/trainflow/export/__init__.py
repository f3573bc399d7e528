"""export: a training checkpoint -> a numbered, verified ONNX model version with its signature.json.

The exporter needs torch; the signature format and finding a reusable version do not. Servers import
`trainflow.export.signature` without paying for torch, so the exporter's names load on first use.
"""

from __future__ import annotations

from trainflow.export.errors import ExportError
from trainflow.lazy_names import lazy_names

_LAZY = {
    "ExportResult": "trainflow.export.reuse",
    "export_model": "trainflow.export.exporter",
    "ServingModule": "trainflow.export.onnx_graph",
    "to_onnx": "trainflow.export.onnx_graph",
    "verify": "trainflow.export.onnx_graph",
    "existing_versions": "trainflow.export.versions",
    "next_version": "trainflow.export.versions",
    "publish_version": "trainflow.export.versions",
    "reusable_version": "trainflow.export.reuse",
}

__all__ = ["ExportError", *_LAZY]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
