"""Kubernetes objects as plain dicts: the cache volume, service Deployments and Services, training jobs, RBAC.

Pure functions, no client: what `trainflow compile` prints and what the backend submits. What a user may
change at submit time (`argo submit -p NAME=VALUE`) stays an Argo placeholder of the workflow parameter:
object names, the namespace, images, replica counts, the Service type and the Secret; what shapes the
objects (a step's kind, its ports, the compile options) is filled in here. A step's arguments stay the
spec's tokens rendered as Argo expressions (what the step does; see render.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainflow.pipelines import Port, Resources, Service, Step, Train
from trainflow.pipelines.artifacts import ENV as ARTIFACTS_ENV
from trainflow.pipelines.refs import ParamRef, refs_in, substitute
from trainflow.workflows.code_packages import CODE_ENV
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import code_entry, manifest_values, sizing
from trainflow.workflows.kubernetes.options import SERVICE_ACCOUNT, ClusterOptions, gpu_count, quantity
from trainflow.workflows.kubernetes.tracking_env import TrackingParams, tracking_env
from trainflow.workflows.kubernetes.yamltext import Raw

CACHE_CLAIM = "trainflow-cache"
CACHE_MOUNT = "/var/lib/trainflow"  # TRAINFLOW_HOME in every container: dataset cache (and default store)
MANAGED_BY = {"app.kubernetes.io/managed-by": "trainflow"}
WORKFLOW_LABEL = "trainflow.io/workflow"
STEP_LABEL = "trainflow.io/step"
SERVES_LABEL = "trainflow.io/serves"  # what a service step serves (pipelines.roles): how `forwarding` finds it
PYTORCHJOB_PORT = 23456  # the training operator's default MASTER_PORT (and the c10d rendezvous port)
TFJOB_PORT = 2222  # the port TF_CONFIG addresses use
JOB_KINDS = ("pytorchjob", "tfjob", "trainjob")  # trainjob: trainjob.py
AWS_SECRET_KEYS = (("AWS_ACCESS_KEY_ID", "awsAccessKeyID"), ("AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey"))
DEFAULT_IMAGE = "ghcr.io/trainflow/trainflow:0.1.0"
DEFAULT_SECRET = "aws-creds"  # what `trainflow doctor` checks and the README creates
MAX_REPLICAS = 10_000  # far below Kubernetes' int32 fields, far above any training job
DIST_BACKEND_VAR = sizing.DIST_BACKEND_VAR


def workflow_param(name: str) -> str:
    return "{{workflow.parameters.%s}}" % name


@dataclass(frozen=True)
class Target:
    """What the objects belong to: the run's name as Argo fills it in, the parameters and the compile options.

    workflow: the run's name as a placeholder (`{{workflow.parameters.job-name}}`), what object names start with.
    values: every parameter's value at compile time (checks and shapes read these).
    params: the parameters the workflow declares: those stay placeholders, set at submit time.
    """

    workflow: str
    values: Mapping[str, str]
    params: frozenset[str] = frozenset()
    options: ClusterOptions = field(default_factory=ClusterOptions)
    artifacts_url: str = ""  # the pipeline's artifacts_url, its parameters still references
    secret_param: str = ""  # the pipeline's secret-name parameter: the Secret holding the S3 credentials
    tracking: TrackingParams = field(default_factory=TrackingParams)  # MLflow server and credentials

    def setting(self, name: str, default: str) -> str:
        """A declared parameter's placeholder (set at submit time), else its value or `default`."""
        if name in self.params and self.values.get(name):
            return workflow_param(name)
        return self.values.get(name) or default

    @property
    def namespace(self) -> str:
        return self.setting("namespace", "default")

    @property
    def secret(self) -> str:
        return self.setting(self.secret_param, DEFAULT_SECRET)

    def image(self, step: Step) -> str:
        if isinstance(step.image, ParamRef):
            return self.setting(step.image.name, DEFAULT_IMAGE)
        return step.image or DEFAULT_IMAGE

    def expression(self, text: str) -> str:
        """`text` with declared parameters as placeholders and the others filled in."""
        return substitute(text, lambda ref: self._ref(ref))

    def value(self, text: str) -> str:
        """`text` with every parameter filled in with its compile-time value."""
        return substitute(text, lambda ref: self.values[ref.name] if isinstance(ref, ParamRef) else str(ref))

    def count(self, text: str, what: str) -> int | Raw:
        """A replica count: a number, or a parameter's placeholder written bare so Argo's value reads as a number."""
        now = self.value(text)
        if not now.isdigit() or not now.isascii() or int(now) > MAX_REPLICAS:
            raise WorkflowError(f"{what} '{now}' is not a whole number from 0 to {MAX_REPLICAS}")
        if any(isinstance(r, ParamRef) and r.name in self.params for r in refs_in(text)):
            return Raw(self.expression(text))
        return int(now)

    def resources(self, step: Step) -> Resources:
        """What each process of `step` needs: the compile option for it, else the spec's, checked.

        A field given by a declared parameter stays its placeholder (set at submit time; its value now is
        checked, and an empty one means no request).
        """
        wanted = self.options.resources.get(step.name, step.resources)
        cpu = self._sized(wanted.cpu, f"step {step.name} cpu", quantity)
        memory = self._sized(wanted.memory, f"step {step.name} memory", quantity)
        gpu = self._sized(wanted.gpu, f"step {step.name} gpu", lambda v, what: str(gpu_count(v, what)))
        return Resources(cpu=cpu, memory=memory, gpu=gpu if gpu and "{{" in gpu else int(gpu or 0))

    def _sized(self, given: object, what: str, check: Callable[[str, str], str]) -> str | None:
        text = "" if given is None else str(given)
        refs = refs_in(text)
        if not refs:
            return check(text, what) if text else None
        [ref] = refs if len(refs) == 1 else [None]
        if not isinstance(ref, ParamRef) or text != str(ref) or ref.name not in self.values:
            raise WorkflowError(f"{what} '{text}' is neither a value nor one parameter of the pipeline (param(NAME))")
        now = self.values[ref.name]
        if not now:
            return None
        checked = check(now, what)
        return workflow_param(ref.name) if ref.name in self.params else checked

    def _ref(self, ref: object) -> str:
        if isinstance(ref, ParamRef):
            return workflow_param(ref.name) if ref.name in self.params else self.values[ref.name]
        return str(ref)


