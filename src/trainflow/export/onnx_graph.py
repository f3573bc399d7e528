"""A trained classifier as the servable ONNX graph: `images` [N, 784] -> `scores` (softmax), `classes` (argmax)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from trainflow.export.errors import ExportError

OPSET = 18
TOLERANCE = 1e-5
PIXELS = 28 * 28
_NOISY_LOGGERS = ("torch.onnx",)


class ServingModule(nn.Module):
    """Wraps a [N, 1, 28, 28] -> logits model into the serving signature's inputs and outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(images.reshape(-1, 1, 28, 28))
        return torch.softmax(logits, dim=1), torch.argmax(logits, dim=1)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx prints progress to stdout and logs the passes it runs."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _export_traced(module: ServingModule, example: torch.Tensor) -> bytes:
    # The tracing exporter, not torch.export (dynamo=True): it needs no onnxscript, handles every model
    # that runs on an example batch, and takes ~0.1 s for the CNN where torch.export takes seconds.
    buffer = io.BytesIO()
    with _quiet_exporter():
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # takes a file object too
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["scores", "classes"],
            dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}, "classes": {0: "batch"}},
        )
    return buffer.getvalue()


def to_onnx(model: nn.Module) -> bytes:
    """Serialized, checked ONNX model of `model` with a dynamic batch axis."""
    import onnx

    module = ServingModule(model).eval()
    example = torch.rand(4, PIXELS)
    try:
        data = _export_traced(module, example)
    except Exception as exc:  # noqa: BLE001 - a user's model can fail tracing in any way
        raise ExportError(f"cannot export the model to ONNX: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:  # noqa: BLE001 - the ONNX checker raises its own types
        raise ExportError(f"the exported ONNX model is invalid: {exc}".splitlines()[0]) from None
    return data


def verify(onnx_bytes: bytes, model: nn.Module, images: np.ndarray) -> float:
    """Check ONNX Runtime matches torch on `images` float32 [N, 784]; returns the largest score difference."""
    import onnxruntime

    images = images.astype(np.float32)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    scores, classes = session.run(["scores", "classes"], {"images": images})
    with torch.no_grad():
        torch_scores, torch_classes = ServingModule(model).eval()(torch.from_numpy(images))
    expected = torch_scores.numpy()
    if not (np.isfinite(expected).all() and np.isfinite(scores).all()):
        raise ExportError(
            f"the model's scores are NaN or infinite on {len(images)} probe images: its weights are "
            "unusable (a diverged training?); train again with a lower --learning-rate"
        )
    diff = float(np.abs(scores - expected).max()) if len(images) else 0.0
    if not diff <= TOLERANCE:  # written so that a NaN difference fails too
        raise ExportError(
            f"ONNX Runtime's scores differ from torch's by {diff:.2e} (> {TOLERANCE:.0e}): "
            "the model uses an operation the exporter translates inexactly"
        )
    # classes may differ only where the top two scores tie within the tolerance
    top2 = np.sort(expected, axis=1)[:, -2:] if len(images) else np.zeros((0, 2))
    clear_winner = (top2[:, 1] - top2[:, 0]) > 2 * TOLERANCE
    wrong = int(((classes != torch_classes.numpy()) & clear_winner).sum())
    if wrong:
        raise ExportError(f"ONNX Runtime and torch pick different classes for {wrong} of {len(images)} images")
    return diff
