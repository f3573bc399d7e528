"""The `tune` step program: a `Tune` step's study on this machine (see `trainflow.workflows.study`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import console, write_outputs


@click.command("tune")
@click.option("--study", "study_name", required=True, help="The study's name (the step's): its folder and database.")
@click.option("--search-space", required=True, help="JSON: parameter names to ranges (see the Tune step).")
@click.option("--objective", default="accuracy", show_default=True, help="The trial output to optimize.")
@click.option("--direction", default="maximize", show_default=True, help="maximize or minimize.")
@click.option("--max-trials", default="10", show_default=True, help="Trials in all (a resumed study counts its own).")
@click.option("--parallel-trials", default="1", show_default=True, help="Trials at once.")
@click.option("--time-budget", default="", help="Seconds after which no new trial starts (empty: none).")
@click.option("--algorithm", default="tpe", show_default=True, help="random, grid, tpe or cmaes.")
@click.option("--early-stopping", default="none", show_default=True, help="none, median or hyperband.")
@click.option("--seed", default="0", show_default=True, help="The sampler's seed.")
@click.option(
    "--trial-arg",
    "trial_args",
    multiple=True,
    nargs=2,
    metavar="HOW TEXT",
    help="The trial's command, one argument each: HOW is text, param:NAME (a parameter the study may set) or "
    "train-dir (each trial gets <TEXT>/trials/<number>).",
)
@click.option(
    "--study-dir",
    default=None,
    help="Where the study's database, trials and logs go (default: the workflow's folder, else $TRAINFLOW_HOME/studies).",
)
@outputs_option
def tune_step(
    study_name: str, trial_args: tuple[tuple[str, str], ...], study_dir: str | None, outputs: str | None, **texts: str
) -> None:
    """Pipeline step: run (or resume) a hyperparameter study; outputs the best trial's parameters, value and train dir."""

    from trainflow.pipelines.k8s_names import is_dns_label
    from trainflow.pipelines.tuning import (
        ARG_PARAM,
        BEST_PARAMS,
        BEST_TRAIN_DIR,
        BEST_TRIAL,
        BEST_VALUE,
        TRIALS_FILE,
        study_settings,
    )
    from trainflow.workflows.errors import WorkflowError
    from trainflow.workflows.study import TrialCommand, default_study_dir, run_study

    if not is_dns_label(study_name):
        raise WorkflowError(f"--study '{study_name[:80]}' is not a step name: use lowercase letters, digits and '-'")
    can_tune = tuple(how[len(ARG_PARAM) :] for how, _ in trial_args if how.startswith(ARG_PARAM))
    settings = study_settings(texts, can_tune, None)
    folder = Path(study_dir) if study_dir else default_study_dir(study_name)
    result = run_study(settings, TrialCommand(tuple(trial_args)), folder, study_name)
    best = result.best
    ended = {s: sum(1 for t in result.record.trials if t.state == s) for s in ("complete", "pruned", "failed")}
    console.print(
        f"study {study_name}: {len(result.record.trials)} trials ({ended['complete']} complete, {ended['pruned']} "
        f"pruned, {ended['failed']} failed); best #{best.number} {settings.objective}={best.value:g} "
        f"{json.dumps(best.params)}",
        markup=False,
    )
    found = {
        BEST_PARAMS: json.dumps(best.params),
        BEST_VALUE: best.value,
        BEST_TRIAL: best.number,
        BEST_TRAIN_DIR: best.train_dir,
        TRIALS_FILE: str(result.trials_file),
    }
    write_outputs(outputs, found)


@click.command("tune-result")
@click.option("--objective", required=True, help="The metric the study optimized.")
@click.option("--train-dir", default="", help="The trial step's train dir: trial T trained in <train-dir>/trials/T.")
@click.option("--best-trial-name", required=True, help="Katib's status.currentOptimalTrial.bestTrialName.")
@click.option("--assignments", required=True, help="Katib's status.currentOptimalTrial.parameterAssignments (JSON).")
@click.option("--observation", required=True, help="Katib's status.currentOptimalTrial.observation (JSON).")
@outputs_option
def tune_result_step(
    objective: str, train_dir: str, best_trial_name: str, assignments: str, observation: str, outputs: str | None
) -> None:
    """Pipeline step: a Katib Experiment's best trial as the study's outputs (what the local study writes)."""
    from trainflow.pipelines.tuning import BEST_PARAMS, BEST_TRAIN_DIR, BEST_TRIAL, BEST_VALUE, TRIALS_FILE
    from trainflow.storage.urls import join_url
    from trainflow.workflows.katib_status import best_of

    best = best_of(objective, best_trial_name, assignments, observation)
    console.print(f"best trial {best.trial}: {objective}={best.value:g} {json.dumps(best.params)}", markup=False)
    found = {
        BEST_PARAMS: json.dumps(best.params),
        BEST_VALUE: best.value,
        BEST_TRIAL: best.trial,
        BEST_TRAIN_DIR: join_url(train_dir, "trials", best.trial) if train_dir else "",
        TRIALS_FILE: "",
    }
    write_outputs(outputs, found)
