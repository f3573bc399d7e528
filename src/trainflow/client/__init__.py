"""client: query a served model over TF Serving REST/gRPC or KServe V2 REST/gRPC."""

from trainflow.client.errors import ClientError, ServerUnreachable
from trainflow.client.files import load_examples
from trainflow.client.images import image_layout, load_image_file, render_digit, to_model_input
from trainflow.client.predict import (
    PROTOCOLS,
    Evaluation,
    PredictClient,
    Prediction,
    default_server,
    evaluate,
    predict_images,
)

__all__ = [
    "PROTOCOLS",
    "ClientError",
    "Evaluation",
    "PredictClient",
    "Prediction",
    "ServerUnreachable",
    "default_server",
    "evaluate",
    "image_layout",
    "load_examples",
    "load_image_file",
    "predict_images",
    "render_digit",
    "to_model_input",
]
