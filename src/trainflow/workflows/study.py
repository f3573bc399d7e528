"""A `Tune` step's work on this machine: an Optuna study whose trials are runs of the trial step's command.

Each trial is its own process group (the trainer and its workers), started with its own outputs file,
progress file and train dir. The objective's intermediate values are read from the trial's progress
events as they are reported (`eval/<objective>`, else `<objective>`); a trial the pruner stops is killed
with its whole group. The study lives in an SQLite file in `study_dir`, so running the step again (`retry`)
resumes it: finished trials are kept, trials that were running are marked failed and run again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.pipelines.search_space import CHOICE, FLOAT, Dimension
from trainflow.pipelines.tuning import ARG_PARAM, ARG_TRAIN_DIR, StudySettings, grid_values
from trainflow.progress import ENV as PROGRESS_ENV
from trainflow.progress import read_progress
from trainflow.storage.urls import join_url
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import processes
from trainflow.workflows.trials import (
    COMPLETE,
    FAILED,
    FILE,
    INTERRUPTED,
    PRUNED,
    RUNNING,
    TOTAL_STEPS,
    StudyRecord,
    TrialRecord,
    write_study,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
_INTERRUPTED = "interrupted"  # a trial's user attribute: it was running when the study stopped, and runs again


@dataclass(frozen=True)
class TrialCommand:
    """The trial step's command as the `tune` program got it: (how, text) pairs (see `pipelines.tuning.trial_args`)."""

    args: tuple[tuple[str, str], ...]

    def argv(self, params: Mapping[str, str], train_dir: str) -> list[str]:
        found = []
        for how, text in self.args:
            if how.startswith(ARG_PARAM):
                found.append(params.get(how[len(ARG_PARAM) :], text))
            elif how == ARG_TRAIN_DIR:
                found.append(train_dir)
            else:
                found.append(text)
        return processes.trainflow_argv(found)

    def train_dir(self) -> str:
        return next((text for how, text in self.args if how == ARG_TRAIN_DIR), "")


@dataclass
class _Running:
    trial: optuna.trial.Trial
    proc: Any
    folder: Path
    train_dir: str
    started: float
    reported: int = 0  # progress events already read
    steps: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class StudyResult:
    best: TrialRecord
    record: StudyRecord
    trials_file: Path


def run_study(settings: StudySettings, command: TrialCommand, study_dir: Path, name: str) -> StudyResult:
    """Run (or resume) the study until `max_trials` trials have ended or the time budget is spent."""
    import optuna

    from trainflow.workflows.pruners import study_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{study_dir / 'study.db'}",
        sampler=_sampler(settings),
        pruner=study_pruner(settings),
        direction=optuna.study.StudyDirection.MAXIMIZE
        if settings.direction == "maximize"
        else optuna.study.StudyDirection.MINIMIZE,
        load_if_exists=True,
    )
    _requeue_interrupted(study, study_dir, settings.objective)
    runner = _Runner(settings, command, study, study_dir)
    previous = signal.signal(signal.SIGTERM, runner.terminate)
    try:
        runner.run()
    finally:
        runner.stop_all()
        signal.signal(signal.SIGTERM, previous)
    record = study_record(study, settings)
    trials_file = study_dir / FILE
    write_study(trials_file, record)
    best = record.best()
    if best is None:
        first = next((t for t in record.trials if t.state == FAILED), None)
        why = f"the first failed: {first.error}" if first and first.error else f"none reported {settings.objective}"
        raise WorkflowError(f"no trial of study {name} finished ({len(record.trials)} ran): {why}")
    return StudyResult(best, record, trials_file)


