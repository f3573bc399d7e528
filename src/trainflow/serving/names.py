"""Model names: what a client can address in a URL path, a gRPC ModelSpec and a file name alike."""

from __future__ import annotations

import re

from trainflow.serving.errors import ServingError, shown

MAX_MODEL_NAME_LENGTH = 128
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_model_name(name: str) -> str:
    """`name` if valid (a letter or digit, then letters, digits, '_', '.' or '-'); ServingError if not."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or len(name) > MAX_MODEL_NAME_LENGTH:
        raise ServingError(
            f"model name {shown(name)} is not valid: use up to {MAX_MODEL_NAME_LENGTH} letters, digits, "
            "'_', '.' or '-', starting with a letter or digit (e.g. mnist, mnist-v2)"
        )
    return name
