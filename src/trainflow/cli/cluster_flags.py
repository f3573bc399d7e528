"""Flags that shape the Kubernetes objects (`trainflow compile`, `trainflow submit --backend kubernetes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from trainflow.workflows.kubernetes.options import ClusterOptions

# The cache's choices and defaults, as workflows/kubernetes/options.py defines them (a test holds them equal): every
# command with these flags (list, get, delete...) imports this module, and only cluster work needs that one.
CACHE_MODES = ("shared", "per-node")
CACHE_SIZE = "10Gi"
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce")
HOST_CACHE_PATH = "/var/lib/trainflow-cache"

FLAGS = (
    click.option("--node-selector", "node_selectors", multiple=True, help="KEY=VALUE node label every pod needs."),
    click.option("--toleration", "tolerations", multiple=True, help="KEY[=VALUE][:EFFECT] taint every pod tolerates."),
    click.option("--image-pull-secret", "image_pull_secrets", multiple=True, help="Secret to pull the images with."),
    click.option("--service-account", default=None, help="ServiceAccount of the workflow and its pods [trainflow]."),
    click.option("--replicas", "replicas", multiple=True, help="STEP=N pods behind a service step (serve-model=3)."),
    click.option("--kserve", "kserve", multiple=True, help="Service STEP deployed as a KServe InferenceService."),
    click.option(
        "--resources", "resources", multiple=True, help="STEP:cpu=..,memory=..,gpu=.. per process (train-model:gpu=1)."
    ),
    click.option(
        "--cache-mode",
        type=click.Choice(CACHE_MODES),
        default="shared",
        show_default=True,
        help="Dataset cache: one shared claim, or a directory on each node (hostPath).",
    ),
    click.option("--cache-size", default=CACHE_SIZE, show_default=True, help="Size the cache claim requests."),
    click.option("--cache-access-mode", type=click.Choice(ACCESS_MODES), default="ReadWriteMany", show_default=True),
    click.option("--cache-storage-class", default=None, help="StorageClass of the cache claim [cluster default]."),
    click.option("--cache-host-path", default=HOST_CACHE_PATH, show_default=True, help="Node directory (per-node)."),
    click.option(
        "--training-runtime",
        default="",
        help="--job-kind trainjob: the ClusterTrainingRuntime, where the pipeline has no parameter for it "
        "[torch-distributed].",
    ),
)
NAMES = (
    "node_selectors",
    "tolerations",
    "image_pull_secrets",
    "service_account",
    "replicas",
    "kserve",
    "resources",
    "cache_mode",
    "cache_size",
    "cache_access_mode",
    "cache_storage_class",
    "cache_host_path",
    "training_runtime",
)


def cluster_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the cluster flags; the command receives them as keyword arguments (see `options_from`)."""
    for flag in reversed(FLAGS):
        command = flag(command)
    return command


def options_from(flags: dict[str, Any]) -> ClusterOptions:
    """The checked options the flags (popped from `flags`) give."""
    from trainflow.workflows.kubernetes.options import cache_volume, cluster_options

    given = {name: flags.pop(name) for name in NAMES}
    cache = cache_volume(
        given["cache_mode"],
        given["cache_size"],
        given["cache_access_mode"],
        given["cache_storage_class"],
        given["cache_host_path"],
    )
    return cluster_options(
        given["node_selectors"],
        given["tolerations"],
        given["image_pull_secrets"],
        given["service_account"],
        given["replicas"],
        given["resources"],
        cache,
        given["kserve"],
        training_runtime=given["training_runtime"],
    )


def any_given(flags: dict[str, Any]) -> bool:
    """Whether a flag differs from its default (the local backend refuses them)."""
    from trainflow.workflows.kubernetes.options import ClusterOptions

    return options_from(dict(flags)) != ClusterOptions()
