"""The fields each generated kind may have: CRD schemas accept any field, the API server silently drops typos.

A shape is a dict of field -> shape, a frozenset of leaf field names, or ANY (not checked). A list in
the object is checked item by item against the same shape (Argo's `steps` is a list of lists).
"""

from __future__ import annotations

from typing import Any

ANY: Any = None


def leaves(*names: str) -> frozenset[str]:
    return frozenset(names)


METADATA = leaves(
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    # set by the API server on what it returns
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
)
PROBE = {
    "httpGet": leaves("path", "port", "host", "scheme", "httpHeaders"),
    "tcpSocket": leaves("port", "host"),
    "grpc": leaves("port", "service"),
    "exec": leaves("command"),
    "initialDelaySeconds": ANY,
    "periodSeconds": ANY,
    "timeoutSeconds": ANY,
    "successThreshold": ANY,
    "failureThreshold": ANY,
    "terminationGracePeriodSeconds": ANY,
}
ENV = {
    "name": ANY,
    "value": ANY,
    "valueFrom": {
        "secretKeyRef": leaves("name", "key", "optional"),
        "configMapKeyRef": leaves("name", "key", "optional"),
        "fieldRef": leaves("apiVersion", "fieldPath"),
        "resourceFieldRef": leaves("containerName", "resource", "divisor"),
    },
}
CONTAINER = {
    "name": ANY,
    "image": ANY,
    "command": ANY,
    "args": ANY,
    "workingDir": ANY,
    "env": ENV,
    "envFrom": ANY,
    "ports": leaves("name", "containerPort", "protocol", "hostPort", "hostIP"),
    "resources": leaves("limits", "requests", "claims"),
    "volumeMounts": leaves(
        "name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly"
    ),
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    "startupProbe": PROBE,
    "imagePullPolicy": ANY,
    "securityContext": ANY,
    "lifecycle": ANY,
    "terminationMessagePath": ANY,
    "terminationMessagePolicy": ANY,
    "stdin": ANY,
    "stdinOnce": ANY,
    "tty": ANY,
    "volumeDevices": ANY,
    "resizePolicy": ANY,
    "restartPolicy": ANY,
}
VOLUME = {
    "name": ANY,
    "persistentVolumeClaim": leaves("claimName", "readOnly"),
    "emptyDir": leaves("medium", "sizeLimit"),
    "secret": ANY,
    "configMap": ANY,
    "projected": ANY,
    "hostPath": leaves("path", "type"),
}
POD_SPEC = {
    "containers": CONTAINER,
    "initContainers": CONTAINER,
    "volumes": VOLUME,
    "serviceAccountName": ANY,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "affinity": ANY,
    "restartPolicy": ANY,
    "securityContext": ANY,
    "imagePullSecrets": ANY,
    "terminationGracePeriodSeconds": ANY,
    "priorityClassName": ANY,
    "schedulerName": ANY,
    "hostname": ANY,
    "subdomain": ANY,
}
POD_TEMPLATE = {"metadata": METADATA, "spec": POD_SPEC}
REPLICA = {"replicas": ANY, "restartPolicy": ANY, "template": POD_TEMPLATE}
RUN_POLICY = leaves(
    "cleanPodPolicy",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "schedulingPolicy",
    "suspend",
    "managedBy",
)
PYTORCHJOB = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "nprocPerNode": ANY,
        "runPolicy": RUN_POLICY,
        "elasticPolicy": ANY,
        "pytorchReplicaSpecs": {"Master": REPLICA, "Worker": REPLICA},
    },
}
TFJOB = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "runPolicy": RUN_POLICY,
        "successPolicy": ANY,
        "enableDynamicWorker": ANY,
        "tfReplicaSpecs": {"Chief": REPLICA, "Master": REPLICA, "Worker": REPLICA, "PS": REPLICA, "Evaluator": REPLICA},
    },
}
# A TrainJob (Trainer v2.3): the trainer's fields, and a runtime patch of the pod template (env and mounts only).
PATCHED_CONTAINER = {"name": ANY, "env": ENV, "volumeMounts": CONTAINER["volumeMounts"], "securityContext": ANY}
PATCHED_POD = {
    "containers": PATCHED_CONTAINER,
    "initContainers": PATCHED_CONTAINER,
    "volumes": VOLUME,
    "serviceAccountName": ANY,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "affinity": ANY,
    "securityContext": ANY,
    "imagePullSecrets": ANY,
    "terminationGracePeriodSeconds": ANY,
}
PATCH_METADATA = leaves("labels", "annotations")
PATCHED_JOB = {
    "name": ANY,
    "template": {
        "metadata": PATCH_METADATA,
        "spec": {"template": {"metadata": PATCH_METADATA, "spec": PATCHED_POD}},
    },
}
TRAINJOB = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "runtimeRef": leaves("apiGroup", "kind", "name"),
        "trainer": {
            "image": ANY,
            "command": ANY,
            "args": ANY,
            "env": ENV,
            "numNodes": ANY,
            "numProcPerNode": ANY,
            "resourcesPerNode": CONTAINER["resources"],
        },
        "runtimePatches": {
            "manager": ANY,
            "trainingRuntimeSpec": {"template": {"metadata": PATCH_METADATA, "spec": {"replicatedJobs": PATCHED_JOB}}},
        },
        "suspend": ANY,
        "activeDeadlineSeconds": ANY,
        "managedBy": ANY,
    },
}
JOBSET = {"apiVersion": ANY, "kind": ANY, "metadata": METADATA}  # only read (a TrainJob step waits on it)

