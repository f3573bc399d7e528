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
from trainflow.workflows.kubernetes.options import ClusterOptions

ENTRY = [*STEP, "run-command"]


def uses_package(options: ClusterOptions, step: Step) -> bool:
    """Whether a step's own program runs through the code package's entry."""
    return bool(options.code_package) and step.image is None


def entry(
    options: ClusterOptions, step: Step, command: list[str], args: list[str], own: bool
) -> tuple[list[str], list[str]]:
    """The container's command and args for `command + args`: as they are, unless a step's `own` program uses the
    package (see the module docstring)."""
    if not (own and uses_package(options, step)):
        return command, args
    return list(ENTRY), ["--", *command, *args]
