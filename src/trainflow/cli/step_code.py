"""A step runs its pipeline's own code from a code package when TRAINFLOW_CODE_PACKAGE names one."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

# workflows.code_packages.CODE_ENV (a test holds them equal): read here first, so a step without a package
# never imports the packing code (every step program pays for what it imports).
CODE_ENV = "TRAINFLOW_CODE_PACKAGE"


def use_code_package() -> None:
    """Fetch, verify and unpack the package TRAINFLOW_CODE_PACKAGE names, and import from it; nothing if unset."""
    url = os.environ.get(CODE_ENV, "").strip()
    if not url:
        return
    from trainflow.settings import trainflow_home
    from trainflow.workflows.code_packages import activate

    folder = activate(url, trainflow_home())
    log.info("running from the code package %s (unpacked in %s)", url, folder)
