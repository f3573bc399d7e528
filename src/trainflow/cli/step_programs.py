"""The `trainflow step` group's commands: each step program the spec names, as a click command imported when it runs."""

from __future__ import annotations

# program name (trainflow.pipelines.programs.STEP_PROGRAMS) -> module:attribute of its command
STEP_COMMANDS: dict[str, str] = {
    "download-dataset": "trainflow.cli.data:download_dataset_step",
    "get-workflow-info": "trainflow.cli.workflow_steps:get_workflow_info_step",
    "tensorboard": "trainflow.cli.workflow_steps:tensorboard_step",
    "train-model": "trainflow.cli.train:train_model_step",
    "export-model": "trainflow.cli.export:export_model_step",
    "serve-model": "trainflow.cli.serve:serve_model_step",
    "call": "trainflow.cli.call:call_step",
    "train-function": "trainflow.cli.call:train_function_step",
    "tune": "trainflow.cli.tune:tune_step",
    "tune-result": "trainflow.cli.tune:tune_result_step",
    "notify": "trainflow.cli.notify:notify_step",
    "mlflow-end-run": "trainflow.cli.workflow_tracking:mlflow_end_run_step",
    "run-command": "trainflow.cli.run_command:run_command_step",
}