@dataclass(frozen=True)
class ContainerCommand:
    """What a container runs: `trainflow step <name>` (command) and its arguments."""

    command: list[str]
    args: list[str]
    # The step's own argv (`step_io.step_run`), which `code_entry` may start in the code package; not the containers
    # trainflow builds around a step (a training job's outputs reader, a study's trial shell, the exit handler).
    own: bool = False


ITEM_INPUT = "item"  # the template input a fanned-out step's item arrives in


def labels(target: Target, step: str) -> dict[str, str]:
    return {**MANAGED_BY, WORKFLOW_LABEL: target.workflow, STEP_LABEL: step}


def service_labels(target: Target, step: Service) -> dict[str, str]:
    """A service step's labels, with the role it declares (`trainflow.io/serves: model`)."""
    return {**labels(target, step.name), **({SERVES_LABEL: step.serves} if step.serves else {})}


def selector(target: Target, step: str) -> dict[str, str]:
    return {WORKFLOW_LABEL: target.workflow, STEP_LABEL: step}


def container_env(target: Target) -> list[dict[str, Any]]:
    """TRAINFLOW_HOME on the cache volume; S3 credentials only as references to the Secret; the code package."""
    secret = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": target.secret, "key": key, "optional": True}}}
        for var, key in AWS_SECRET_KEYS
    ]
    package = [{"name": CODE_ENV, "value": target.options.code_package}] if target.options.code_package else []
    return [
        {"name": "TRAINFLOW_HOME", "value": CACHE_MOUNT},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *secret,
        *tracking_env(target.tracking, target.setting),
        *package,
    ]


def cache_volume(options: ClusterOptions) -> dict[str, Any]:
    """The claim every run shares, or (per-node mode) the node's own directory, created on first use."""
    cache = options.cache
    if cache.mode == "per-node":
        return {"name": CACHE_CLAIM, "hostPath": {"path": cache.host_path, "type": "DirectoryOrCreate"}}
    return {"name": CACHE_CLAIM, "persistentVolumeClaim": {"claimName": CACHE_CLAIM}}


def cache_mount() -> dict[str, Any]:
    return {"name": CACHE_CLAIM, "mountPath": CACHE_MOUNT}


