"""`trainflow step run-command -- ARGV...`: a `Command` step's own program, run from the pipeline's code package.

On a cluster the pods do not have the pipeline's folder; a compiled workflow with a code package runs each step's
own program (`python train.py --lr 0.1`, `bash prepare.sh`) through this entry. The `trainflow step` group has
already fetched, verified and unpacked the package (cli/step_code.py) and put its folder on PYTHONPATH. Here
`$TRAINFLOW_OUTPUTS` is made (as the local runner makes it), the process moves into the package's folder (where
the script's relative paths point, as they do locally when you submit from the pipeline's folder) and becomes
ARGV (`os.execvpe`): its exit code, signals, output and `$TRAINFLOW_OUTPUTS` files are its own. ARGV is a list
of words, never joined into a shell line.
"""

from __future__ import annotations

import os

import click

NOT_FOUND = 127  # what a shell exits with for a program it cannot find or run


@click.command("run-command", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command_step(argv: tuple[str, ...]) -> None:
    """Pipeline step: run ARGV (after `--`) in the unpacked code package's folder, as that program itself."""
    from trainflow.cli.step_code import use_code_package

    folder = use_code_package()
    outputs = os.environ.get("TRAINFLOW_OUTPUTS")
    if outputs:  # there before the program starts, as the local runner makes it (a pod's /tmp/outputs/ is not)
        os.makedirs(outputs, exist_ok=True)
    if folder is not None:
        os.chdir(folder)
    try:
        os.execvpe(argv[0], list(argv), dict(os.environ))
    except OSError as exc:
        click.echo(f"error: cannot run {argv[0]!r}: {exc.strerror or exc}", err=True)
        raise SystemExit(NOT_FOUND) from None
