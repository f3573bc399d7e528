"""The local backend's SQLite state shared by several processes (CLI commands, runners) at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainflow.cli.main import cli
from trainflow.workflows.backend import StepInfo, WorkflowInfo
from trainflow.workflows.local.state import StateStore

_SUBMIT = """
import sys, time
from pathlib import Path
from trainflow.workflows.backend import StepInfo, WorkflowInfo
from trainflow.workflows.local.state import StateStore

db, name, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # every process opens the new database at the same moment
store = StateStore(db)
store.create(WorkflowInfo(name, "model-train", "Pending", {}, time.time(), steps=[StepInfo("train-model")]))
for _ in range(20):
    store.update_step(name, "train-model", status="Running")
    store.get(name)
"""


def test_processes_opening_a_new_state_database_at_once_all_record_their_workflow(tmp_path: Path) -> None:
    names = [f"wf-{i}" for i in range(6)]
    for round_ in range(3):  # the race is a matter of timing: a few fresh databases make a regression show
        db = tmp_path / f"home-{round_}" / "trainflow.db"
        start = time.time() + 1.5  # after every interpreter has started
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SUBMIT, str(db), name, str(start)], stderr=subprocess.PIPE, text=True
            )
            for name in names
        ]
        errors = [proc.communicate(timeout=120)[1] for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * len(names), "\n".join(errors)
        store = StateStore(db)
        assert sorted(store.names()) == names
        assert all(store.get(name).steps[0].status == "Running" for name in names)


def test_an_unusable_state_database_is_one_line_that_names_it(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / "trainflow.db").mkdir(parents=True)  # not a database file
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith(f"error: cannot use the workflow state in {home / 'trainflow.db'}: ")
    assert "TRAINFLOW_HOME" in line


def test_a_damaged_state_database_is_one_line_that_names_it_and_stays_as_it_was(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    damaged = bytes(range(256)) * 64  # not SQLite's header: "file is not a database"
    (home / "trainflow.db").write_bytes(damaged)
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    for args in (["list"], ["get", "some-run"], ["list", "-o", "json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line and line.startswith(f"error: the workflow state in {home / 'trainflow.db'} is damaged")
    assert (home / "trainflow.db").read_bytes() == damaged


def test_a_refused_change_to_a_sound_state_database_is_not_called_damage(tmp_path: Path) -> None:
    """Only a damaged file says "damaged" and how to recover it: the user would otherwise rescue a sound one."""
    store = StateStore(tmp_path / "trainflow.db")
    store.create(WorkflowInfo("run", "p", "Running", {}, 1.0, steps=[StepInfo("fan")]))
    with pytest.raises(sqlite3.IntegrityError):  # two instances of one name: a defect, never the file's fault
        store.replace_steps("run", ["fan"], ["fan[0]", "fan[0]"])
    assert [s.name for s in store.get("run").steps] == ["fan"]


def record_two_runs_one_damaged(home: Path) -> None:
    """`intact-run` and `damaged-run`, finished `model-train` runs; the second's recorded pipeline cut short."""
    from trainflow.pipelines.builtin import PIPELINES
    from trainflow.pipelines.serial import to_dict
    from trainflow.workflows.backend import SUCCEEDED, StepInfo, WorkflowInfo

    pipeline = PIPELINES["model-train"]
    store = StateStore(home / "trainflow.db")
    for created, name in enumerate(["intact-run", "damaged-run"]):
        steps = [StepInfo(s.name, status=SUCCEEDED, service=s.service) for s in pipeline.all_steps]
        info = WorkflowInfo(name, pipeline.name, SUCCEEDED, pipeline.resolve({}), float(created), steps=steps)
        store.create(info, {"pipeline": to_dict(pipeline), "python_path": []})
    with sqlite3.connect(home / "trainflow.db") as db:
        db.execute("UPDATE workflows SET spec = '{\"pipeline\": {\"steps\"' WHERE name = 'damaged-run'")
    db.close()


def test_a_run_whose_recorded_pipeline_is_damaged_is_one_line_and_hides_no_other_run(
    tmp_path: Path, monkeypatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    record_two_runs_one_damaged(home)

    listed = CliRunner().invoke(cli, ["list"])
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.output.splitlines()[1:]] == ["damaged-run", "intact-run"]
    assert CliRunner().invoke(cli, ["get", "intact-run"]).exit_code == 0
    damaged = CliRunner().invoke(cli, ["get", "damaged-run"])
    assert damaged.exit_code == 2
    line = damaged.output.strip()
    assert "\n" not in line and line.startswith("error: the recorded pipeline of workflow damaged-run is damaged")
    assert "trainflow delete damaged-run" in line


