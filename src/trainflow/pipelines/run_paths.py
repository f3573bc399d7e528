"""`get-workflow-info`, the built-in pipelines' paths step: a run's paths, resolved once, in the Kubeflow example's layout."""

from __future__ import annotations

from dataclasses import dataclass

from trainflow.storage import canonical_url, join_url


@dataclass(frozen=True)
class RunPaths:
    train_dir: str
    logs_dir: str
    checkpoints_dir: str
    export_base: str

    def outputs(self) -> dict[str, str]:
        return {
            "train-dir": self.train_dir,
            "logs-dir": self.logs_dir,
            "checkpoints-dir": self.checkpoints_dir,
            "export-base": self.export_base,
        }


def run_paths(train_base_url: str, job_name: str) -> RunPaths:
    """`<base>/unfinished/<job>/` (checkpoints/, logs/) and `<base>/exported/<job>/` (numbered versions)."""
    base = canonical_url(train_base_url)
    train_dir = join_url(base, "unfinished", job_name)
    return RunPaths(
        train_dir, join_url(train_dir, "logs"), join_url(train_dir, "checkpoints"), join_url(base, "exported", job_name)
    )
