"""A step's own program (`python train.py`, `bash prepare.sh`) run from the pipeline's code package in its pod.

`trainflow step ...` programs fetch the package themselves. A step whose argv starts another program gets, when
the workflow has a code package and the step runs trainflow's image (no `image=` of its own: another image may
not hold trainflow), the container command `trainflow step run-command` with `--` and its argv as the arguments:
that entry fetches, verifies and unpacks the package, moves into its folder and becomes the argv (cli/run_command.py).
The argv stays a list of words (never a shell line); without a package the container is what it was.
"""

from __future__ import annotations

from trainflow.pipelines import Step
from trainflow.pipelines.programs import STEP
from trainflow.workflows.code_packages import runs_in_package
from trainflow.workflows.kubernetes.options import ClusterOptions

ENTRY = [*STEP, "run-command"]


def entry(
    options: ClusterOptions, step: Step, command: list[str], args: list[str], own: bool
) -> tuple[list[str], list[str]]:
    """The container's command and args for `command + args`: as they are, unless they are the step's `own` argv
    (not a container trainflow builds around it) and its program runs in the code package's folder (see the module
    docstring)."""
    if not (own and options.code_package and runs_in_package(step, command)):
        return command, args
    return list(ENTRY), ["--", *command, *args]
