"""The `export-model` step: reuse the version `train-model` exported from the newest checkpoint, else export it."""

from __future__ import annotations

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import console, write_outputs
from trainflow.storage import StorageOptions


@click.command("export-model")
@click.option("--train-dir", required=True, help="Train dir whose latest checkpoint is exported (path or s3:// URL).")
@click.option("--export-base", required=True, help="Where numbered versions go: <export base>/<version>/.")
@click.option(
    "--model", default=None, help="Override the model stored in the checkpoint (auto, cnn, mlp or module:attr)."
)
@click.option("--hidden-units", default=None, type=int, help="Override the hidden units stored in the checkpoint.")
@click.option("--aws-endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL).")
@click.option("--aws-region", default=None, help="S3 region (default: AWS_REGION).")
@outputs_option
def export_model_step(
    train_dir: str,
    export_base: str,
    model: str | None,
    hidden_units: int | None,
    aws_endpoint_url: str | None,
    aws_region: str | None,
    outputs: str | None,
) -> None:
    """Pipeline step: the latest checkpoint as an ONNX model version (the one train-model exported, when intact)."""
    from trainflow.export.steps import export_latest, export_outputs

    result, reused = export_latest(
        train_dir, export_base, model, hidden_units, StorageOptions.from_env(aws_endpoint_url, aws_region)
    )
    if reused:
        console.print(f"version {result.version} is the export of step {result.global_step} -> {result.url}")
    else:
        console.print(f"exported step {result.global_step} as version {result.version} -> {result.url}")
    write_outputs(outputs, export_outputs(result, export_base))