def test_reaching_a_runs_service_reads_that_run_alone(tmp_path: Path, monkeypatch) -> None:
    """`tensorboard NAME` (and `predict --workflow NAME`) look at run NAME, not at every run recorded."""
    home = tmp_path / "home"
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    record_two_runs_one_damaged(home)
    result = CliRunner().invoke(cli, ["tensorboard", "intact-run"])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "error: workflow intact-run serves no TensorBoard on this machine: see `trainflow services`"
    )


def test_the_brief_listing_holds_every_run_and_step_as_the_full_one_does(tmp_path: Path) -> None:
    """`trainflow list`'s table reads `list_brief`, which decodes no pipeline: the same runs, statuses and times."""
    from trainflow.workflows.local.backend import LocalBackend

    record_two_runs_one_damaged(tmp_path)
    backend = LocalBackend(tmp_path)
    with sqlite3.connect(tmp_path / "trainflow.db") as db:  # the spec repaired, a step Cached, a run Failed
        db.execute("UPDATE workflows SET spec = (SELECT spec FROM workflows WHERE name = 'intact-run')")
        db.execute("UPDATE steps SET status = 'Cached' WHERE workflow = 'intact-run' AND position = 0")
        db.execute("UPDATE workflows SET status = 'Failed', message = 'step x failed' WHERE name = 'damaged-run'")
    db.close()

    def shown(infos: list) -> list:
        return [
            (i.name, i.status, i.created_at, i.started_at, i.finished_at, i.message, [vars(s) for s in i.steps])
            for i in infos
        ]

    full, brief = backend.list(), backend.list_brief()
    for info in full:
        for step in info.steps:
            step.depends, step.kind, step.provides = [], "", {}
    assert shown(brief) == shown(full)
    assert [i.name for i in brief] == ["damaged-run", "intact-run"]


def test_a_state_database_from_before_specs_were_stored_keeps_its_workflows_and_gains_the_new_columns(
    tmp_path: Path,
) -> None:
    db = tmp_path / "trainflow.db"
    with sqlite3.connect(db) as old:  # the first release's tables: no spec, no no_cache, no schema version
        old.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE workflows (
                name TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL,
                created_at REAL NOT NULL, started_at REAL, finished_at REAL, message TEXT NOT NULL DEFAULT '',
                runner_pid INTEGER, runner_started REAL
            );
            CREATE TABLE steps (
                workflow TEXT NOT NULL REFERENCES workflows(name) ON DELETE CASCADE, name TEXT NOT NULL,
                position INTEGER NOT NULL, status TEXT NOT NULL, service INTEGER NOT NULL DEFAULT 0,
                started_at REAL, finished_at REAL, message TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '{}',
                pid INTEGER, pid_started REAL, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (workflow, name)
            );
            INSERT INTO workflows (name, pipeline, status, params, created_at) VALUES ('old', 'model-train', 'Succeeded', '{}', 1);
            INSERT INTO steps (workflow, name, position, status) VALUES ('old', 'train-model', 0, 'Succeeded');
            """
        )
    old.close()
    for _ in range(2):  # the first open adds what is missing; the next finds the schema current
        store = StateStore(db)
        assert store.names() == ["old"]
        assert store.spec("old") == (None, False)
        assert store.get("old").steps[0].status == "Succeeded"
        store.cached("no-such-key")  # the step cache table exists
    kept = StateStore(db)
    with kept.held():  # as a runner holds it: one connection for its life
        kept.update_step("old", "train-model", message="kept")
        assert StateStore(db).get("old").steps[0].message == "kept"  # another process's view


def test_a_row_that_is_not_utf8_text_is_the_damaged_state_line_not_a_disk_or_permission_one(
    tmp_path: Path, monkeypatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    record_two_runs_one_damaged(home)
    with sqlite3.connect(home / "trainflow.db") as db:  # bytes written outside trainflow (or a bit flipped on disk)
        db.execute("UPDATE workflows SET pipeline = CAST(x'ff00fe' AS TEXT) WHERE name = 'intact-run'")
    db.close()
    before = (home / "trainflow.db").read_bytes()
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith(f"error: the workflow state in {home / 'trainflow.db'} is damaged")
    assert "writable" not in line
    assert (home / "trainflow.db").read_bytes() == before
