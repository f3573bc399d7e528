"""Process titles: what `ps`, `top` and `pgrep -f` show for trainflow's long-running processes.

Without one, a training worker reads `python -c from multiprocessing.forkserver import main ...` and every
server `python -m trainflow step ...`; with one a user finds the process to watch or stop:
`trainflow worker 1/2 job mnist-...`, `trainflow serve mnist :8501`, `trainflow runner NAME`.
"""

from __future__ import annotations

import os

# Without this, a title longer than the command line is written over the process's environment block:
# /proc/PID/environ then reads the title, and `trainflow stop/delete` find a run's processes by their
# environment (TRAINFLOW_WORKFLOW, TRAINFLOW_HOME). Titles are cut to the command line's length instead.
os.environ.setdefault("SPT_NOENV", "1")

import setproctitle  # reads SPT_NOENV when it sets the first title

_MAX = 200  # a title is one short line: values in it (a job or model name) are cut, never wrapped


def set_title(title: str) -> None:
    """Show `title` for this process (its command line as `ps` reads it, and its thread name on Linux)."""
    text = " ".join(title.split())[:_MAX]  # one line, whatever a name held
    setproctitle.setproctitle(text)


def worker_title(rank: str, world_size: str, job: str) -> str:
    """A training worker: `trainflow worker 1/2 job NAME` (ranks counted from 1, as a person counts)."""
    try:
        shown = f"{int(rank) + 1}/{int(world_size)}"
    except ValueError:
        shown = f"{rank}/{world_size}"
    return f"trainflow worker {shown} job {job}"
