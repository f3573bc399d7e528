"""A step runs its pipeline's own code from a code package when TRAINFLOW_CODE_PACKAGE names one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# workflows.code_packages.CODE_ENV (a test holds them equal): read here first, so a step without a package
# never imports the packing code (every step program pays for what it imports).
CODE_ENV = "TRAINFLOW_CODE_PACKAGE"

_active: list[Path] = []  # the folder this process unpacked and imports from, once activated


def use_code_package() -> Path | None:
    """Fetch, verify and unpack the package TRAINFLOW_CODE_PACKAGE names, and import from it; its folder, or None.

    Once per process: a second call returns the folder the first one activated.
    """
    if _active:
        return _active[0]
    url = os.environ.get(CODE_ENV, "").strip()
    if not url:
        return None
    from trainflow.settings import trainflow_home
    from trainflow.workflows.code_packages import activate

    folder = activate(url, trainflow_home())
    _active.append(folder)
    log.info("running from the code package %s (unpacked in %s)", url, folder)
    return folder
