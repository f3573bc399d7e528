"""A trained classifier as the servable ONNX graph: `images` -> `scores` (softmax), `classes` (argmax).

The graph takes examples as clients send them (image pixels in [0, 1], or raw feature values) and
applies the dataset's per-channel or per-feature standardisation itself, as training did.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from trainflow.export.errors import ExportError

OPSET = 18
TOLERANCE = 1e-5
# images compared per run: a run's activations grow with the image (the CNN's first maps hold ~16 values per
# input value), so large images are compared a few at a time rather than exhausting memory
VERIFY_RUN_BYTES = 4 << 20
TRACE_ROWS = 2  # the example batch traced; two, not one, so that no size-1 batch axis is folded into the graph
PIXELS = 28 * 28
_NOISY_LOGGERS = ("torch.onnx",)


class ServingModule(nn.Module):
    """Wraps a [N, *input_shape] -> logits model into the serving signature's inputs and outputs.

    `mean` and `std` (one per channel of an image, or per feature) standardise the input first;
    None when the model takes its input as it comes (MNIST: pixels in [0, 1]).
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...] = (1, 28, 28),
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.input_shape = tuple(input_shape)
        self.standardise = mean is not None and std is not None
        shape = (1, len(mean or (0.0,))) + (1,) * (len(self.input_shape) - 1)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean or (0.0,), dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std or (1.0,), dtype=torch.float32).reshape(shape))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.reshape(-1, *self.input_shape)
        if self.standardise:
            x = (x - self.mean) / self.std
        logits = self.model(x)
        return torch.softmax(logits, dim=1), torch.argmax(logits, dim=1)

    @property
    def graph_input_shape(self) -> tuple[int, ...]:
        """One example as the graph takes it: flat for feature vectors and square one-channel images (MNIST's
        [784], what TF Serving's example sends), [C, H, W] for other images."""
        shape = self.input_shape
        flat = len(shape) != 3 or (shape[0] == 1 and shape[1] == shape[2])
        return (math.prod(shape),) if flat else shape

    def example(self, rows: int) -> torch.Tensor:
        """A random batch in the graph's input layout."""
        return torch.rand(rows, *self.graph_input_shape)


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


def to_onnx(module: nn.Module, example: torch.Tensor | None = None) -> bytes:
    """Serialized, checked ONNX model of `module` (a ServingModule, or a bare MNIST model) with a dynamic batch axis."""
    import onnx

    module = (module if isinstance(module, ServingModule) else ServingModule(module)).eval()
    example = example if example is not None else module.example(TRACE_ROWS)
    try:
        data = _export_traced(module, example)
    except Exception as exc:  # noqa: BLE001 - a user's model can fail tracing in any way
        raise ExportError(f"cannot export the model to ONNX: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:  # noqa: BLE001 - the ONNX checker raises its own types
        raise ExportError(f"the exported ONNX model is invalid: {exc}".splitlines()[0]) from None
    return data


def _run_both(session: object, module: ServingModule, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """(scores, classes) of ONNX Runtime, then of torch, for one run of `images`."""
    scores, classes = session.run(["scores", "classes"], {"images": images})  # type: ignore[attr-defined]
    with torch.no_grad():
        torch_scores, torch_classes = module(torch.from_numpy(images))
    return scores, classes, torch_scores.numpy(), torch_classes.numpy()


def verify(onnx_bytes: bytes, model: nn.Module, images: np.ndarray) -> float:
    """Check ONNX Runtime matches torch on `images` in the graph's input layout; returns the largest score difference."""
    import onnxruntime

    module = (model if isinstance(model, ServingModule) else ServingModule(model)).eval()
    images = images.astype(np.float32)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rows = max(1, VERIFY_RUN_BYTES // max(1, images.nbytes // max(1, len(images))))
    runs = [_run_both(session, module, images[i : i + rows]) for i in range(0, max(1, len(images)), rows)]
    scores, classes, expected, torch_classes = (np.concatenate(parts) for parts in zip(*runs))
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
    wrong = int(((classes != torch_classes) & clear_winner).sum())
    if wrong:
        raise ExportError(f"ONNX Runtime and torch pick different classes for {wrong} of {len(images)} images")
    return diff