def artifacts_env(target: Target, step: Step) -> list[dict[str, Any]]:
    """Where a step publishes its artifacts: `<artifacts_url>/<workflow>/<step>[/<item>]` (see pipelines.artifacts)."""
    if not (step.artifacts and target.artifacts_url):
        return []
    parts = [target.expression(target.artifacts_url).rstrip("/"), "{{workflow.name}}", step.name]
    if step.for_each is not None:
        parts.append("{{inputs.parameters.%s}}" % ITEM_INPUT)
    return [{"name": ARTIFACTS_ENV, "value": "/".join(parts)}]


def container(
    target: Target, name: str, step: Step, run: ContainerCommand, ports: Sequence[Port] = ()
) -> dict[str, Any]:
    command, args = code_entry.entry(target.options, step, run.command, run.args, run.own)
    spec: dict[str, Any] = {
        "name": name,
        "image": target.image(step),
        "command": command,
        "args": args,
        "env": [*container_env(target), *artifacts_env(target, step)],
        "volumeMounts": [cache_mount()],
    }
    if ports:
        spec["ports"] = [{"name": p.name, "containerPort": p.container_port, "protocol": "TCP"} for p in ports]
    wanted = sizing.resources_field(target.resources(step))
    if wanted:
        spec["resources"] = wanted
    return spec


def pod_spec(target: Target, containers: list[dict[str, Any]], init: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A pod spec with the cache volume and the compile options' scheduling and pull settings."""
    spec: dict[str, Any] = {"containers": containers, "volumes": [cache_volume(target.options)]}
    if init:
        spec = {"initContainers": list(init), **spec}
    spec.update(target.options.pod_extras())
    if target.options.pod_service_account:
        spec["serviceAccountName"] = target.options.service_account
    return spec


def cache_claim(target: Target) -> dict[str, Any]:
    """The dataset cache: created once per namespace and reused by every later run (download once)."""
    cache = target.options.cache
    spec: dict[str, Any] = {"accessModes": [cache.access_mode], "resources": {"requests": {"storage": cache.size}}}
    if cache.storage_class:
        spec["storageClassName"] = cache.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CACHE_CLAIM, "namespace": target.namespace, "labels": dict(MANAGED_BY)},
        # Training pods on several nodes read the same cache: by default the claim is mountable by all (RWX).
        "spec": spec,
    }


def service_name(target: Target, step: Step) -> str:
    return object_name(target, step)


def object_name(target: Target, step: Step) -> str:
    """What a step's Kubernetes objects are called: its `kube_name`, else WORKFLOW-STEP."""
    return (step.kube_name or "{workflow}-%s" % step.name).replace("{workflow}", target.workflow)


def deployment(target: Target, step: Service, run: ContainerCommand) -> dict[str, Any]:
    """A service step as a Deployment (one replica unless the options say more), ready when its probe answers."""
    main = container(target, step.name, step, run, step.ports)
    if step.probe is not None:
        main["readinessProbe"] = {
            "httpGet": {"path": step.probe.path, "port": step.probe.port},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
        }
    if step.liveness is not None:
        main["livenessProbe"] = {
            "httpGet": {"path": step.liveness.path, "port": step.liveness.port},
            "periodSeconds": 10,
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": service_name(target, step),
            "namespace": target.namespace,
            "labels": service_labels(target, step),
        },
        "spec": {
            "replicas": target.options.replicas.get(step.name, 1),
            "selector": {"matchLabels": selector(target, step.name)},
            "template": {"metadata": {"labels": service_labels(target, step)}, "spec": pod_spec(target, [main])},
        },
    }


def service(target: Target, step: Service) -> dict[str, Any]:
    """The Service in front of a service step, of the step's `service_type`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(target, step),
            "namespace": target.namespace,
            "labels": service_labels(target, step),
        },
        "spec": {
            "type": target.expression(str(step.service_type)),
            "selector": selector(target, step.name),
            "ports": [
                {"name": p.name, "port": p.container_port, "targetPort": p.name, "protocol": "TCP"} for p in step.ports
            ],
        },
    }


def _replica(
    target: Target, count: int | Raw, container_spec: dict[str, Any], step: str, init: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    # ExitCode: exit >= 128 (killed, transient) recreates the pod; 1-127 fails the job.
    return {
        "replicas": count,
        "restartPolicy": "ExitCode",
        "template": {"metadata": {"labels": labels(target, step)}, "spec": pod_spec(target, [container_spec], init)},
    }


def job_name(target: Target, step: Step) -> str:
    return object_name(target, step)


def outputs_reader(target: Target, step: Step, source: str, outputs_dir: str) -> dict[str, Any]:
    """A container that copies what a training job's rank-0 pod wrote on the shared volume to `outputs_dir`."""
    copy = ContainerCommand(["sh", "-c"], ['mkdir -p "$1" && cp -R "$0". "$1"', source, outputs_dir])
    reader = container(target, "main", step, copy)
    reader.pop("resources", None)  # copying a few files needs no GPU
    return reader


