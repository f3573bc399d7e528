"""Fan-out over a listing step's output on the local runner: expansion, parallelism, suspend/resume, exit steps, Notify."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.commands import delete_all_workflows, get_workflow, steps_by_name, trainflow

pytestmark = pytest.mark.slow

LIST_OBJECTS = (
    f"{sys.executable} -c \"import json,sys; print(json.dumps([{{'x': i}} for i in range(int(sys.argv[1]))]))\""
)


def write_pipeline(folder: Path, body: str) -> Path:
    path = folder / "pipeline.py"
    path.write_text(
        "from trainflow.pipelines import ITEM, Command, Param, Pipeline, output, param\n"
        "from trainflow.pipelines.notify import Notify\n"
        "from trainflow.pipelines.refs import workflow\n\n" + body
    )
    return path


def sh(script: str, *args: object) -> str:
    return repr(("sh", "-c", script, "sh", *args))[1:-1]


@pytest.fixture(autouse=True)
def delete_all_afterwards(trainflow_home: Path) -> Iterator[None]:
    yield
    delete_all_workflows(trainflow_home)


def submitted(path: Path, *args: str) -> dict[str, Any]:
    out = trainflow("submit", str(path), *args, "--wait", timeout=600)
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    return get_workflow(name)


def most_at_once(steps: list[dict[str, Any]]) -> int:
    """The most steps whose recorded [started, finished] spans overlap."""
    edges = sorted([(s["started_at"], 1) for s in steps] + [(s["finished_at"], -1) for s in steps])
    running = most = 0
    for _, change in edges:  # at a tie, an end (-1) sorts before a start: touching spans do not overlap
        running += change
        most = max(most, running)
    return most


def test_fifty_items_of_a_listing_step_run_at_most_four_at_once_and_gather_in_order(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="fan",
    params=(Param("n", 50, type="int"),),
    steps=(
        Command(name="list", argv=({sh(LIST_OBJECTS + ' "$1" > "$TRAINFLOW_OUTPUTS/items"', "{{params.n}}")}),
                outputs=("items",)),
        Command(name="each", for_each=output("list", "items"), parallelism=4, outputs=("double",),
                argv=({sh('sleep 0.2; echo $(($1 * 2)) > "$TRAINFLOW_OUTPUTS/double"', "{{item.x}}")}), cache=False),
        Command(name="sum", argv=("sh", "-c", "echo $1 > $TRAINFLOW_OUTPUTS/all", "sh", output("each", "double")),
                outputs=("all",)),
    ),
)
""",
    )
    info = submitted(path)
    assert info["status"] == "Succeeded", info["message"]
    items = [s for s in info["steps"] if s["name"].startswith("each")]
    assert [s["name"] for s in items] == [f"each[{i}]" for i in range(50)]  # the instances are recorded in the state
    assert all(s["status"] == "Succeeded" for s in items)
    assert 2 <= most_at_once(items) <= 4
    assert json.loads(steps_by_name(info)["sum"]["outputs"]["all"]) == [str(2 * i) for i in range(50)]
    assert [s["name"] for s in info["steps"]][-1] == "sum"  # expanded in place, in the pipeline's order


def test_an_output_that_is_not_a_list_fails_the_fan_out_with_one_line_naming_it(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="fan",
    params=(),
    steps=(
        Command(name="list", argv=({sh('echo "{{not json" > "$TRAINFLOW_OUTPUTS/items"')}), outputs=("items",)),
        Command(name="each", for_each="{{{{steps.list.outputs.items}}}}", argv=("echo", ITEM)),
    ),
)
""",
    )
    info = submitted(path)
    each = steps_by_name(info)["each"]
    assert (info["status"], each["status"]) == ("Failed", "Failed")
    assert each["message"] == ("step each fans out over output items of list, which is not a JSON list: '{{not json'")


def test_an_empty_list_fans_out_to_no_item_and_later_steps_read_empty_lists(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="fan",
    params=(),
    steps=(
        Command(name="list", argv=({sh('echo "[]" > "$TRAINFLOW_OUTPUTS/items"')}), outputs=("items",)),
        Command(name="each", for_each=output("list", "items"), argv=("echo", ITEM), outputs=("v",)),
        Command(name="after", argv=({sh('echo "$1" > "$TRAINFLOW_OUTPUTS/got"', "{{steps.each.outputs.v}}")}), outputs=("got",)),
    ),
)
""",
    )
    info = submitted(path)
    assert info["status"] == "Succeeded", info["message"]
    assert steps_by_name(info)["each"]["message"] == "no items"
    assert steps_by_name(info)["after"]["outputs"]["got"] == "[]"


