"""KServe V2 gRPC adapter: `inference.GRPCInferenceService` (health, metadata, ModelInfer with raw contents).

The methods run on grpc.aio's event loop; ModelInfer's decoding and inference go to the data plane's
workers unless the request is cheap enough to answer on the loop (`DataPlane.offload`).
"""

from __future__ import annotations

import functools

import grpc
import numpy as np

from trainflow.serving import v2_tensors
from trainflow.serving.dataplane import DataPlane, Tensors
from trainflow.serving.errors import InvalidInput, Unavailable, shown
from trainflow.serving.grpc_status import grpc_errors
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as pb_grpc
from trainflow.serving.runtime import OnnxModel

PROTOCOL = "v2-grpc"
_CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "INT16": "int_contents",
    "INT8": "int_contents",
    "UINT8": "uint_contents",
}


def _inputs(request: pb.ModelInferRequest, model: OnnxModel) -> Tensors:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: send one per input")
    tensors: Tensors = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in tensors:
            raise InvalidInput(f"input {shown(name)} is given twice: send each input once")
        dtype = v2_tensors.input_dtype(name, tensor.datatype, model)
        shape = v2_tensors.check_shape(name, list(tensor.shape))
        filled = sorted(field.name for field, _ in tensor.contents.ListFields())
        if raw:
            if filled:
                raise InvalidInput(f"input {shown(name)} has both {filled[0]} and raw_input_contents: send one")
            tensors[name] = v2_tensors.from_buffer(name, raw[index], dtype, shape)
            continue
        field = _CONTENTS.get(tensor.datatype)
        if field is None:
            raise InvalidInput(f"input {shown(name)}: {tensor.datatype} values go in raw_input_contents")
        misplaced = sorted(set(filled) - {field})
        if misplaced:
            raise InvalidInput(
                f"input {shown(name)} has datatype {tensor.datatype} but sends {misplaced[0]}: put "
                f"its values in {field}"
            )
        try:
            values: np.ndarray = np.array(getattr(tensor.contents, field), dtype=dtype)
        except OverflowError:
            raise InvalidInput(f"input {shown(name)} holds a number too large for {tensor.datatype}") from None
        tensors[name] = v2_tensors.shaped(name, values, shape)
    return tensors


def _numbers_only(request: pb.ModelInferRequest) -> bool:
    """No BYTES inputs (encoded images or strings): those are never decoded on the event loop."""
    return all(tensor.datatype != "BYTES" for tensor in request.inputs)


def _classification(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> int:
    """The output's `classification` parameter (Triton's top-k extension), 0 when absent."""
    if "classification" not in output.parameters:
        return 0
    parameter = output.parameters["classification"]
    value = parameter.int64_param if parameter.WhichOneof("parameter_choice") == "int64_param" else None
    return v2_tensors.classification_count(output.name, value if value is not None else shown(parameter))


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    @grpc_errors
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @grpc_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    @grpc_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        try:
            self.plane.model(request.name, request.version or None)
        except Unavailable:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @grpc_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**v2_tensors.server_metadata())

    @grpc_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        model = self.plane.model(request.name, request.version or None)
        meta = v2_tensors.model_metadata(model, [m.version for m in self.plane.versions(request.name)])
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    @grpc_errors
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        with self.plane.request(PROTOCOL) as scope:
            scope.model = model = self.plane.model(request.model_name, request.model_version or None)
            numbers = functools.partial(_numbers_only, request)
            return await self.plane.offload(model, request.ByteSize(), numbers, self._answer, model, request)

    def _answer(self, model: OnnxModel, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """Decode, run and encode one ModelInfer request (in a worker thread, or inline when cheap)."""
        outputs = self.plane.run(model, v2_tensors.signature_name(model), _inputs(request, model))
        wanted = {o.name: _classification(o) for o in request.outputs} or dict.fromkeys(outputs, 0)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise InvalidInput(f"unknown output(s) {shown(unknown)}: outputs are {sorted(outputs)}")
        response = pb.ModelInferResponse(model_name=model.name, model_version=str(model.version), id=request.id)
        for name, count in wanted.items():
            value = outputs[name]
            if count:
                value = v2_tensors.classify_output(model, name, value, count)
            response.outputs.add(name=name, datatype=v2_tensors.output_datatype(value), shape=value.shape)
            response.raw_output_contents.append(
                v2_tensors.bytes_tensor(value) if value.dtype.kind == "O" else np.ascontiguousarray(value).tobytes()
            )
        return response


def add_v2_service(server: grpc.aio.Server, plane: DataPlane) -> None:
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(plane), server)
