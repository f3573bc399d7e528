"""Schedules on this machine: the scheduler process fires them through the local backend, survives being killed
without firing a due time twice, and keeps Forbid's promise; bad input is one line. Also `wait`, `watch`, `lint`."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from commands import delete_all_workflows, trainflow, wait_until

from trainflow.workflows.schedules import When

SLEEPER = """\
name: sleeper
params:
  - {name: seconds, type: float, default: 0.1, help: How long the step sleeps.}
  - {name: fail, type: int, default: 0, help: The step's exit code.}
steps:
  - name: nap
    kind: command
    argv: [python3, -c, "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))",
           "{{params.seconds}}", "{{params.fail}}"]
    cache: false
"""


@pytest.fixture
def sleeper(tmp_path: Path) -> str:
    path = tmp_path / "sleeper.yaml"
    path.write_text(SLEEPER)
    return str(path)


@pytest.fixture(autouse=True)
def no_schedule_left(trainflow_home: Path) -> Iterator[None]:
    """Delete this test's schedules, stop its scheduler and its runs, whatever the test did."""
    yield
    listed = trainflow("schedule", "list", "-o", "json")
    for schedule in json.loads(listed.stdout or "[]"):
        trainflow("schedule", "delete", schedule["name"])
    found = scheduler_of(trainflow_home)
    if found:
        os.kill(found["pid"], signal.SIGKILL)
    delete_all_workflows(trainflow_home)


def scheduler_of(home: Path) -> dict[str, Any] | None:
    rows = json.loads(trainflow("services", "-o", "json").stdout or "[]")
    return next((r for r in rows if r.get("service") == "scheduler"), None)


def schedule_of(name: str) -> dict[str, Any]:
    got = trainflow("schedule", "get", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def history_of(name: str) -> list[dict[str, Any]]:
    """What each due time did, as `schedule get NAME -o json` prints it, read in this process through the same backend
    call: the waits below poll it every 0.3 s, and a `trainflow` process each time cost its start-up's CPU every time."""
    from trainflow.settings import trainflow_home
    from trainflow.workflows.backends import DEFAULT, Where, open_backend

    info = open_backend(DEFAULT, Where(trainflow_home())).schedule(name)
    history: list[dict[str, Any]] = json.loads(json.dumps(info.to_dict(), default=str))["history"]
    return history


def started(name: str) -> list[dict[str, Any]]:
    return [f for f in history_of(name) if f["outcome"] == "Started"]


def workflow_names() -> list[str]:
    return [w["name"] for w in json.loads(trainflow("list", "-o", "json").stdout)]


def test_every_5s_fires_twice_as_named_runs_then_delete_stops_it(sleeper: str, trainflow_home: Path) -> None:
    created = trainflow("schedule", "create", "often", sleeper, "--every", "5s", "-p", "seconds=0.1")
    assert created.returncode == 0, created.stderr
    assert scheduler_of(trainflow_home) is not None  # started on demand, visible in `trainflow services`
    fired = wait_until(lambda: len(started("often")) >= 2 and started("often"), timeout=90)
    for fire in fired:
        assert fire["workflow"] == f"often-{int(fire['due'])}"
        assert fire["workflow"] in workflow_names()
    assert (fired[0]["due"] - fired[1]["due"]) % 5 == 0 and fired[0]["due"] > fired[1]["due"]
    info = schedule_of("often")
    newest = next(f for f in info["history"] if f["outcome"] == "Started")
    assert info["last_run"] == newest["workflow"] and info["next_run_at"] > newest["due"]
    assert trainflow("wait", *[f["workflow"] for f in fired]).returncode == 0

    assert trainflow("schedule", "delete", "often").returncode == 0
    runs = len([n for n in workflow_names() if n.startswith("often-")])
    time.sleep(6)
    assert len([n for n in workflow_names() if n.startswith("often-")]) == runs
    wait_until(lambda: scheduler_of(trainflow_home) is None, timeout=90)  # it exits once no schedule is active


def test_killed_scheduler_restarts_without_firing_a_due_time_twice(sleeper: str, trainflow_home: Path) -> None:
    assert trainflow("schedule", "create", "tough", sleeper, "--every", "5s").returncode == 0
    wait_until(lambda: started("tough"), timeout=60)
    before = scheduler_of(trainflow_home)
    assert before is not None
    os.kill(before["pid"], signal.SIGKILL)
    time.sleep(11)  # two due times pass while no scheduler runs

    after = scheduler_of(trainflow_home)  # `trainflow services` starts it again
    assert after is not None and after["pid"] != before["pid"]
    count = len(schedule_of("tough")["history"])
    fires = wait_until(lambda: len(h := history_of("tough")) > count + 1 and h, timeout=90)
    dues = [f["due"] for f in fires]
    assert len(dues) == len(set(dues))  # no due time fired twice
    names = [n for n in workflow_names() if n.startswith("tough-")]
    assert len(names) == len(set(names)) >= len([f for f in fires if f["outcome"] == "Started"])
    # each run is one started fire; the schedule goes on firing, so its history is read after the listing
    wait_until(lambda: set(names) <= {f["workflow"] for f in started("tough")}, timeout=30)
    # of the two due times missed while it was down, only the latest was caught up
    gaps = [a - b for a, b in itertools.pairwise(dues)]
    assert any(gap >= 10 for gap in gaps), gaps  # a missed due time was left out, not started late
    assert all(gap % 5 == 0 and gap > 0 for gap in gaps), gaps


def test_forbid_skips_a_run_while_the_previous_one_runs(sleeper: str) -> None:
    created = trainflow(
        "schedule", "create", "single", sleeper, "--every", "5s", "--concurrency-policy", "Forbid", "-p", "seconds=8"
    )
    assert created.returncode == 0, created.stderr

    def skipped_one() -> list[dict[str, Any]] | None:
        history = history_of("single")
        return history if any(f["outcome"] == "Skipped" for f in history) else None

    history = wait_until(skipped_one, timeout=90)
    skipped = next(f for f in history if f["outcome"] == "Skipped")
    first = next(f for f in history if f["outcome"] == "Started" and f["due"] < skipped["due"])
    assert first["workflow"] in skipped["message"] and "Forbid" in skipped["message"]
    assert skipped["workflow"] not in workflow_names()
    shown = trainflow("schedule", "get", "single")
    assert "Skipped" in shown.stdout


def test_replace_stops_the_previous_run_then_starts_the_next(sleeper: str) -> None:
    created = trainflow(
        "schedule", "create", "latest", sleeper, "--every", "5s", "--concurrency-policy", "Replace", "-p", "seconds=30"
    )
    assert created.returncode == 0, created.stderr

    def replaced_one() -> dict[str, Any] | None:
        return next((f for f in history_of("latest") if f["outcome"] == "Replaced"), None)

    replaced = wait_until(replaced_one, timeout=90)
    previous = replaced["message"].removeprefix("replaced ")
    assert previous.startswith("latest-") and previous != replaced["workflow"]
    stopped = json.loads(trainflow("get", previous, "-o", "json").stdout)
    assert stopped["status"] == "Failed"  # stopped, not left running beside the new one
    assert replaced["workflow"] in workflow_names()


BAD_SCHEDULE_INPUT = [
    (["bad-cron", "SLEEPER", "--cron", "0 3 * *"], "bad cron expression '0 3 * *'"),
    (["bad-cron", "SLEEPER", "--cron", "61 3 * * *"], "bad cron expression '61 3 * * *'"),
    (["bad-every", "SLEEPER", "--every", "5 seconds"], "bad interval '5 seconds'"),
    (["bad-every", "SLEEPER", "--every", "0s"], "bad interval '0s'"),
    (["both", "SLEEPER", "--every", "5s", "--cron", "* * * * *"], "give exactly one of --cron"),
    (["neither", "SLEEPER"], "give exactly one of --cron"),
    (["Upper", "SLEEPER", "--every", "5s"], "schedule name 'Upper' must be"),
    (["x" * 53, "SLEEPER", "--every", "5s"], "at most 52 characters"),
    (["zone", "SLEEPER", "--cron", "0 3 * * *", "--timezone", "Mars/Olympus"], "unknown time zone"),
    (["nope", "no-such-pipeline.yaml", "--every", "5s"], "no-such-pipeline.yaml"),
    (["param", "SLEEPER", "--every", "5s", "-p", "seconds=soon"], "seconds"),
]


def test_bad_schedule_input_is_one_error_line_and_creates_nothing(sleeper: str, trainflow_home: Path) -> None:
    # Every case in one home: 13 processes where one test per case started 55 (its own list, services and clean-up).
    wrong: list[tuple[object, ...]] = []
    for args, says in BAD_SCHEDULE_INPUT:
        out = trainflow("schedule", "create", *[sleeper if a == "SLEEPER" else a for a in args])
        if not (out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1):
            wrong.append((args, out.returncode, out.stderr))
        elif says not in out.stderr:
            wrong.append((args, says, out.stderr))
    assert wrong == []
    assert json.loads(trainflow("schedule", "list", "-o", "json").stdout) == []
    assert scheduler_of(trainflow_home) is None


def test_duplicate_schedule_name_is_refused_and_the_first_kept(sleeper: str) -> None:
    assert trainflow("schedule", "create", "twice", sleeper, "--cron", "0 3 * * *").returncode == 0
    again = trainflow("schedule", "create", "twice", sleeper, "--every", "5s")
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "a schedule named 'twice' already exists" in again.stderr
    assert schedule_of("twice")["schedule"] == "0 3 * * *"


def test_suspended_schedule_does_not_fire_and_resumes_without_catching_up(sleeper: str) -> None:
    assert trainflow("schedule", "create", "paused", sleeper, "--every", "5s").returncode == 0
    assert trainflow("schedule", "suspend", "paused").returncode == 0
    assert schedule_of("paused")["suspended"] is True and schedule_of("paused")["next_run_at"] is None
    time.sleep(6)
    assert schedule_of("paused")["history"] == []
    resumed_at = time.time()
    resumed = trainflow("schedule", "resume", "paused")
    assert resumed.returncode == 0, resumed.stderr
    assert schedule_of("paused")["next_run_at"] > resumed_at
    wait_until(lambda: started("paused"), timeout=60)
    assert all(f["due"] > resumed_at for f in schedule_of("paused")["history"])  # nothing due while suspended ran


def test_unknown_schedule_is_one_line() -> None:
    for verb in ("get", "delete", "suspend", "resume"):
        out = trainflow("schedule", verb, "ghost")
        assert out.returncode == 2 and out.stderr == "error: no schedule named 'ghost': see `trainflow schedule list`\n"


def test_wait_exits_0_when_all_succeeded_and_names_the_failed_ones(sleeper: str) -> None:
    ok = trainflow("submit", sleeper, "-p", "seconds=0.5")
    bad = trainflow("submit", sleeper, "-p", "fail=3")
    good_name = ok.stdout.split()[1]
    bad_name = bad.stdout.split()[1]
    assert trainflow("wait", good_name).returncode == 0
    both = trainflow("wait", good_name, bad_name)
    assert both.returncode == 1
    assert f"{good_name} Succeeded" in both.stdout and f"not Succeeded: {bad_name} (Failed)" in both.stderr
    unknown = trainflow("wait", good_name, "ghost")
    assert unknown.returncode == 2 and "no workflow named 'ghost'" in unknown.stderr


def test_watch_shows_the_steps_until_the_run_ends(sleeper: str) -> None:
    name = trainflow("submit", sleeper, "-p", "seconds=1").stdout.split()[1]
    watched = trainflow("watch", name)
    assert watched.returncode == 0, watched.stderr
    assert "nap" in watched.stdout and "Status: Succeeded" in watched.stdout


def test_lint_is_pipeline_validate_with_the_dry_run(sleeper: str, tmp_path: Path) -> None:
    ok = trainflow("lint", sleeper)
    assert ok.returncode == 0 and "pipeline sleeper is valid" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(SLEEPER.replace("{{params.seconds}}", "{{params.secnds}}"))
    out = trainflow("lint", sleeper, str(broken))
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "secnds" in out.stderr


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()


def test_cron_due_times_follow_the_time_zone_and_catch_up_only_the_latest() -> None:
    paris = When(cron="0 3 * * *", timezone="Europe/Paris")
    assert paris.next_after(utc(2026, 1, 1, 0, 0), 0) == utc(2026, 1, 1, 2, 0)  # 03:00 in Paris is 02:00 UTC
    assert paris.next_after(utc(2026, 7, 1, 0, 0), 0) == utc(2026, 7, 1, 1, 0)  # summer time
    assert paris.last_at_or_before(utc(2026, 1, 4, 12, 0), utc(2026, 1, 1, 0, 0), 0) == utc(2026, 1, 4, 2, 0)
    assert paris.last_at_or_before(utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 0, 0), 0) is None
    every = When(every=30)
    assert every.next_after(100, 100) == 130 and every.next_after(131, 100) == 160
    assert every.last_at_or_before(200, 100, 100) == 190
