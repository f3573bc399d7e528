"""What `trainflow --help` and `trainflow step --help` list for each command, so that listing imports none of them.

Each entry is its command's help up to the first blank line (what click shortens to the listed line), or None for a
hidden command; tests/cli/test_start_imports.py holds every entry equal to its command.
"""

from __future__ import annotations

# "module:attribute" of a command (cli/main.py's COMMANDS, cli/step_programs.py's STEP_COMMANDS) -> its summary
SUMMARIES: dict[str, str | None] = {
    "trainflow.cli.call:call_step": "Pipeline step: call FUNCTION (module:function) with the inputs; its returned dict is the outputs.",
    "trainflow.cli.call:train_function_step": "Pipeline step: run FUNCTION on every worker of a torch.distributed world; rank 0's dict is the outputs.",
    "trainflow.cli.code_flags:code_package_command": "Pack the folder of pipeline FILE (respecting .trainflowignore/.gitignore), upload it once, print its URL.",
    "trainflow.cli.compare:compare_command": "Runs side by side: the parameters that differ (* and highlighted), final metrics, model version, duration.",
    "trainflow.cli.compile:compile_command": "Print a pipeline (a built-in, or a .py/.yaml file) as its Argo Workflow (--schedule: CronWorkflow), or rbac.",
    "trainflow.cli.data:data": "Upload datasets to an object store and manage the node's dataset cache.",
    "trainflow.cli.data:download_dataset_step": "Pipeline step: sync --s3-data-url into the node's dataset cache and describe it.",
    "trainflow.cli.doctor:doctor_command": "Check that workflows can run; exit 1 if any check fails.",
    "trainflow.cli.export:export_model_step": "Pipeline step: the latest checkpoint as an ONNX model version (the one train-model exported, when intact).",
    "trainflow.cli.notify:notify_step": "Pipeline exit step: post the run's outcome to a webhook when its status is one of --on (never fails).",
    "trainflow.cli.pipeline:pipeline": "Check or show a pipeline (a built-in name, or a .py/.yaml file).",
    "trainflow.cli.predict:predict_command": "Predict classes: FILES (PNG/JPEG images, CSV rows, .npy arrays), or --data-dir's test examples.",
    "trainflow.cli.run:run": "Download, train, watch, export and serve MNIST (or your model); then say how to query it.",
    "trainflow.cli.runner:workflow_runner": None,
    "trainflow.cli.run_command:run_command_step": "Pipeline step: run ARGV (after `--`) in the unpacked code package's folder, as that program itself.",
    "trainflow.cli.schedules:lint": "Check pipelines without running them: `pipeline validate`, then the backend's dry run (Kubernetes: compiled).",
    "trainflow.cli.schedules:schedule": "Run a pipeline on a schedule (cron or an interval): locally by a scheduler process, on Kubernetes as an Argo\nCronWorkflow.",
    "trainflow.cli.schedules:scheduler_command": None,
    "trainflow.cli.schedules:wait": "Block until each workflow ends; exit 0 when all Succeeded, else 1 (the failed ones are named).",
    "trainflow.cli.schedules:watch": "Show a workflow's steps live until it ends (as `submit --watch`); exit 1 if it did not succeed.",
    "trainflow.cli.serve:serve_command": "Serve models (the newest versions) over TF Serving REST/gRPC and KServe V2 REST/gRPC until stopped.",
    "trainflow.cli.serve:serve_model_step": "Pipeline step (service): serve the exported model (or a registry model) until stopped.",
    "trainflow.cli.suspension:resume": "Let a suspended workflow start steps again.",
    "trainflow.cli.suspension:suspend": "Start no new step of a running workflow until `trainflow resume` (running steps finish).",
    "trainflow.cli.train:train_command": "Train data-parallel: --workers local processes, or this pod's part of a TFJob/PyTorchJob.",
    "trainflow.cli.train:train_model_step": "Pipeline step: train the model; outputs accuracy, global-step and metrics-url.",
    "trainflow.cli.tune:tune_result_step": "Pipeline step: a Katib Experiment's best trial as the study's outputs (what the local study writes).",
    "trainflow.cli.tune:tune_step": "Pipeline step: run (or resume) a hyperparameter study; outputs the best trial's parameters, value and train dir.",
    "trainflow.cli.ui:ui_command": "Serve the dashboard: workflows live, their DAG, logs and curves, and a canvas to try the model.",
    "trainflow.cli.workflow_steps:get_workflow_info_step": "Pipeline step: resolve the run's train dir, logs dir and export base.",
    "trainflow.cli.workflow_steps:tensorboard_step": "Pipeline step (service): TensorBoard on the run's logs, until stopped.",
    "trainflow.cli.workflow_tracking:mlflow_end_run_step": "Exit handler: log the workflow's parameters to its MLflow run and end it FINISHED or FAILED (never fails).",
    "trainflow.cli.workflows:delete": "Delete a workflow: stop its steps and services, free their ports, forget it.",
    "trainflow.cli.listing:get": "Show a workflow: steps, durations and outputs (accuracy, model version, URLs), and a study's trials.",
    "trainflow.cli.listing:list_command": "List workflows: NAME STATUS AGE DURATION (-o wide: ACCURACY LOSS VERSION too).",
    "trainflow.cli.workflows:logs": "Print a workflow's step logs, step by step; a failed workflow's error comes last.",
    "trainflow.cli.workflows:resubmit": "Run a workflow again under a new name (as `argo resubmit`); unchanged cacheable steps reuse its outputs.",
    "trainflow.cli.workflows:retry": "Re-run a failed workflow from its failed step, keeping the steps that succeeded (as `argo retry`).",
    "trainflow.cli.workflows:services": "List running services (TensorBoard, model servers) with their URLs.",
    "trainflow.cli.workflows:stop": "Stop a running workflow (services already started stay up).",
    "trainflow.cli.workflows:submit": "Submit PIPELINE (model-train, model-deploy, or a .py/.yaml file defining one) with -p NAME=VALUE.",
    "trainflow.cli.workflows:tensorboard": "Print the URL of a workflow's TensorBoard; on a cluster, forward it here until Ctrl+C.",
}