class Hooks:
    """A webhook on a free loopback port that keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                hooks.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secret-token-xyz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    found = Hooks()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_exit_steps_run_after_a_failure_with_its_step_and_message_and_notify_a_webhook(
    tmp_path: Path, hooks: Hooks, monkeypatch: pytest.MonkeyPatch, trainflow_home: Path
) -> None:
    monkeypatch.setenv("TEAM_HOOK", hooks.url)
    report = tmp_path / "report.txt"
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="nightly",
    params=(),
    steps=(
        Command(name="prepare", argv=("echo", "ready")),
        Command(name="train", argv=({
            sh('echo "loss is nan at step 7"; echo "diverged" >&2; exit 3')
        }), depends=("prepare",)),
        Command(name="export", argv=("echo", "never"), depends=("train",)),
    ),
    on_exit=(
        Command(name="report", argv=({
            sh(
                'echo "$1|$2|$3" > "$4"',
                "{{workflow.status}}",
                "{{workflow.failed_step}}",
                "{{workflow.failure_message}}",
                str(report),
            )
        })),
        Notify(url_env="TEAM_HOOK", on=("Failed",)),
    ),
)
""",
    )
    info = submitted(path)
    by_name = steps_by_name(info)
    assert info["status"] == "Failed" and by_name["export"]["status"] == "Omitted"
    assert (by_name["report"]["status"], by_name["notify"]["status"]) == ("Succeeded", "Succeeded")
    assert report.read_text().strip() == "Failed|train|diverged"
    [sent] = hooks.received
    assert sent["workflow"] == info["name"] and sent["pipeline"] == "nightly" and sent["status"] == "Failed"
    assert (sent["failed_step"], sent["failure_message"]) == ("train", "diverged")
    assert "loss is nan at step 7" in sent["log_lines"] and sent["command"] == f"trainflow get {info['name']}"
    assert sent["duration"] > 0 and "train failed: diverged" in sent["text"]
    # the URL came from the environment: it is in no state, log or output trainflow keeps
    shown = trainflow("get", info["name"], "-o", "json").stdout + trainflow("logs", info["name"]).stdout
    kept = b"".join(p.read_bytes() for p in trainflow_home.rglob("*") if p.is_file())
    assert "secret-token-xyz" not in shown and b"secret-token-xyz" not in kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_webhook_that_is_down_leaves_the_workflow_with_the_status_it_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_HOOK", f"http://127.0.0.1:{free_port()}/hook")
    path = write_pipeline(
        tmp_path,
        """
PIPELINE = Pipeline(
    name="nightly",
    params=(),
    steps=(Command(name="work", argv=("echo", "done")),),
    on_exit=(Notify(url_env="TEAM_HOOK", on=("Succeeded", "Failed")),),
)
""",
    )
    info = submitted(path)
    assert info["status"] == "Succeeded" and steps_by_name(info)["notify"]["status"] == "Succeeded"
    log = trainflow("logs", info["name"], "--step", "notify").stdout
    assert "notification attempt 1 of 4 failed (ConnectError)" in log and "notification not delivered" in log


def test_suspend_lets_the_running_step_finish_and_starts_no_new_one_until_resume(tmp_path: Path) -> None:
    go = tmp_path / "go"  # the first step runs until the test has suspended the run, however slow the machine
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="held",
    params=(),
    steps=(
        Command(name="first", argv=({sh(f"while [ ! -e {go} ]; do sleep 0.1; done")}), cache=False),
        Command(name="second", argv=("echo", "after"), depends=("first",), cache=False),
    ),
)
""",
    )
    out = trainflow("submit", str(path))
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    deadline = time.monotonic() + 60
    while steps_by_name(get_workflow(name))["first"]["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    suspended = trainflow("suspend", name)
    assert suspended.returncode == 0 and f"{name}: Suspended" in suspended.stdout
    go.touch()
    while steps_by_name(get_workflow(name))["first"]["status"] == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)
    info = get_workflow(name)
    assert info["status"] == "Suspended" and steps_by_name(info)["first"]["status"] == "Succeeded"
    assert steps_by_name(info)["second"]["status"] == "Pending"
    again = trainflow("suspend", name)
    assert again.returncode == 2 and again.stderr.strip() == f"error: workflow {name} is Suspended, not running"
    assert trainflow("resume", name).returncode == 0
    while get_workflow(name)["status"] not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert get_workflow(name)["status"] == "Succeeded"


def test_retry_reruns_a_failed_item_of_an_expanded_fan_out_with_its_own_item(tmp_path: Path) -> None:
    marker = tmp_path / "fail-on-2"
    marker.write_text("")
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="fan",
    params=(),
    steps=(
        Command(name="list", argv=({sh('echo "[1, 2, 3]" > "$TRAINFLOW_OUTPUTS/items"')}), outputs=("items",)),
        Command(name="each", for_each=output("list", "items"), outputs=("v",), cache=False,
                argv=({
            sh('test "$1" = 2 && test -e "$2" && exit 1; echo "$1" > "$TRAINFLOW_OUTPUTS/v"', "{{item}}", str(marker))
        })),
    ),
)
""",
    )
    failed = submitted(path)
    assert failed["status"] == "Failed" and steps_by_name(failed)["each[1]"]["status"] == "Failed"
    marker.unlink()
    assert trainflow("retry", failed["name"], "--wait").returncode == 0
    info = get_workflow(failed["name"])
    assert [s["name"] for s in info["steps"]] == ["list", "each[0]", "each[1]", "each[2]"]
    assert [steps_by_name(info)[f"each[{i}]"]["outputs"]["v"] for i in range(3)] == ["1", "2", "3"]


def test_exit_steps_run_after_trainflow_stop_with_the_stopped_outcome(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    path = write_pipeline(
        tmp_path,
        f"""
PIPELINE = Pipeline(
    name="stopped",
    params=(),
    steps=(Command(name="long", argv=("sleep", "60"), cache=False),),
    on_exit=(Command(name="report", argv=({
            sh(
                'echo "$1|$2|$3" > "$4"',
                "{{workflow.status}}",
                "{{workflow.failed_step}}",
                "{{workflow.failure_message}}",
                str(report),
            )
        })),),
)
""",
    )
    out = trainflow("submit", str(path))
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    deadline = time.monotonic() + 60
    while steps_by_name(get_workflow(name))["long"]["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert trainflow("stop", name).returncode == 0
    info = get_workflow(name)
    assert (info["status"], info["message"]) == ("Failed", "stopped by user")
    assert steps_by_name(info)["report"]["status"] == "Succeeded"
    assert report.read_text().strip() == "Failed|long|stopped: by user"
