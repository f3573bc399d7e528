"""The gRPC floor for benchmarks/serve.py: the least a V2 gRPC server that runs the model can do per call.

The same stack as `trainflow serve`'s gRPC side: a grpc.aio server on its own thread and event loop, with
trainflow's server options and its generated `inference.GRPCInferenceService` servicer (so grpcio parses the
ModelInferRequest and serializes the ModelInferResponse, as for trainflow). ModelInfer reads the first
input's raw bytes as FP32 into numpy, runs the same ONNX Runtime session (trainflow's session options) on
the event loop, and builds the reply with every output's raw bytes; nothing else: no checks, no metrics,
no model lookup. ServerLive, ServerReady and ModelReady answer true. So trainflow's ratio to this floor is
its own work per call.

Started by floor_server.py (`--grpc-port` with `--model`), beside the JSON and binary floors:

    python benchmarks/floor_server.py --rest-port 8600 --grpc-port 9600 --model model.onnx
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def _protos() -> tuple[Any, Any]:
    """The generated V2 modules trainflow ships (src/trainflow/serving/protos)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb
    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as pb_grpc

    return pb, pb_grpc


def servicer(model_path: Path) -> Any:
    """A GRPCInferenceServiceServicer answering ModelInfer with one ONNX Runtime session, and nothing else."""
    import numpy as np

    pb, pb_grpc = _protos()
    from floor_server import model_session

    session, input_name, output_names, datatypes = model_session(model_path)

    class Floor(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc,name-defined]
        async def ServerLive(self, request: Any, context: Any) -> Any:
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:
            return pb.ServerReadyResponse(ready=True)

        async def ModelReady(self, request: Any, context: Any) -> Any:
            return pb.ModelReadyResponse(ready=True)

        async def ModelInfer(self, request: Any, context: Any) -> Any:
            tensor = request.inputs[0]
            x = np.frombuffer(request.raw_input_contents[0], dtype=np.float32).reshape(tensor.shape)
            values = session.run(output_names, {input_name: x})
            response = pb.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
            for name, value in zip(output_names, values, strict=True):
                response.outputs.add(name=name, datatype=datatypes[value.dtype], shape=value.shape)
                response.raw_output_contents.append(value.tobytes())
            return response

    return Floor()


def serve(port: int, model_path: Path) -> Callable[[], None]:
    """Serve the floor on 127.0.0.1:`port` on its own thread and loop, as trainflow does; the function that stops it."""
    from floor_server import grpc_on_thread

    _, pb_grpc = _protos()
    floor = servicer(model_path)
    options = [  # trainflow's (serving/server.py), with its default --max-request-bytes
        ("grpc.max_receive_message_length", 32 * 1024 * 1024),
        ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ]
    return grpc_on_thread(
        port, options, lambda server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(floor, server)
    )
