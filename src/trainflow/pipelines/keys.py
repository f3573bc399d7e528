"""Output keys (outputs, artifacts, locations, a service's urls) are names, never paths.

A key becomes a file name in the step's outputs folder, an Argo parameter read from
`/tmp/outputs/KEY` and a folder under the artifact store, so it may hold no '/', '.' or '..'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.limits import MAX_KEY_LENGTH
from trainflow.storage.names import shown

KEY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_KEY_LENGTH - 1}}}")


def check_keys(what: str, keys: Iterable[object]) -> None:
    """Refuse the first of `keys` that is not a name: `what` says which kind ("output", "artifact", ...)."""
    for key in keys:
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise PipelineError(
                f"{what} key {shown(str(key), 80)}: use at most {MAX_KEY_LENGTH} letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
