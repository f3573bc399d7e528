"""Options several commands share, defined once so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from trainflow.settings import trainflow_home
from trainflow.workflows.backends import BACKENDS, DEFAULT, Where, open_backend

if TYPE_CHECKING:
    from trainflow.workflows.backend import Backend
    from trainflow.workflows.kubernetes.options import ClusterOptions

outputs_option = click.option(
    "--outputs",
    default=None,
    envvar="TRAINFLOW_OUTPUTS",
    help="Write the step's outputs here: a JSON file, or one file per key (plus outputs.json) in a path ending in /.",
)

backend_option = click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default=DEFAULT,
    show_default=True,
    envvar="TRAINFLOW_BACKEND",
    help="Where workflows run: this machine, or the current Kubernetes context.",
)
tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="MLflow tracking server for this run (the pipeline's tracking-uri parameter; wins over MLFLOW_TRACKING_URI).",
)
namespace_option = click.option("-n", "--namespace", default="default", show_default=True, help="Kubernetes namespace.")


def backend_for(
    kind: str, namespace: str = "default", job_kind: str = "pytorchjob", options: ClusterOptions | None = None
) -> Backend:
    """The backend `--backend kind` names (workflows/backends.py's table), on this machine's home or `namespace`."""
    return open_backend(kind, Where(trainflow_home(), namespace, job_kind, options))


def parameters_option(help: str = "NAME=VALUE; repeatable.") -> Callable[[Any], Any]:
    """`-p/--parameter NAME=VALUE`, repeatable, into `params`; the help says what this command does with them."""
    return click.option("-p", "--parameter", "params", multiple=True, metavar="NAME=VALUE", help=help)


# What `--job-kind` takes: the Kubernetes backend's job kinds (workflows/kubernetes/resources.py's JOB_KINDS; a test
# holds them equal; that module is not imported here, as every step program reads this module).
JOB_KINDS = ("pytorchjob", "tfjob", "trainjob")
job_kind_option = click.option(
    "--job-kind",
    type=click.Choice(JOB_KINDS),
    default="pytorchjob",
    show_default=True,
    help="Training job each Train step creates: a training-operator PyTorchJob or TFJob, or a Trainer v2 TrainJob.",
)