def _trainer(target: Target, name: str, step: Train, run: ContainerCommand, port: Port, outputs: str | None) -> Any:
    main = container(target, name, step, run, (port,))
    main["env"] += sizing.dist_backend_env(target.resources(step))
    if outputs:
        main["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": outputs})
    return main


def training_job(
    kind: str,
    target: Target,
    run: ContainerCommand,
    step: Train,
    outputs_dir: str | None = None,
    init: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A PyTorchJob (`workers` Workers meeting by c10d rendezvous) or a TFJob (`workers` Workers + `ps` PS).

    Replica counts stay placeholders of their parameters, so `argo submit -p tf-worker=N` sizes the job.
    With `outputs_dir`, the pods write the step's outputs there (only the one hosting rank 0 has any).
    `init` containers run first in every training pod (the per-node cache's sync).
    """
    workers = target.count(str(step.workers), f"{step.name} workers")
    meta = {"name": job_name(target, step), "namespace": target.namespace, "labels": labels(target, step.name)}
    run_policy = {"cleanPodPolicy": "Running", "backoffLimit": 3}
    if kind == "pytorchjob":
        # All Workers, no Master: the world is however many Workers the parameter asks for, ranks by rendezvous.
        main = _trainer(target, "pytorch", step, run, Port("pytorchjob-port", PYTORCHJOB_PORT, "tcp"), outputs_dir)
        elastic = {"rdzvBackend": "c10d", "minReplicas": workers, "maxReplicas": workers, "maxRestarts": 3}
        spec: dict[str, Any] = {
            "nprocPerNode": "1",
            "elasticPolicy": elastic,
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": {"Worker": _replica(target, workers, main, step.name, init)},
        }
        return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": meta, "spec": spec}
    main = _trainer(target, "tensorflow", step, run, Port("tfjob-port", TFJOB_PORT, "tcp"), outputs_dir)
    replicas = {"Worker": _replica(target, workers, main, step.name, init)}
    ps = target.count(str(step.ps), f"{step.name} ps")
    if ps != 0:  # parameter servers do not train: no GPU for them
        idle = {k: v for k, v in main.items() if k != "resources"}
        idle["env"] = [e if e["name"] != DIST_BACKEND_VAR else {**e, "value": "gloo"} for e in main["env"]]
        replicas["PS"] = _replica(target, ps, idle, step.name)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": meta,
        "spec": {"runPolicy": run_policy, "tfReplicaSpecs": replicas},
    }


def job_conditions(target: Target, step: Train) -> tuple[str, str]:
    """Argo success and failure conditions on the job's replica counts: every Worker done, or one failed."""
    workers = target.count(str(step.workers), f"{step.name} workers")
    wanted = manifest_values.number(workers) if isinstance(workers, Raw) else workers
    return f"status.replicaStatuses.Worker.succeeded == {wanted}", "status.replicaStatuses.Worker.failed > 0"


def rbac(namespace: str, account: str = SERVICE_ACCOUNT) -> list[dict[str, Any]]:
    """ServiceAccount + Role + RoleBinding: what the workflow's pods need (the example's argo-cluster-role)."""
    meta = {"namespace": namespace, "labels": dict(MANAGED_BY)}
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    rules = [
        {"apiGroups": ["kubeflow.org"], "resources": ["tfjobs", "pytorchjobs"], "verbs": verbs},
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"], "verbs": verbs},
        # a TrainJob step waits on the JobSet its controller makes
        {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": verbs},
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": verbs},
        {"apiGroups": [""], "resources": ["services", "persistentvolumeclaims"], "verbs": verbs},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]},
        # The Argo executor reports each step's outputs through these.
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch", "patch"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, **meta},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]
