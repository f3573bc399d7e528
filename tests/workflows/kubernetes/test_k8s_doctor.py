"""`trainflow doctor --backend kubernetes` against a fake API (named so in each test), and the local checks for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from trainflow.workflows.doctor import FAIL, OK, WARN
from trainflow.workflows.kubernetes.backend import ClusterApi
from trainflow.workflows.kubernetes.doctor import Doctor
from trainflow.workflows.local.doctor import local_checks

NS = "ml"


class DoctorCluster(FakeCluster):
    """The fake API plus what `doctor` reads: namespaces, RBAC objects, Secrets, claims, storage classes."""

    def __init__(self) -> None:
        super().__init__()
        self.namespaces = {NS}
        self.crds = {"workflows", "pytorchjobs", "tfjobs"}
        self.objects: dict[tuple[str, str], Any] = {}  # (kind, name) -> object
        self.storage_classes: list[dict[str, Any]] = []
        self.forbidden: set[str] = set()

    def api(self) -> ClusterApi:
        return ClusterApi(custom=self, core=self, apps=self, rbac=self, storage=self)

    def ready(self) -> DoctorCluster:
        """Everything a workflow needs is in place."""
        for kind in ("ServiceAccount", "Role", "RoleBinding"):
            self.objects[(kind, "trainflow")] = {"metadata": {"name": "trainflow"}}
        self.objects[("Secret", "aws-creds")] = {"data": {"awsAccessKeyID": "eA==", "awsSecretAccessKey": "eQ=="}}
        self.objects[("PersistentVolumeClaim", "trainflow-cache")] = {"status": {"phase": "Bound"}}
        return self

    def _read(self, kind: str, name: str, namespace: str) -> Any:
        if kind in self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        if namespace != NS or (kind, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self.objects[(kind, name)]

    def read_namespace(self, name: str) -> dict[str, Any]:
        if name not in self.namespaces:
            raise ApiException(status=404, reason="Not Found")
        return {"metadata": {"name": name}}

    def list_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        label_selector: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        if plural not in self.crds:
            raise ApiException(status=404, reason="Not Found")
        return super().list_namespaced_custom_object(group, version, namespace, plural, label_selector)

    def read_namespaced_service_account(self, name: str, namespace: str) -> Any:
        return self._read("ServiceAccount", name, namespace)

    def read_namespaced_role(self, name: str, namespace: str) -> Any:
        return self._read("Role", name, namespace)

    def read_namespaced_role_binding(self, name: str, namespace: str) -> Any:
        return self._read("RoleBinding", name, namespace)

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        return self._read("Secret", name, namespace)

    def read_namespaced_persistent_volume_claim(self, name: str, namespace: str) -> Any:
        return self._read("PersistentVolumeClaim", name, namespace)

    def list_storage_class(self) -> dict[str, Any]:
        return {"items": self.storage_classes}


def findings(cluster: DoctorCluster, namespace: str = NS) -> dict[str, tuple[str, str, str]]:
    return {c.name: (c.status, c.detail, c.fix) for c in Doctor(cluster.api(), namespace).checks()}


def test_a_ready_cluster_passes_every_check_fake_k8s_api() -> None:
    result = findings(DoctorCluster().ready())
    assert {name: status for name, (status, _, _) in result.items()} == {
        "cluster": OK,
        "crd workflows.argoproj.io": OK,
        "crd pytorchjobs.kubeflow.org": OK,
        "crd tfjobs.kubeflow.org": OK,
        "rbac serviceaccount": OK,
        "rbac role": OK,
        "rbac rolebinding": OK,
        "credentials": OK,
        "cache volume": OK,
    }


def test_a_missing_namespace_stops_at_the_first_check_fake_k8s_api() -> None:
    result = findings(DoctorCluster().ready(), namespace="nope")
    assert list(result) == ["cluster"]
    assert result["cluster"][0] == FAIL and "kubectl create namespace nope" in result["cluster"][2]


def test_missing_operators_rbac_and_secret_each_name_their_fix_fake_k8s_api() -> None:
    cluster = DoctorCluster()
    cluster.crds = {"workflows"}
    result = findings(cluster)
    assert result["crd workflows.argoproj.io"][0] == OK
    assert (
        result["crd pytorchjobs.kubeflow.org"][0] == FAIL
        and "training operator" in result["crd pytorchjobs.kubeflow.org"][2]
    )
    assert (
        result["rbac role"][0] == FAIL and result["rbac role"][2] == "trainflow compile rbac -n ml | kubectl apply -f -"
    )
    assert result["credentials"][0] == FAIL and "create secret generic aws-creds" in result["credentials"][2]


def test_a_secret_without_the_keys_the_pods_read_fails_without_showing_values_fake_k8s_api() -> None:
    cluster = DoctorCluster().ready()
    cluster.objects[("Secret", "aws-creds")] = {"data": {"awsAccessKeyID": "c2VjcmV0"}}
    status, detail, _ = findings(cluster)["credentials"]
    assert status == FAIL and "lacks awsSecretAccessKey" in detail and "c2VjcmV0" not in detail


def test_an_unbound_cache_claim_and_no_default_class_fail_fake_k8s_api() -> None:
    cluster = DoctorCluster().ready()
    cluster.objects[("PersistentVolumeClaim", "trainflow-cache")] = {"status": {"phase": "Pending"}}
    status, detail, fix = findings(cluster)["cache volume"]
    assert status == FAIL and "is Pending" in detail and "ReadWriteMany" in fix
    del cluster.objects[("PersistentVolumeClaim", "trainflow-cache")]
    assert findings(cluster)["cache volume"][0] == FAIL
    cluster.storage_classes = [
        {"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    ]
    status, detail, _ = findings(cluster)["cache volume"]
    assert status == WARN and "default class standard" in detail and "ReadWriteMany" in detail


def test_reads_the_account_may_not_make_are_warnings_not_failures_fake_k8s_api() -> None:
    cluster = DoctorCluster().ready()
    cluster.forbidden = {"Secret", "Role"}
    result = findings(cluster)
    assert result["credentials"][0] == WARN and result["rbac role"][0] == WARN


def test_local_checks_name_an_unwritable_home_and_a_port_in_use(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = {c.name: c for c in local_checks(blocker / "home")}
    assert result["home"].status == FAIL and "TRAINFLOW_HOME" in result["home"].fix
    assert result["state"].status == FAIL
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8501))
            sock.listen()
            held = True
        except OSError:
            held = False  # another test's model server holds it: in use all the same, which is what is checked
        result = {c.name: c for c in local_checks(tmp_path / "home")}
    assert result["home"].status == OK and result["state"].status == OK
    port = result["port 8501"]
    if held or port.status != OK:  # OK only if the other holder let go between our bind and the check
        assert port.status == WARN and "in use" in port.detail


def test_doctor_command_exits_1_when_a_check_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRAINFLOW_HOME": str(blocker / "home")},
    )
    assert out.returncode == 1, out.stderr
    assert any(line.startswith("fail home:") for line in out.stdout.splitlines()), out.stdout


class TrainerCluster(DoctorCluster):
    """The fake API with Kubeflow Trainer v2: its CRDs and cluster-scoped ClusterTrainingRuntimes."""

    def __init__(self, runtimes: tuple[str, ...] = ("torch-distributed",)) -> None:
        super().__init__()
        self.crds = {"workflows", "trainjobs", "jobsets"}
        self.runtimes = set(runtimes)

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> dict[str, Any]:
        if (group, version, plural) != ("trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"):
            raise ApiException(status=404, reason="Not Found")
        if name not in self.runtimes:
            raise ApiException(status=404, reason="Not Found")
        return {"metadata": {"name": name}}


def trainer_findings(cluster: DoctorCluster, runtime: str = "torch-distributed") -> dict[str, tuple[str, str, str]]:
    checks = Doctor(cluster.api(), NS, job_kind="trainjob", runtime=runtime).checks()
    return {c.name: (c.status, c.detail, c.fix) for c in checks}


def test_trainjob_checks_trainer_v2s_crds_and_the_runtime_instead_of_the_training_operator_fake_k8s_api() -> None:
    result = trainer_findings(TrainerCluster().ready())
    assert {name: status for name, (status, _, _) in result.items()} == {
        "cluster": OK,
        "crd workflows.argoproj.io": OK,
        "crd trainjobs.trainer.kubeflow.org": OK,
        "crd jobsets.jobset.x-k8s.io": OK,
        "training runtime": OK,
        "rbac serviceaccount": OK,
        "rbac role": OK,
        "rbac rolebinding": OK,
        "credentials": OK,
        "cache volume": OK,
    }


def test_a_missing_runtime_and_a_missing_trainer_each_name_their_fix_fake_k8s_api() -> None:
    result = trainer_findings(TrainerCluster().ready(), runtime="my-torch")
    status, detail, fix = result["training runtime"]
    assert status == FAIL and "my-torch does not exist" in detail and "--training-runtime" in fix
    bare = DoctorCluster().ready()  # only the training operator: no Trainer v2
    result = trainer_findings(bare)
    assert result["crd trainjobs.trainer.kubeflow.org"][0] == FAIL
    assert "Trainer v2" in result["crd trainjobs.trainer.kubeflow.org"][2]


def test_doctor_job_kind_trainjob_through_the_backend_checks_the_named_runtime_fake_k8s_api() -> None:
    from trainflow.workflows.kubernetes.backend import KubernetesBackend
    from trainflow.workflows.kubernetes.options import cluster_options

    cluster = TrainerCluster(runtimes=("torch-gpu",)).ready()
    backend = KubernetesBackend(NS, "trainjob", cluster.api(), cluster_options(training_runtime="torch-gpu"))
    found = {c.name: c.status for c in backend.checks("aws-creds")}
    assert found["training runtime"] == OK and "crd pytorchjobs.kubeflow.org" not in found
