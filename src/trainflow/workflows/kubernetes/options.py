"""How a compiled workflow runs on a cluster: scheduling, pulls, resources, replicas and the cache volume.

These are compile options (`trainflow compile --node-selector ...`), not workflow parameters: they shape
the objects (a toleration list, a volume kind) rather than fill in a value. Each parser refuses a bad
value with one line saying what to give instead; nothing from the user reaches a manifest unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainflow.pipelines import Pipeline, PipelineError, Resources, Service
from trainflow.pipelines.k8s_names import LABEL_RULE, SUBDOMAIN_RULE, is_dns_label, is_dns_subdomain
from trainflow.pipelines.param_types import QUANTITY, check_meaning
from trainflow.pipelines.refs import ParamRef
from trainflow.workflows.errors import WorkflowError

SERVICE_ACCOUNT = "trainflow"
CACHE_SIZE = "10Gi"
CACHE_MODES = ("shared", "per-node")
# The cache is written by steps and read by long-running services at the same time: one pod or
# read-only access modes cannot hold it.
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce")
HOST_CACHE_PATH = "/var/lib/trainflow-cache"
MAX_SERVICE_REPLICAS = 1_000  # a Deployment's replicas is an int32; no model server needs more
MAX_GPUS = 64  # per process: an extended resource is an int64 quantity, no node has more
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# A label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters.
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")
ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*\Z")


@dataclass(frozen=True)
class CacheVolume:
    """The dataset cache: one shared claim (`shared`) or a directory on each node (`per-node`, as KVC kept it)."""

    mode: str = "shared"
    size: str = CACHE_SIZE
    access_mode: str = "ReadWriteMany"
    storage_class: str | None = None
    host_path: str = HOST_CACHE_PATH


@dataclass(frozen=True)
class ClusterOptions:
    """What `trainflow compile` adds to the objects beyond the pipeline's own spec."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str = SERVICE_ACCOUNT
    pod_service_account: bool = False  # also run the jobs' and services' pods as `service_account`
    replicas: Mapping[str, int] = field(default_factory=dict)  # service step -> Deployment replicas
    resources: Mapping[str, Resources] = field(default_factory=dict)  # step -> what each process needs
    inference_services: tuple[str, ...] = ()  # service steps deployed as KServe InferenceServices
    cache: CacheVolume = field(default_factory=CacheVolume)
    code_package: str = ""  # the URL of the code package every step imports from (code_packages.py)
    training_runtime: str = ""  # a TrainJob's ClusterTrainingRuntime where the pipeline declares no parameter for it
    key_folder: str = ""  # the pipeline file's folder: steps' cache_key_files are read there (default: the working dir)

    def pod_extras(self) -> dict[str, Any]:
        """Scheduling and pull fields every pod spec the workflow creates gets."""
        extras: dict[str, Any] = {}
        if self.node_selector:
            extras["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            extras["tolerations"] = [dict(t) for t in self.tolerations]
        if self.image_pull_secrets:
            extras["imagePullSecrets"] = [{"name": n} for n in self.image_pull_secrets]
        return extras


def dns_label(value: str, what: str) -> str:
    """`value` if it is a DNS-1123 label (what Kubernetes requires of most names), else one clear error."""
    if not is_dns_label(value):
        raise WorkflowError(f"{what} '{value}' is not a valid name: {LABEL_RULE}")
    return value


def quantity(value: str, what: str) -> str:
    """`value` if it is a non-negative Kubernetes quantity (500m, 2, 4Gi), else one clear error."""
    if not QUANTITY.fullmatch(value.strip(" ")):
        raise WorkflowError(f"{what} '{value}' is not a Kubernetes quantity: give e.g. 500m or 2 (cpu), 4Gi (memory)")
    return value.strip(" ")


def gpu_count(value: str | int, what: str) -> int:
    """A GPU count: a whole number, 0 or more."""
    text = str(value).strip(" ")
    if not text.isdigit() or not text.isascii() or int(text) > MAX_GPUS:
        raise WorkflowError(
            f"{what} '{value}' is not a GPU count: give a whole number from 0 to {MAX_GPUS} (e.g. gpu=1)"
        )
    return int(text)


def node_selector(items: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE node labels."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _label_key(key) or not LABEL_VALUE.match(value):
            raise WorkflowError(
                f"node selector '{item}' is not KEY=VALUE with a label key and value "
                "(e.g. --node-selector cloud.google.com/gke-accelerator=nvidia-l4)"
            )
        found[key] = value
    return found


def toleration(text: str) -> dict[str, str]:
    """KEY[=VALUE]:EFFECT (kubectl taint's syntax) as a toleration; a key alone tolerates every effect."""
    head, colon, effect = text.rpartition(":") if ":" in text else (text, "", "")
    key, sep, value = head.partition("=")
    if (colon and effect not in TOLERATION_EFFECTS) or not _label_key(key) or (sep and not LABEL_VALUE.match(value)):
        raise WorkflowError(
            f"toleration '{text}' is not KEY[=VALUE][:EFFECT] with EFFECT one of {', '.join(TOLERATION_EFFECTS)} "
            "(e.g. --toleration nvidia.com/gpu:NoSchedule)"
        )
    found = {"key": key, "operator": "Equal" if sep else "Exists"}
    if sep:
        found["value"] = value
    if effect:
        found["effect"] = effect
    return found


def step_resources(items: Sequence[str]) -> dict[str, Resources]:
    """STEP:cpu=2,memory=4Gi,gpu=1 (the compiler checks that STEP is one of the pipeline's steps)."""
    found = {}
    for item in items:
        step, sep, spec = item.partition(":")
        if not sep or not is_dns_label(step):
            raise WorkflowError(f"resources '{item}' must be STEP:cpu=..,memory=..,gpu=.. (e.g. train-model:gpu=1)")
        fields: dict[str, str] = {}
        for part in spec.split(","):
            name, eq, value = part.partition("=")
            if not eq or name not in ("cpu", "memory", "gpu"):
                raise WorkflowError(f"resources '{item}': '{part}' is not cpu=.., memory=.. or gpu=..")
            fields[name] = value
        found[step] = Resources(
            cpu=quantity(fields["cpu"], f"{step} cpu") if "cpu" in fields else None,
            memory=quantity(fields["memory"], f"{step} memory") if "memory" in fields else None,
            gpu=gpu_count(fields.get("gpu", "0"), f"{step} gpu"),
        )
    return found


def service_replicas(items: Sequence[str]) -> dict[str, int]:
    """STEP=N for service steps: how many pods serve behind the Service (the compiler checks STEP)."""
    found = {}
    for item in items:
        step, sep, count = item.partition("=")
        whole = count.isdigit() and count.isascii()
        if not sep or not is_dns_label(step) or not whole or not 1 <= int(count) <= MAX_SERVICE_REPLICAS:
            raise WorkflowError(
                f"replicas '{item}' must be STEP=N with N from 1 to {MAX_SERVICE_REPLICAS} (e.g. serve-model=3)"
            )
        found[step] = int(count)
    return found


def subdomain(value: str, what: str) -> str:
    """`value` if it is a DNS-1123 subdomain (Secret and ServiceAccount names), else one clear error."""
    if not is_dns_subdomain(value):
        raise WorkflowError(f"{what} '{value}' is not a valid name: {SUBDOMAIN_RULE}")
    return value


def cluster_options(
    node_selectors: Sequence[str] = (),
    tolerations: Sequence[str] = (),
    image_pull_secrets: Sequence[str] = (),
    service_account: str | None = None,
    replicas: Sequence[str] = (),
    resources: Sequence[str] = (),
    cache: CacheVolume | None = None,
    kserve: Sequence[str] = (),
    code_package: str = "",
    training_runtime: str = "",
) -> ClusterOptions:
    """Options from the command line's text, each value checked."""
    return ClusterOptions(
        code_package=package_url(code_package) if code_package else "",
        training_runtime=dns_label(training_runtime, "--training-runtime") if training_runtime else "",
        node_selector=node_selector(node_selectors),
        tolerations=tuple(toleration(t) for t in tolerations),
        image_pull_secrets=tuple(subdomain(n, "image pull secret") for n in image_pull_secrets),
        service_account=subdomain(service_account, "service account") if service_account else SERVICE_ACCOUNT,
        pod_service_account=service_account is not None,
        replicas=service_replicas(replicas),
        resources=step_resources(resources),
        inference_services=tuple(dns_label(s, "--kserve step") for s in dict.fromkeys(kserve)),
        cache=cache or CacheVolume(),
    )


def cache_volume(
    mode: str = "shared",
    size: str = CACHE_SIZE,
    access_mode: str = "ReadWriteMany",
    storage_class: str | None = None,
    host_path: str = HOST_CACHE_PATH,
) -> CacheVolume:
    """The cache volume's settings, each checked."""
    if mode not in CACHE_MODES:
        raise WorkflowError(f"cache mode '{mode}' is unknown: use {' or '.join(CACHE_MODES)}")
    if access_mode not in ACCESS_MODES:
        raise WorkflowError(f"cache access mode '{access_mode}' is unknown: use one of {', '.join(ACCESS_MODES)}")
    if storage_class is not None:
        subdomain(storage_class, "storage class")
    if not ABSOLUTE_PATH.match(host_path) or "/../" in f"{host_path}/" or host_path == "/":
        raise WorkflowError(f"cache host path '{host_path}' must be an absolute directory path below / without '..'")
    return CacheVolume(mode, quantity(size, "cache size"), access_mode, storage_class, host_path.rstrip("/"))


def package_url(url: str) -> str:
    """A code package's URL: a store's `.../<sha256>.tar.gz` every pod can fetch and verify."""
    from trainflow.storage import StorageError, local_path_of
    from trainflow.workflows.code_packages import digest_of

    try:
        on_this_machine = local_path_of(url) is not None
    except StorageError as exc:
        raise WorkflowError(f"code package '{url[:200]}': {exc.message}") from None
    if digest_of(url) is None or on_this_machine or any(c.isspace() for c in url):
        raise WorkflowError(
            f"code package '{url[:200]}' must be an s3:// or https:// URL ending in /<sha256>.tar.gz "
            "(pods cannot read this machine's files)"
        )
    return url


def _label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    return bool(LABEL_NAME.match(name)) and (not slash or is_dns_subdomain(prefix))


def check_steps(pipeline: Pipeline, options: ClusterOptions) -> None:
    """Options may name only steps the pipeline has (replicas: only its services)."""
    steps = [s.name for s in pipeline.steps]
    services = [s.name for s in pipeline.steps if isinstance(s, Service)]
    for name in options.resources:
        if name not in steps:
            raise WorkflowError(
                f"--resources names step '{name}', which {pipeline.name} lacks: use one of {', '.join(steps)}"
            )
    for flag, names in (("--replicas", list(options.replicas)), ("--kserve", list(options.inference_services))):
        for name in names:
            if name not in services:
                raise WorkflowError(
                    f"{flag} names '{name}', which is not a service step of {pipeline.name}: "
                    f"use {', '.join(services) or 'none (it has no services)'}"
                )


def check_object_values(pipeline: Pipeline, values: Mapping[str, str]) -> None:
    """Parameters that name a step's image must hold an image reference a pod can pull, whatever their type."""
    images = {s.image.name for s in pipeline.steps if isinstance(s.image, ParamRef)}
    for name in sorted(images):
        try:
            check_meaning("image", name, values.get(name, ""))
        except PipelineError as exc:
            raise WorkflowError(exc.message) from None
