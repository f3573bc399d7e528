"""The choices training offers, torch-free: read by the CLI's options, the built-in pipeline and the spec's checks."""

from __future__ import annotations

OPTIMIZERS = ("adam", "sgd", "adamw")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
BUILTIN_MODEL_NAMES = ("cnn", "mlp")  # training.models builds them; a `--model` is one of these or module:attr
AUTO_MODEL = "auto"  # the default `--model`: the CNN for images [C, H, W], the MLP for feature vectors
MODEL_CHOICES = (AUTO_MODEL, *BUILTIN_MODEL_NAMES)  # what `--model` and model-factory values accept besides module:attr
