"""MLflow tracking in a compiled workflow's pods: the server and its credentials only as references to a Secret.

The pipeline's `tracking-secret` parameter (built-ins: `-p mlflow-secret=NAME`) names a Secret holding
MLFLOW_TRACKING_URI (required: a pod without it would track nowhere) and, optionally, the credentials MLflow's
client reads. Nothing of them is ever inline in the compiled YAML (`strict.py` refuses it).
"""

from __future__ import annotations

from typing import Any

URI_VAR = "MLFLOW_TRACKING_URI"
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
VARS = (URI_VAR, *CREDENTIAL_VARS)  # the Secret's keys are the variables' own names


def tracking_env(secret: str) -> list[dict[str, Any]]:
    """The env entries a pod tracks with, read from Secret `secret` (a name or a workflow placeholder); none for ''."""
    if not secret:
        return []
    return [
        {
            "name": var,
            "valueFrom": {
                "secretKeyRef": {"name": secret, "key": var, **({"optional": True} if var != URI_VAR else {})}
            },
        }
        for var in VARS
    ]
