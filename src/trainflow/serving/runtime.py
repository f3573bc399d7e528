"""One loaded model version: an ONNX Runtime session, its signature, input checks, optional batching."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np

from trainflow.export.signature import PREDICT_METHOD, PREDICT_SIGNATURE, ModelSignature, SignatureDef, TensorSpec
from trainflow.serving.batching import BatchingConfig, DynamicBatcher, Outputs
from trainflow.serving.errors import ModelLoadError, NotFound
from trainflow.serving.tensor_specs import MAX_EXAMPLE_VALUES, InputCheck, numpy_dtype, probe_value

Feeds = dict[str, np.ndarray]
PROBE_ROWS = 4
ROW_TIMING_RUNS = 3
# what the load-time probe may allocate, all inputs together: one input at the per-example limit fits
MAX_PROBE_VALUES = PROBE_ROWS * MAX_EXAMPLE_VALUES
_ORT_DTYPES = {
    "float": "float32",
    "double": "float64",
    "float16": "float16",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
    "string": "string",
}


class OnnxModel:
    """A model version ready to answer: session created, signature checked against the graph, warmed up."""

    def __init__(
        self,
        name: str,
        version: int,
        directory: Path,
        signature: ModelSignature,
        threads: int = 1,
        batching: BatchingConfig | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.signature = signature
        if not signature.signatures:
            raise ModelLoadError(f"model '{name}' version {version}: signature.json lists no signatures")
        self.output_names = sorted(
            {
                spec.onnx_name
                for sig in signature.signatures.values()
                for spec in sig.outputs.values()
                if spec.dtype != "string"
            }
        )
        self._input_checks: dict[str, dict[str, InputCheck]] = {}
        self.session = _session(directory / signature.model_file, threads)
        # The session's C run: the Python wrapper's checks (missing feeds, OrtValue owners, WebGPU graph capture,
        # provider fallback) are for feeds and providers trainflow never gives it, at ~1.3 us a call.
        self._run_graph = getattr(getattr(self.session, "_sess", None), "run", None) or self._wrapped_run
        self._check_graph()
        self._probe(threads)
        self.batcher = DynamicBatcher(self.run, batching, f"{name}-{version}") if batching else None

    @functools.cached_property  # asked by every V2 request
    def default_tensor_signature(self) -> str:
        """The signature V2 speaks: `predict_images` if there is one, else the first predict signature."""
        names = self.signature.signatures
        if PREDICT_SIGNATURE in names:
            return PREDICT_SIGNATURE
        predicts = sorted(k for k, v in names.items() if v.method == PREDICT_METHOD)
        return (predicts or sorted(names))[0]

    def signature_def(self, signature_name: str) -> SignatureDef:
        """The named signature; NotFound naming the ones there are."""
        found = self.signature.signatures.get(signature_name)
        if found is None:
            raise NotFound(
                f"model '{self.name}' version {self.version} has no signature '{signature_name}': "
                f"use one of {', '.join(sorted(self.signature.signatures))}"
            )
        return found

    def input_checks(self, signature_name: str) -> dict[str, InputCheck]:
        """A signature's input checks by alias, made on first use; NotFound as `signature_def`."""
        checks = self._input_checks.get(signature_name)
        if checks is None:
            specs = self.signature_def(signature_name).inputs
            checks = self._input_checks[signature_name] = {a: InputCheck(a, spec) for a, spec in specs.items()}
        return checks

    def run(self, feeds: Feeds) -> Outputs:
        """One synchronous ONNX Runtime call on checked inputs ({graph input name: batch})."""
        values = self._run_graph(self.output_names, feeds, None)
        return dict(zip(self.output_names, values, strict=True))

    def run_graph(self, output_names: list[str], feeds: Feeds) -> list[np.ndarray]:
        """The named graph outputs for checked inputs, in this thread (no batch): the session's C run."""
        return self._run_graph(output_names, feeds, None)

    def _wrapped_run(self, output_names: list[str], feeds: Feeds, options: object) -> list[np.ndarray]:
        return self.session.run(output_names, feeds, options)

    def infer(self, feeds: Feeds) -> Outputs:
        """Run now, or wait for the next batch when batching is on; the ONNX outputs."""
        if self.batcher is not None:
            return self.batcher.submit(feeds).result()
        return self.run(feeds)

    def close(self) -> None:
        """Stop batching; requests still holding this model finish on it."""
        if self.batcher is not None:
            self.batcher.close()

    def _refuse(self, reason: str) -> ModelLoadError:
        return ModelLoadError(f"model '{self.name}' version {self.version}: {reason}")

    def _check_graph(self) -> None:
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        graph_outputs = {o.name: o for o in self.session.get_outputs()}
        for sig_name, sig in self.signature.signatures.items():
            fed = sorted(spec.onnx_name for spec in sig.inputs.values())
            if fed != sorted(graph_inputs):
                raise self._refuse(
                    f"signature '{sig_name}' feeds {fed} but the ONNX graph takes inputs "
                    f"{sorted(graph_inputs)}: make signature.json name every graph input once"
                )
            for alias, spec in sig.inputs.items():
                self._check_tensor(sig_name, "input", alias, spec, graph_inputs[spec.onnx_name])
            for alias, spec in sig.outputs.items():
                if spec.dtype == "string":
                    self._check_class_names(sig_name, alias, sig)
                elif spec.onnx_name not in graph_outputs:
                    raise self._refuse(
                        f"signature '{sig_name}' output '{alias}' reads '{spec.onnx_name}', but the "
                        f"ONNX graph has outputs {sorted(graph_outputs)}: fix signature.json"
                    )
                else:
                    self._check_tensor(sig_name, "output", alias, spec, graph_outputs[spec.onnx_name])

    def _check_tensor(self, sig_name: str, kind: str, alias: str, spec: TensorSpec, node: object) -> None:
        try:
            numpy_dtype(spec)
        except ModelLoadError as exc:
            raise self._refuse(f"signature '{sig_name}' {kind} '{alias}': {exc.message}") from None
        known = [d for d in spec.shape if d != -1]
        if any(d < 1 for d in known) or math.prod(known) > MAX_EXAMPLE_VALUES:
            raise self._refuse(
                f"signature '{sig_name}' {kind} '{alias}' has shape {list(spec.shape)}: dimensions "
                f"are -1 (free) or positive, at most {MAX_EXAMPLE_VALUES} values per example"
            )
        graph_type = str(getattr(node, "type", ""))
        graph_dtype = _ORT_DTYPES.get(graph_type.removeprefix("tensor(").removesuffix(")"), graph_type)
        graph_shape = list(getattr(node, "shape", None) or [])
        fixed = [d if isinstance(d, int) and d >= 0 else -1 for d in graph_shape]
        agrees = len(fixed) == len(spec.shape) and all(
            g == -1 or g == s for g, s in zip(fixed, spec.shape, strict=True)
        )
        if graph_dtype != spec.dtype or not agrees:
            raise self._refuse(
                f"signature '{sig_name}' {kind} '{alias}' is {spec.dtype} {list(spec.shape)}, but the "
                f"ONNX graph's '{spec.onnx_name}' is {graph_dtype} {fixed}: fix signature.json"
            )

    def _check_class_names(self, sig_name: str, alias: str, sig: SignatureDef) -> None:
        scores = [spec for spec in sig.outputs.values() if spec.dtype != "string"]
        classes = len(self.signature.class_labels)
        if len(scores) != 1 or len(scores[0].shape) != 2 or scores[0].shape[1] != classes or not classes:
            raise self._refuse(
                f"signature '{sig_name}' output '{alias}' (the class names) needs one float output of "
                f"shape [-1, {classes}] (one score per class name) beside it: fix signature.json"
            )

    def _check_probe_size(self, specs: dict[str, TensorSpec], rows: int) -> None:
        """Refuse inputs that are each under the per-example limit but together too large to probe."""
        total = rows * sum(_example_values(spec) for spec in specs.values())
        if total > MAX_PROBE_VALUES:
            raise self._refuse(
                f"its {len(specs)} inputs take {total} values for a probe batch of {rows}, more than the "
                f"{MAX_PROBE_VALUES} a version may take: at most {MAX_PROBE_VALUES // rows} values per example, "
                "all inputs together; make the inputs smaller in signature.json and the model"
            )

    def _row_seconds(self, probe: Feeds, rows: int, threads: int) -> float:
        """What a row costs, the least of a few timed runs: a busy machine's waits are no cost of the model.

        One intra-op thread runs the call in this thread, so its CPU time is the cost; with more, ORT's own
        threads share the work and the wall time is the cost. Time spent waiting for a core or the interpreter
        lock while loading would make every cheap request look too dear to answer on the event loop.
        """
        clock = time.thread_time if threads == 1 else time.perf_counter
        best = math.inf
        for _ in range(ROW_TIMING_RUNS):
            started = clock()
            self.run(probe)
            best = min(best, clock() - started)
        return best / rows

    def _probe(self, threads: int) -> None:
        """Blank, grey, white and noise inputs: every model that deserves serving answers them finitely."""
        specs = {spec.onnx_name: spec for sig in self.signature.signatures.values() for spec in sig.inputs.values()}
        rows = min((s.shape[0] for s in specs.values() if s.shape and s.shape[0] > 0), default=PROBE_ROWS)
        self._check_probe_size(specs, rows)
        probe = {name: probe_value(spec, rows) for name, spec in specs.items()}
        try:
            answers = self.run(probe)
            self.row_seconds = self._row_seconds(probe, rows, threads)  # warm now: what a row costs when serving
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types; the caller maps them
            raise self._refuse(f"fails on a probe batch: {str(exc).splitlines()[0][:300]}") from None
        # unknown (-1) sizes count as 1: more rows fit in a body, a larger estimate, the safe side
        self.values_per_row = sum(_example_values(spec) for spec in specs.values())
        outputs = {
            spec.onnx_name: spec
            for sig in self.signature.signatures.values()
            for spec in sig.outputs.values()
            if spec.dtype != "string"
        }
        for name, value in answers.items():
            want = tuple(rows if i == 0 and d == -1 else d for i, d in enumerate(outputs[name].shape))
            if value.ndim != len(want) or any(w != -1 and w != v for w, v in zip(want, value.shape, strict=True)):
                raise self._refuse(
                    f"output '{name}' has shape {list(value.shape)} for {rows} inputs: signature.json "
                    f"says {list(outputs[name].shape)}"
                )
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise self._refuse(
                    f"output '{name}' is not finite (NaN or infinite) on a probe batch of ordinary "
                    "inputs, so its weights probably are too: retrain it (e.g. with a lower learning "
                    "rate) and export a new version"
                )


def _example_values(spec: TensorSpec) -> int:
    """Values in one example of an input (a row of its batch), free dimensions counted as 1."""
    return math.prod(d for d in spec.shape[1:] if d > 0)


def _session(model_path: Path, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for missing or corrupt files
        raise ModelLoadError(f"cannot load {model_path}: {str(exc).splitlines()[0][:300]}") from None