class _Runner:
    def __init__(self, settings: StudySettings, command: TrialCommand, study: optuna.Study, folder: Path) -> None:
        self.settings, self.command, self.study, self.folder = settings, command, study, folder
        self.running: dict[int, _Running] = {}
        self.began = time.monotonic()
        self.stopping = False

    def terminate(self, signum: int, frame: object) -> None:
        self.stopping = True  # the loop stops its trials (their groups) and leaves them RUNNING, to be re-run

    def run(self) -> None:
        while not self.stopping:
            while len(self.running) < self.settings.parallel_trials and self._may_start():
                self._start()
            if not self.running:
                return
            time.sleep(POLL_SECONDS)
            for number, run in list(self.running.items()):
                self._poll(number, run)

    def _may_start(self) -> bool:
        budget = self.settings.time_budget
        if budget is not None and time.monotonic() - self.began >= budget:
            return False
        return _counted(self.study) + len(self.running) < self.settings.max_trials

    def _start(self) -> None:
        trial = self.study.ask(_distributions(self.settings.dimensions))
        params = {d.name: _text(d, trial.params[d.name]) for d in self.settings.dimensions}
        folder = self.folder / f"trial-{trial.number}"
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("outputs.json", "progress.jsonl"):
            (folder / stale).unlink(missing_ok=True)
        base = self.command.train_dir()
        train_dir = join_url(base, "trials", str(trial.number)) if base else ""
        env = {
            **os.environ,
            "TRAINFLOW_OUTPUTS": str(folder / "outputs.json"),
            PROGRESS_ENV: str(folder / "progress.jsonl"),
        }
        proc = processes.start(self.command.argv(params, train_dir), folder / "log.txt", env=env)
        trial.set_user_attr("train_dir", train_dir)
        trial.set_user_attr("params", params)
        trial.set_user_attr("pid", [proc.pid, processes.started_at(proc.pid)])
        self.running[trial.number] = _Running(trial, proc, folder, train_dir, time.time())
        log.info("trial %d started: %s", trial.number, json.dumps(params))

    def _poll(self, number: int, run: _Running) -> None:
        events = read_progress(run.folder / "progress.jsonl")
        for event in events[run.reported :]:
            run.steps = max(run.steps, int(event["step"]))
            if "total" in event and TOTAL_STEPS not in run.trial.user_attrs:
                run.trial.set_user_attr(TOTAL_STEPS, int(event["total"]))
            value = event.get(f"eval/{self.settings.objective}", event.get(self.settings.objective))
            if isinstance(value, int | float) and math.isfinite(value):
                run.curve.append((int(event["step"]), float(value)))
                run.trial.report(float(value), int(event["step"]))
                if run.trial.should_prune():
                    self._end(number, run, PRUNED)
                    return
        run.reported = len(events)
        if run.proc.poll() is not None:
            self._end(number, run, COMPLETE if run.proc.returncode == 0 else FAILED)

    def _end(self, number: int, run: _Running, state: str) -> None:
        import optuna

        del self.running[number]
        if run.proc.poll() is None:
            processes.stop_group(run.proc.pid, None, grace=5.0)
            run.proc.wait()
        attrs = {"steps": run.steps, "curve": run.curve, "duration": round(time.time() - run.started, 3)}
        for key, value in attrs.items():
            run.trial.set_user_attr(key, value)
        if state == PRUNED:
            self.study.tell(run.trial, state=optuna.trial.TrialState.PRUNED)
            log.info("trial %d pruned at step %d", number, run.steps)
            return
        value = _objective(run.folder / "outputs.json", self.settings.objective) if state == COMPLETE else None
        if value is None:
            error = _error(run.folder / "log.txt", run.proc.returncode, self.settings.objective)
            run.trial.set_user_attr("error", error)
            self.study.tell(run.trial, state=optuna.trial.TrialState.FAIL)
            log.warning("trial %d failed: %s", number, error)
            return
        self.study.tell(run.trial, value)
        log.info("trial %d: %s=%g", number, self.settings.objective, value)

    def stop_all(self) -> None:
        """Stop every running trial's group; they stay RUNNING in the study, so a resumed study runs them again."""
        for run in self.running.values():
            processes.stop_group(run.proc.pid, None, grace=5.0)
            run.proc.wait()
        if self.stopping:
            raise WorkflowError("the study was stopped: `trainflow retry` resumes it (finished trials are kept)")


def default_study_dir(name: str) -> Path:
    """Where study `name` lives: in its workflow's folder when a runner started it, else in $TRAINFLOW_HOME."""
    from trainflow.settings import trainflow_home

    workflow = os.environ.get(processes.WORKFLOW_ENV)
    return (Path(workflow) if workflow else trainflow_home()) / "studies" / name


