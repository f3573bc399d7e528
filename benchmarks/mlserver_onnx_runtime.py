"""MLServer custom runtime for benchmarks/serve.py: the same ONNX Runtime session settings as trainflow's."""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxClassifier(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        scores, classes = self.session.run(["scores", "classes"], {"images": images})
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("scores", scores), NumpyCodec.encode_output("classes", classes)],
        )
