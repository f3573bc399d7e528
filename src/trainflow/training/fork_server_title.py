"""Imported first by the training fork server (`worker_server.PRELOAD`), for its one effect: its process title.

The fork server only imports modules, so its title is set by an import: `trainflow fork server for pid N`
(N the `trainflow train` process that started it) in place of `python -c from multiprocessing.forkserver
import main ...`. Each worker forked from it then titles itself `trainflow worker R/W job NAME`.
Nothing else imports this module.
"""

from __future__ import annotations

import os

from trainflow.proctitle import set_title

set_title(f"trainflow fork server for pid {os.getppid()}")
