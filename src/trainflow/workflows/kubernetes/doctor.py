"""`trainflow doctor --backend kubernetes`: is this cluster ready for trainflow's workflows?

Each check reads what a workflow will need (the API server, Argo's and Kubeflow's CRDs, the RBAC
objects `trainflow compile rbac` makes, the credentials Secret, a storage class for the cache
claim) and says in one line what is missing and how to fix it. Checks only read; nothing is created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from trainflow.workflows.doctor import FAIL, OK, WARN, Check
from trainflow.workflows.kubernetes.cluster_api import ARGO, ClusterApi
from trainflow.workflows.kubernetes.objects import field_of, items_of
from trainflow.workflows.kubernetes.resources import AWS_SECRET_KEYS, CACHE_CLAIM, SERVICE_ACCOUNT
from trainflow.workflows.kubernetes.trainjob import DEFAULT_RUNTIME, RUNTIME_PLURAL

KUBEFLOW = ("kubeflow.org", "v1")
TRAINER = ("trainer.kubeflow.org", "v1alpha1")
JOBSET = ("jobset.x-k8s.io", "v1alpha2")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


class Doctor:
    """Runs the checks against one namespace through the client APIs the backend uses."""

    def __init__(
        self,
        api: ClusterApi,
        namespace: str,
        secret: str = "aws-creds",
        job_kind: str = "pytorchjob",
        runtime: str = DEFAULT_RUNTIME,
    ) -> None:
        self.api, self.namespace, self.secret = api, namespace, secret
        self.job_kind, self.runtime = job_kind, runtime

    def checks(self) -> Iterator[Check]:
        """Every check in order; stops after the first if the cluster cannot be reached at all."""
        reach = self.cluster()
        yield reach
        if reach.status == FAIL:
            return
        yield self.crd(
            "Argo Workflows",
            ARGO,
            "workflows",
            "install Argo Workflows in the cluster (its quick start), with a controller that watches this namespace",
        )
        if self.job_kind == "trainjob":
            yield from self.trainer()
        else:
            for kind, plural in (("PyTorchJob", "pytorchjobs"), ("TFJob", "tfjobs")):
                yield self.crd(
                    f"Kubeflow {kind}",
                    KUBEFLOW,
                    plural,
                    "install the Kubeflow training operator (its standalone manifests)",
                )
        yield from self.rbac()
        yield self.credentials()
        yield self.cache_volume()

    def cluster(self) -> Check:
        found = _status_of(lambda: self.api.core.read_namespace(self.namespace))
        if found is None:
            return Check("cluster", OK, f"reached the API server; namespace {self.namespace} exists")
        if found == 404:
            return Check(
                "cluster",
                FAIL,
                f"namespace {self.namespace} does not exist",
                f"kubectl create namespace {self.namespace}, or pick one with -n",
            )
        if found in (401, 403):
            return Check(
                "cluster",
                WARN,
                f"reached the API server, but may not read namespace {self.namespace} ({found})",
                "fine if your account is namespace-scoped; else check your kubeconfig user",
            )
        return Check(
            "cluster",
            FAIL,
            f"cannot reach the API server ({found})",
            "set KUBECONFIG (kubectl config current-context should name your cluster) or run in a cluster",
        )

    def crd(self, label: str, group_version: tuple[str, str], plural: str, fix: str) -> Check:
        found = _status_of(
            lambda: self.api.custom.list_namespaced_custom_object(*group_version, self.namespace, plural, limit=1)
        )
        name = f"crd {plural}.{group_version[0]}"
        if found is None:
            return Check(name, OK, f"{label} is installed")
        if found == 404:
            return Check(name, FAIL, f"{label} is not installed (no {plural}.{group_version[0]} resource)", fix)
        return Check(
            name,
            WARN,
            f"could not list {plural} in {self.namespace} ({found})",
            "apply `trainflow compile rbac` and check your own account's permissions",
        )

    def trainer(self) -> Iterator[Check]:
        """Kubeflow Trainer v2: its TrainJob and JobSet CRDs, and the ClusterTrainingRuntime the jobs name."""
        install = "install Kubeflow Trainer v2 (kubectl apply --server-side -k its manifests/overlays/manager)"
        yield self.crd("Kubeflow TrainJob", TRAINER, "trainjobs", install)
        yield self.crd("JobSet", JOBSET, "jobsets", install)
        found = _status_of(lambda: self.api.custom.get_cluster_custom_object(*TRAINER, RUNTIME_PLURAL, self.runtime))
        name = "training runtime"
        if found is None:
            yield Check(name, OK, f"ClusterTrainingRuntime {self.runtime} exists")
        elif found == 404:
            fix = (
                "install Trainer's runtimes (its manifests/overlays/runtimes), or name yours: "
                "doctor --training-runtime NAME, and the pipeline's runtime parameter at submit"
            )
            yield Check(name, FAIL, f"ClusterTrainingRuntime {self.runtime} does not exist", fix)
        else:
            yield Check(name, WARN, f"could not read ClusterTrainingRuntime {self.runtime} ({found})", "")

    def rbac(self) -> Iterator[Check]:
        reads: list[tuple[str, Callable[[], Any]]] = [
            ("ServiceAccount", lambda: self.api.core.read_namespaced_service_account(SERVICE_ACCOUNT, self.namespace))
        ]
        if self.api.rbac is not None:
            reads += [
                ("Role", lambda: self.api.rbac.read_namespaced_role(SERVICE_ACCOUNT, self.namespace)),
                ("RoleBinding", lambda: self.api.rbac.read_namespaced_role_binding(SERVICE_ACCOUNT, self.namespace)),
            ]
        fix = f"trainflow compile rbac -n {self.namespace} | kubectl apply -f -"
        for kind, read in reads:
            found = _status_of(read)
            name = f"rbac {kind.lower()}"
            if found is None:
                yield Check(name, OK, f"{kind} {SERVICE_ACCOUNT} exists in {self.namespace}")
            elif found == 404:
                yield Check(name, FAIL, f"{kind} {SERVICE_ACCOUNT} is missing in {self.namespace}", fix)
            else:
                yield Check(name, WARN, f"could not read {kind} {SERVICE_ACCOUNT} ({found})", fix)

    def credentials(self) -> Check:
        holder: list[Any] = []
        found = _status_of(lambda: holder.append(self.api.core.read_namespaced_secret(self.secret, self.namespace)))
        create = (
            f"kubectl -n {self.namespace} create secret generic {self.secret} "
            "--from-literal=awsAccessKeyID=... --from-literal=awsSecretAccessKey=..."
        )
        if found == 404:
            return Check("credentials", FAIL, f"Secret {self.secret} is missing in {self.namespace}", create)
        if found is not None:
            return Check(
                "credentials",
                WARN,
                f"could not read Secret {self.secret} ({found})",
                "fine if your account may not read Secrets; the workflow's pods read it",
            )
        data = field_of(holder[0], "data") or {}
        missing = [key for _, key in AWS_SECRET_KEYS if key not in data]
        if missing:
            return Check("credentials", FAIL, f"Secret {self.secret} lacks {', '.join(missing)}", create)
        return Check("credentials", OK, f"Secret {self.secret} has {' and '.join(k for _, k in AWS_SECRET_KEYS)}")

    def cache_volume(self) -> Check:
        holder: list[Any] = []
        found = _status_of(
            lambda: holder.append(self.api.core.read_namespaced_persistent_volume_claim(CACHE_CLAIM, self.namespace))
        )
        if found is None:
            phase = field_of(holder[0], "status", "phase")
            if phase == "Bound":
                return Check("cache volume", OK, f"claim {CACHE_CLAIM} is Bound (later runs reuse its dataset cache)")
            return Check(
                "cache volume",
                FAIL,
                f"claim {CACHE_CLAIM} is {phase}: no volume can be bound to it",
                f"kubectl -n {self.namespace} describe pvc {CACHE_CLAIM}; it needs a ReadWriteMany "
                "storage class (e.g. NFS, CephFS, EFS, Filestore)",
            )
        if found != 404:
            return Check("cache volume", WARN, f"could not read claim {CACHE_CLAIM} ({found})", "")
        return self._storage_classes()

    def _storage_classes(self) -> Check:
        if self.api.storage is None:
            return Check(
                "cache volume", WARN, f"claim {CACHE_CLAIM} does not exist yet; storage classes not checked", ""
            )
        holder: list[Any] = []
        found = _status_of(lambda: holder.append(self.api.storage.list_storage_class()))
        if found is not None:
            return Check("cache volume", WARN, f"could not list storage classes ({found})", "")
        classes = items_of(holder[0])
        default = [
            field_of(c, "metadata", "name")
            for c in classes
            if (field_of(c, "metadata", "annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        ]
        if not default:
            return Check(
                "cache volume",
                FAIL,
                f"claim {CACHE_CLAIM} does not exist and there is no default storage class to provision it",
                "mark a ReadWriteMany class as default, or create the claim yourself",
            )
        return Check(
            "cache volume",
            WARN,
            f"claim {CACHE_CLAIM} will be provisioned by the default class "
            f"{default[0]}; it must support ReadWriteMany for training pods on several nodes",
            "if it does not (most block-storage classes), create the claim on an RWX class first",
        )


def _status_of(request: Callable[[], Any]) -> int | str | None:
    """None when the request succeeded; else the HTTP status, or the connection error's first line."""
    try:
        request()
    except Exception as exc:  # noqa: BLE001 - the client raises ApiException, urllib3 and socket errors
        status = getattr(exc, "status", None)
        if isinstance(status, int) and status:
            return status
        reason = getattr(exc, "reason", None) or exc
        return (str(reason).splitlines() or [type(exc).__name__])[0][:200]
    return None