PARAMETER = {
    "name": ANY,
    "value": ANY,
    "default": ANY,
    "description": ANY,
    "enum": ANY,
    "globalName": ANY,
    "valueFrom": leaves(
        "path", "parameter", "jsonPath", "jqFilter", "expression", "default", "supplied", "event", "configMapKeyRef"
    ),
}
ARGUMENTS = {"parameters": PARAMETER, "artifacts": ANY}
TASK = {
    "name": ANY,
    "template": ANY,
    "arguments": ARGUMENTS,
    "depends": ANY,
    "dependencies": ANY,
    "when": ANY,
    "withItems": ANY,
    "withParam": ANY,
    "withSequence": ANY,
    "continueOn": ANY,
    "onExit": ANY,
    "hooks": ANY,
}
TEMPLATE = {
    "name": ANY,
    "inputs": ARGUMENTS,
    "outputs": {"parameters": PARAMETER, "artifacts": ANY, "result": ANY, "exitCode": ANY},
    "container": CONTAINER,
    "volumes": VOLUME,
    "dag": {"tasks": TASK, "target": ANY, "failFast": ANY},
    "steps": TASK,
    "resource": leaves(
        "action",
        "manifest",
        "manifestFrom",
        "successCondition",
        "failureCondition",
        "setOwnerReference",
        "flags",
        "mergeStrategy",
    ),
    "retryStrategy": {
        "limit": ANY,
        "retryPolicy": ANY,
        "expression": ANY,
        "affinity": ANY,
        "backoff": leaves("duration", "factor", "maxDuration", "cap"),
    },
    "memoize": {"key": ANY, "maxAge": ANY, "cache": {"configMap": leaves("name", "key", "optional")}},
    "activeDeadlineSeconds": ANY,
    "timeout": ANY,
    "metadata": ANY,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "serviceAccountName": ANY,
    "podSpecPatch": ANY,
    "securityContext": ANY,
    "parallelism": ANY,
    "failFast": ANY,
}
WORKFLOW = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "entrypoint": ANY,
        "serviceAccountName": ANY,
        "arguments": ARGUMENTS,
        "volumes": VOLUME,
        "templates": TEMPLATE,
        "onExit": ANY,
        "ttlStrategy": ANY,
        "podGC": ANY,
        "volumeClaimTemplates": ANY,
        "activeDeadlineSeconds": ANY,
        "parallelism": ANY,
        "nodeSelector": ANY,
        "tolerations": ANY,
        "securityContext": ANY,
        "imagePullSecrets": ANY,
        "workflowMetadata": ANY,
    },
}

DEPLOYMENT = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "replicas": ANY,
        "selector": leaves("matchLabels", "matchExpressions"),
        "template": POD_TEMPLATE,
        "strategy": ANY,
        "minReadySeconds": ANY,
        "revisionHistoryLimit": ANY,
        "progressDeadlineSeconds": ANY,
    },
}
SERVICE = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "type": ANY,
        "selector": ANY,
        "ports": leaves("name", "port", "targetPort", "protocol", "nodePort", "appProtocol"),
        "clusterIP": ANY,
        "sessionAffinity": ANY,
        "loadBalancerSourceRanges": ANY,
        "externalTrafficPolicy": ANY,
    },
}
PVC = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "accessModes": ANY,
        "resources": leaves("requests", "limits"),
        "storageClassName": ANY,
        "volumeMode": ANY,
        "volumeName": ANY,
        "selector": ANY,
    },
}
SERVICE_ACCOUNT = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "automountServiceAccountToken": ANY,
    "imagePullSecrets": ANY,
    "secrets": ANY,
}
ROLE = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "rules": leaves("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"),
}
ROLE_BINDING = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "roleRef": leaves("apiGroup", "kind", "name"),
    "subjects": leaves("kind", "name", "namespace", "apiGroup"),
}

PREDICTOR = {
    **POD_SPEC,
    "minReplicas": ANY,
    "maxReplicas": ANY,
    "scaleMetric": ANY,
    "scaleTarget": ANY,
    "containerConcurrency": ANY,
    "timeout": ANY,
    "annotations": ANY,
    "labels": ANY,
}
INFERENCE_SERVICE = {"apiVersion": ANY, "kind": ANY, "metadata": METADATA, "spec": {"predictor": PREDICTOR}}

BY_KIND = {
    "Workflow": WORKFLOW,
    "PyTorchJob": PYTORCHJOB,
    "TFJob": TFJOB,
    "TrainJob": TRAINJOB,
    "JobSet": JOBSET,
    "Deployment": DEPLOYMENT,
    "Service": SERVICE,
    "PersistentVolumeClaim": PVC,
    "ServiceAccount": SERVICE_ACCOUNT,
    "Role": ROLE,
    "RoleBinding": ROLE_BINDING,
    "InferenceService": INFERENCE_SERVICE,
}


def unknown_fields(obj: Any, shape: Any, path: str = "") -> list[str]:
    """Paths of fields in `obj` that `shape` does not allow."""
    if shape is ANY:
        return []
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in unknown_fields(item, shape, f"{path}[{i}]")]
    if not isinstance(obj, dict):
        return [f"{path}: expected an object, got {type(obj).__name__}"]
    found = []
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        if key not in shape:
            found.append(f"{where}: unknown field")
        elif isinstance(shape, dict):
            found += unknown_fields(value, shape[key], where)
    return found