def _requeue_interrupted(study: optuna.Study, folder: Path, objective: str) -> None:
    """Trials left RUNNING by a study that was stopped: a trial that had finished is recorded, the others are
    stopped (what is left of them), marked interrupted and run again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid") or [None, None]
        processes.stop_group(pid[0], pid[1], grace=5.0)
        done = folder / f"trial-{trial.number}"
        value = _objective(done / "outputs.json", objective)
        if value is not None:  # it ended before the study could record it
            events = read_progress(done / "progress.jsonl")
            study._storage.set_trial_user_attr(trial._trial_id, "steps", max((e["step"] for e in events), default=0))
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, [value])
            continue
        study._storage.set_trial_user_attr(trial._trial_id, _INTERRUPTED, True)
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)


def _counted(study: optuna.Study) -> int:
    """Trials that used the budget: those that ended, not the interrupted ones run again."""
    import optuna

    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=ended) if not t.user_attrs.get(_INTERRUPTED))


def _sampler(settings: StudySettings) -> optuna.samplers.BaseSampler:
    import optuna

    seed = settings.seed
    if settings.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.algorithm == "grid":

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any) -> None:
                """Nothing to stop: the runner asks for at most max-trials, never more than the grid's points
                (Optuna's own calls `Study.stop`, which only an `optimize` loop may)."""

        return Grid({d.name: grid_values(d) for d in settings.dimensions}, seed=seed)
    if settings.algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    startup = max(2, min(10, settings.max_trials // 4))  # TPE models the space once a few trials have ended
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=settings.parallel_trials > 1)


def _distributions(dimensions: tuple[Dimension, ...]) -> dict[str, optuna.distributions.BaseDistribution]:
    import optuna

    found: dict[str, optuna.distributions.BaseDistribution] = {}
    for d in dimensions:
        if d.type == CHOICE:
            found[d.name] = optuna.distributions.CategoricalDistribution(list(d.values))
        elif d.type == FLOAT:
            found[d.name] = optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)
        else:
            found[d.name] = optuna.distributions.IntDistribution(int(d.low), int(d.high), log=d.log, step=d.step)
    return found


def _text(dimension: Dimension, value: object) -> str:
    if dimension.type == FLOAT:
        return repr(float(value))  # type: ignore[arg-type]
    return str(value)


def _objective(path: Path, objective: str) -> float | None:
    try:
        value = json.loads(path.read_text()).get(objective)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _error(log_path: Path, code: int | None, objective: str) -> str:
    """One line saying why a trial failed: its `error:` line, else its last line, else its exit code."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines()[-200:] if ln.strip()]
    except OSError:
        lines = []
    errors = [ln for ln in lines if ln.startswith("error:")]
    if code == 0:
        return f"it ended without reporting '{objective}'"
    line = errors[-1] if errors else (lines[-1] if lines else f"exit code {code}")
    return line[:300]


def study_record(study: optuna.Study, settings: StudySettings) -> StudyRecord:
    """The study's trials as records, the best marked."""
    import optuna

    states: dict[optuna.trial.TrialState, str] = {
        optuna.trial.TrialState.COMPLETE: COMPLETE,
        optuna.trial.TrialState.PRUNED: PRUNED,
        optuna.trial.TrialState.FAIL: FAILED,
        optuna.trial.TrialState.RUNNING: RUNNING,
    }
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    pick: Callable[..., Any] = max if settings.direction == "maximize" else min
    best = pick(complete, key=lambda t: t.value).number if complete else None
    records = []
    for t in trials:
        attrs = t.user_attrs
        state = INTERRUPTED if attrs.get(_INTERRUPTED) else states.get(t.state, FAILED)
        last = attrs.get("curve") or []
        value = t.value if t.state == optuna.trial.TrialState.COMPLETE else (last[-1][1] if last else None)
        records.append(
            TrialRecord(
                number=t.number,
                params=dict(attrs.get("params") or {k: str(v) for k, v in t.params.items()}),
                state=state,
                value=value,
                duration=attrs.get("duration"),
                steps=int(attrs.get("steps", 0)),
                train_dir=str(attrs.get("train_dir", "")),
                best=t.number == best,
                error=str(attrs.get("error", "")),
                curve=[(int(s), float(v)) for s, v in last],
            )
        )
    return StudyRecord(settings.objective, settings.direction, records)
