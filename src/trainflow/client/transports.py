"""One small client per protocol, each sending float32 [N, *example shape] and returning (classes, scores).

Each also reads the served model's input shape from the protocol's own metadata call.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np

from trainflow.client.errors import ClientError, ServerUnreachable

PREDICT_SIGNATURE = "predict_images"
Answer = tuple[np.ndarray, np.ndarray]  # classes int64 [N], scores float32 [N, 10]


class Transport(Protocol):
    """What PredictClient needs of a protocol: send a batch, get (classes, scores); close."""

    def __init__(self, server: str, model_name: str, timeout: float) -> None: ...

    def predict(self, images: np.ndarray) -> Answer: ...

    def input_shape(self) -> tuple[int, ...]:
        """One example's shape as the model's `images` input takes it (its metadata, less the batch axis)."""
        ...

    def close(self) -> None: ...


class _RestTransport:
    """An HTTP client for one server; subclasses say which path they post to."""

    def __init__(self, server: str, model_name: str, timeout: float) -> None:
        import httpx

        self.http = httpx.Client(base_url=f"http://{server}", timeout=timeout)
        self.path = self.path_for(model_name)

    def path_for(self, model_name: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        self.http.close()


class _GrpcTransport:
    """A gRPC channel to one server; subclasses say which service stub they call."""

    def __init__(self, server: str, model_name: str, timeout: float) -> None:
        import grpc

        self.server = server
        self.channel = grpc.insecure_channel(server)
        self.stub = self.stub_for(self.channel)
        self.model_name = model_name
        self.timeout = timeout

    def stub_for(self, channel):
        raise NotImplementedError

    def close(self) -> None:
        self.channel.close()


class TfsRestTransport(_RestTransport):
    """TF Serving REST `:predict`, row format, signature `predict_images`."""

    def path_for(self, model_name: str) -> str:
        return f"/v1/models/{model_name}:predict"

    def input_shape(self) -> tuple[int, ...]:
        meta = _get_json(self.http, self.path.removesuffix(":predict") + "/metadata")
        try:
            dims = meta["metadata"]["signature_def"]["signature_def"][PREDICT_SIGNATURE]["inputs"]["images"]
            return _example_shape([int(d["size"]) for d in dims["tensor_shape"]["dim"]])
        except (KeyError, TypeError, ValueError):
            raise ClientError(
                f"{self.http.base_url}: the model's metadata has no {PREDICT_SIGNATURE} input 'images'"
            ) from None

    def predict(self, images: np.ndarray) -> Answer:
        body = {"signature_name": PREDICT_SIGNATURE, "instances": images.tolist()}
        predictions = _post_json(self.http, self.path, body)["predictions"]
        return (
            np.array([p["classes"] for p in predictions], dtype=np.int64),
            np.array([p["scores"] for p in predictions], dtype=np.float32),
        )


class V2RestTransport(_RestTransport):
    """KServe V2 REST infer, JSON tensors (any V2 server understands them)."""

    def path_for(self, model_name: str) -> str:
        return f"/v2/models/{model_name}/infer"

    def input_shape(self) -> tuple[int, ...]:
        meta = _get_json(self.http, self.path.removesuffix("/infer"))
        return _example_shape(next((i.get("shape") for i in meta.get("inputs", []) if i.get("name") == "images"), None))

    def predict(self, images: np.ndarray) -> Answer:
        body = {
            "inputs": [
                {"name": "images", "shape": list(images.shape), "datatype": "FP32", "data": images.ravel().tolist()}
            ]
        }
        outputs = {o["name"]: o for o in _post_json(self.http, self.path, body)["outputs"]}
        return (
            np.array(outputs["classes"]["data"], dtype=np.int64),
            np.array(outputs["scores"]["data"], dtype=np.float32).reshape(outputs["scores"]["shape"]),
        )


class TfsGrpcTransport(_GrpcTransport):
    """TF Serving gRPC `PredictionService/Predict`, signature `predict_images`, tensor_content input."""

    def stub_for(self, channel):
        from trainflow.serving.protos.tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def input_shape(self) -> tuple[int, ...]:
        from trainflow.serving.protos.tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        response = _grpc_call(self.stub.GetModelMetadata, request, self.timeout, self.server)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def.get(PREDICT_SIGNATURE)
        info = signature.inputs.get("images") if signature is not None else None
        return _example_shape([d.size for d in info.tensor_shape.dim] if info is not None else None)

    def predict(self, images: np.ndarray) -> Answer:
        from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
        from trainflow.serving.protos.tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = PREDICT_SIGNATURE
        request.inputs["images"].CopyFrom(
            tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT,
                tensor_content=images.tobytes(),
                tensor_shape=tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in images.shape]
                ),
            )
        )
        response = _grpc_call(self.stub.Predict, request, self.timeout, self.server)
        scores = np.array(response.outputs["scores"].float_val, dtype=np.float32).reshape(len(images), -1)
        return np.array(response.outputs["classes"].int64_val, dtype=np.int64), scores


class V2GrpcTransport(_GrpcTransport):
    """KServe V2 gRPC `ModelInfer` with raw_input_contents."""

    def stub_for(self, channel):
        from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc

        return grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)

    def input_shape(self) -> tuple[int, ...]:
        from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

        request = pb.ModelMetadataRequest(name=self.model_name)
        response = _grpc_call(self.stub.ModelMetadata, request, self.timeout, self.server)
        return _example_shape(next((list(i.shape) for i in response.inputs if i.name == "images"), None))

    def predict(self, images: np.ndarray) -> Answer:
        from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

        request = pb.ModelInferRequest(model_name=self.model_name)
        request.inputs.add(name="images", datatype="FP32", shape=images.shape)
        request.raw_input_contents.append(images.tobytes())
        response = _grpc_call(self.stub.ModelInfer, request, self.timeout, self.server)
        dtypes = {"FP32": np.float32, "INT64": np.int64}
        outputs = {
            o.name: np.frombuffer(raw, dtype=dtypes[o.datatype]).reshape(tuple(o.shape))
            for o, raw in zip(response.outputs, response.raw_output_contents)
        }
        return outputs["classes"], outputs["scores"]


_IS_IT_RUNNING = (
    "is it running, and is --server its address? (`trainflow services` lists the servers trainflow started)"
)

TRANSPORTS: dict[str, type[Transport]] = {
    "grpc": TfsGrpcTransport,
    "rest": TfsRestTransport,
    "v2-rest": V2RestTransport,
    "v2-grpc": V2GrpcTransport,
}


def _example_shape(dims: list[int] | None) -> tuple[int, ...]:
    """[-1, *example] from a model's metadata -> the example's shape; ClientError when it is not a batch of them."""
    if not dims or dims[0] != -1 or any(d < 1 for d in dims[1:]):
        raise ClientError(
            f"the model's input 'images' has shape {dims}: trainflow predict sends batches [N, ...] of fixed-size examples"
        )
    return tuple(int(d) for d in dims[1:])


def _get_json(http, path: str) -> dict:
    return _answer_json(http, lambda: http.get(path))


def _post_json(http, path: str, body: dict) -> dict:
    return _answer_json(
        http, lambda: http.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
    )


def _answer_json(http, send) -> dict:
    import httpx

    try:
        response = send()
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"cannot reach the model server at {http.base_url}: {exc}; {_IS_IT_RUNNING}") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise ClientError(f"{http.base_url} answered {response.status_code}: {message}")
    return response.json()


def _grpc_call(method, request, timeout: float, server: str):
    import grpc

    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and "busy" not in (
            exc.details() or ""
        ):
            raise ServerUnreachable(
                f"cannot reach the model server at {server} ({exc.code().name}: {exc.details()}); {_IS_IT_RUNNING}"
            ) from None
        raise ClientError(f"the model server answered {exc.code().name}: {exc.details()}") from None
