"""One loaded model version: an ONNX Runtime session, its signature, input checks, optional batching."""

from __future__ import annotations

import math
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from trainflow.export.signature import PREDICT_SIGNATURE, ModelSignature, SignatureDef
from trainflow.serving.batching import BatchingConfig, DynamicBatcher, Outputs
from trainflow.serving.errors import InvalidInput, ModelLoadError, NotFound


def expected_shapes(pixels: int) -> str:
    """How a user is told what an image input must look like."""
    side = math.isqrt(pixels)
    return f"float32 [N, {pixels}], [N, {side}, {side}] or [N, 1, {side}, {side}] with values in [0, 1]"


def normalise_images(value: np.ndarray, name: str, pixels: int) -> np.ndarray:
    """Check an image batch and return it as C-contiguous float32 [N, pixels]; InvalidInput otherwise."""
    side = math.isqrt(pixels)
    shape = tuple(value.shape)
    if value.dtype.kind not in "fiu":
        raise InvalidInput(f"input '{name}' holds {value.dtype} values: expected {expected_shapes(pixels)}")
    valid = ((len(shape) == 2 and shape[1] == pixels) or (len(shape) == 3 and shape[1:] == (side, side))
             or (len(shape) == 4 and shape[1:] == (1, side, side)))
    if not valid or shape[0] == 0:
        raise InvalidInput(f"input '{name}' has shape {list(shape)}: expected {expected_shapes(pixels)}")
    images = np.ascontiguousarray(value.reshape(shape[0], pixels), dtype=np.float32)
    low, high = float(images.min()), float(images.max())
    if math.isnan(low) or math.isnan(high) or math.isinf(low) or math.isinf(high):
        raise InvalidInput(f"input '{name}' contains NaN, infinite or out-of-range numbers: expected "
                           f"{expected_shapes(pixels)}")
    if low < 0.0 or high > 1.0:
        raise InvalidInput(f"input '{name}' has values in [{low:g}, {high:g}]: expected {expected_shapes(pixels)}")
    return images


class OnnxModel:
    """A model version ready to answer: session created, outputs checked and warmed up."""

    def __init__(self, name: str, version: int, directory: Path, signature: ModelSignature, threads: int = 1,
                 batching: BatchingConfig | None = None) -> None:
        self.name = name
        self.version = version
        self.signature = signature
        predict = self.signature_def(PREDICT_SIGNATURE)
        self.input_name = next(iter(predict.inputs.values())).onnx_name
        self.pixels = next(iter(predict.inputs.values())).shape[-1]
        self.output_names = sorted({spec.onnx_name for spec in predict.outputs.values()})
        self.session = _session(directory / signature.model_file, threads)
        self._check_graph()
        self.batcher = DynamicBatcher(self.run, batching, f"{name}-{version}") if batching else None

    def signature_def(self, signature_name: str) -> SignatureDef:
        """The named signature; NotFound naming the ones there are."""
        found = self.signature.signatures.get(signature_name)
        if found is None:
            raise NotFound(f"model '{self.name}' version {self.version} has no signature '{signature_name}': "
                           f"use one of {', '.join(sorted(self.signature.signatures))}")
        return found

    def run(self, images: np.ndarray) -> Outputs:
        """One synchronous ONNX Runtime call on a checked float32 [N, pixels] batch."""
        values = self.session.run(self.output_names, {self.input_name: images})
        return dict(zip(self.output_names, values))

    def submit(self, images: np.ndarray) -> Future[Outputs]:
        """Run now, or queue for the next batch when batching is on; the future holds the ONNX outputs."""
        if self.batcher is not None:
            return self.batcher.submit(images)
        future: Future[Outputs] = Future()
        try:
            future.set_result(self.run(images))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Stop batching; requests still holding this model finish on it."""
        if self.batcher is not None:
            self.batcher.close()

    def _check_graph(self) -> None:
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if self.input_name not in inputs or not set(self.output_names) <= outputs:
            raise ModelLoadError(f"model '{self.name}' version {self.version}: the ONNX graph has inputs {sorted(inputs)} "
                                 f"and outputs {sorted(outputs)}, but signature.json names input '{self.input_name}' "
                                 f"and outputs {self.output_names}: export the model again")
        probe = _probe_batch(self.pixels)
        try:
            answers = self.run(probe)
        except Exception as exc:
            raise ModelLoadError(f"model '{self.name}' version {self.version} fails on a probe batch: {exc}") from None
        classes = len(self.signature.class_labels)
        for name, value in answers.items():
            if value.ndim == 0 or value.shape[0] != len(probe) or (value.ndim == 2 and value.shape[1] != classes):
                raise ModelLoadError(f"model '{self.name}' version {self.version}: output '{name}' has shape "
                                     f"{list(value.shape)} for {len(probe)} images: expected [{len(probe)}] or "
                                     f"[{len(probe)}, {classes}]")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ModelLoadError(f"model '{self.name}' version {self.version}: output '{name}' is not finite (NaN "
                                     "or infinite) on a probe batch of ordinary images, so its weights probably are "
                                     "too: retrain it (e.g. with a lower learning rate) and export a new version")


def _probe_batch(pixels: int) -> np.ndarray:
    """Blank, grey, white and a fixed noise image: every model that deserves serving answers them finitely."""
    noise = np.random.default_rng(0).random(pixels, dtype=np.float32)
    return np.stack([np.zeros(pixels, np.float32), np.full(pixels, 0.5, np.float32), np.ones(pixels, np.float32),
                     noise])


def _session(model_path: Path, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for missing or corrupt files
        raise ModelLoadError(f"cannot load {model_path}: {str(exc).splitlines()[0][:300]}") from None
