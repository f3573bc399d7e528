"""Options several commands share, defined once so they cannot drift apart."""

from __future__ import annotations

import click

outputs_option = click.option(
    "--outputs",
    default=None,
    envvar="TRAINFLOW_OUTPUTS",
    help="Write the step's outputs here: a JSON file, or one file per key (plus outputs.json) in a path ending in /.",
)
