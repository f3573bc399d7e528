"""What a command loads before it does anything: the suite and every pipeline step start `trainflow` hundreds of times.

Each case runs one command in a fresh interpreter and names the modules it must not have imported by the time it
exits; a module imported at the top of a shared CLI module shows up here as a failure, not as a slower suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from trainflow.cli.main import COMMANDS, cli
from trainflow.cli.step_programs import STEP_COMMANDS
from trainflow.cli.summaries import SUMMARIES

# Libraries no command needs before it trains, serves, converts data or talks to a cluster.
HEAVY = (
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "grpc",
    "kubernetes",
    "starlette",
    "uvicorn",
    "PIL",
    "optuna",
    "mlflow",
)
# Printing tables and bars, process control, distribution metadata: loaded where a command uses them.
PRINTING = ("rich",)
PROCESSES = ("psutil",)
METADATA = ("importlib.metadata",)
# The layers below the CLI: listing commands needs none of them; the local backend needs no cluster option code.
LAYERS = ("trainflow.workflows", "trainflow.pipelines", "trainflow.datasets", "trainflow.serving", "trainflow.training")
CLUSTER_OPTIONS = ("trainflow.workflows.kubernetes.options",)

# A run's notify exit step with nothing to send: the run succeeded, and it notifies on failures.
NOTIFY_NOTHING_TO_SEND = ("step", "notify", "--url-env", "NO_SUCH_VARIABLE", "--on", "Failed", "--name", "run-1")
NOTIFY_NOTHING_TO_SEND += ("--pipeline", "p", "--status", "Succeeded", "--duration", "0.5")

NOT_LOADED = {
    ("--help",): HEAVY + PRINTING + PROCESSES + METADATA + LAYERS,
    ("step", "--help"): HEAVY + PRINTING + PROCESSES + METADATA + LAYERS,
    ("list",): HEAVY + PRINTING + METADATA + CLUSTER_OPTIONS,
    ("get", "no-such-workflow"): HEAVY + PRINTING + METADATA + CLUSTER_OPTIONS,
    ("logs", "no-such-workflow"): HEAVY + PRINTING + METADATA + CLUSTER_OPTIONS,
    ("delete", "--all"): HEAVY + PRINTING + METADATA + CLUSTER_OPTIONS,
    ("submit", "--help"): HEAVY + PRINTING + METADATA + CLUSTER_OPTIONS,
    ("workflow-runner", "--help"): HEAVY + PRINTING + PROCESSES + METADATA,
    ("step", "train-model", "--help"): HEAVY + PRINTING + PROCESSES + METADATA,
    ("step", "export-model", "--help"): HEAVY + PRINTING + PROCESSES + METADATA,
    ("step", "call", "--help"): HEAVY + PRINTING + PROCESSES + METADATA,
    ("step", "run-command", "--help"): HEAVY + PRINTING + PROCESSES + METADATA + LAYERS,
    ("compile", "model-train"): HEAVY + PRINTING + METADATA,
    NOTIFY_NOTHING_TO_SEND: HEAVY + PRINTING + METADATA + ("httpx",),
    # A sync's listing and copies need no numpy: it loads on a thread beside the copies (the command's own modules).
    ("data", "sync", "--help"): HEAVY + PROCESSES + METADATA + ("pyarrow", "trainflow.datasets.prepare"),
}

# `list` and `get` over a home that holds a finished run: reading runs back decodes no pipeline for the table and
# loads none of what submitting, planning, scheduling or stopping a run needs.
SUBMITTING = ("trainflow.pipelines.builtin", "trainflow.pipelines.loading", "trainflow.workflows.local.plan")
SUBMITTING += ("trainflow.workflows.schedules",)
READERS_NOT_LOADED = {
    ("list",): HEAVY + PRINTING + PROCESSES + METADATA + CLUSTER_OPTIONS + SUBMITTING + ("trainflow.pipelines",),
    ("get", "recorded-run"): HEAVY + PROCESSES + METADATA + CLUSTER_OPTIONS + SUBMITTING,
}

PROBE = """
import sys
from trainflow.cli.main import cli
try:
    cli.main(sys.argv[2:], prog_name="trainflow")
except SystemExit:
    pass
with open(sys.argv[1], "w") as out:
    out.write("\\n".join(sys.modules))
"""


@pytest.mark.parametrize("args", list(NOT_LOADED), ids=" ".join)
def test_command_does_not_import_what_it_does_not_use(args: tuple[str, ...], tmp_path: Path) -> None:
    loaded_file = tmp_path / "modules"
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(loaded_file), *args], capture_output=True, text=True, timeout=120
    )
    assert loaded_file.exists(), run.stderr
    loaded = set(loaded_file.read_text().split("\n"))
    found = sorted(name for name in NOT_LOADED[args] if name in loaded)
    assert found == [], f"`trainflow {' '.join(args)}` imported {found}"


@pytest.mark.parametrize("args", list(READERS_NOT_LOADED), ids=" ".join)
def test_reading_a_recorded_run_back_imports_only_what_it_shows(args: tuple[str, ...], tmp_path: Path) -> None:
    from trainflow.pipelines.builtin import PIPELINES
    from trainflow.pipelines.serial import to_dict
    from trainflow.settings import trainflow_home
    from trainflow.workflows.backend import SUCCEEDED, StepInfo, WorkflowInfo
    from trainflow.workflows.local.state import StateStore

    pipeline = PIPELINES["model-train"]
    steps = [StepInfo(s.name, status=SUCCEEDED, service=s.service) for s in pipeline.all_steps]
    info = WorkflowInfo("recorded-run", pipeline.name, SUCCEEDED, pipeline.resolve({}), created_at=1.0e9, steps=steps)
    StateStore(trainflow_home() / "trainflow.db").create(info, {"pipeline": to_dict(pipeline), "python_path": []})
    loaded_file = tmp_path / "modules"
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(loaded_file), *args], capture_output=True, text=True, timeout=120
    )
    assert "recorded-run" in run.stdout, run.stderr
    loaded = set(loaded_file.read_text().split("\n"))
    found = sorted(name for name in READERS_NOT_LOADED[args] if name in loaded)
    assert found == [], f"`trainflow {' '.join(args)}` imported {found}"


def test_every_lazy_command_has_its_summary() -> None:
    assert set(SUMMARIES) == {*COMMANDS.values(), *STEP_COMMANDS.values()}


@pytest.mark.parametrize("width", [50, 80, 120, 200])
@pytest.mark.parametrize("group", ["trainflow", "step"])
def test_listed_line_is_what_the_commands_own_help_gives(group: str, width: int) -> None:
    """The listing from cli/summaries.py equals click's own, which imports every command to read its help."""
    command = cli if group == "trainflow" else cli.commands["step"]
    assert isinstance(command, click.Group)
    with click.Context(command, info_name=group) as ctx:
        summarized, imported = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
        command.format_commands(ctx, summarized)
        click.Group.format_commands(command, ctx, imported)
    assert summarized.getvalue() == imported.getvalue()
    assert "Commands:" in summarized.getvalue()


def test_cluster_flags_offer_the_cache_choices_the_cluster_options_check() -> None:
    """cli/cluster_flags.py copies them so that commands with those flags need not import the cluster option code."""
    from trainflow.cli import cluster_flags
    from trainflow.workflows.kubernetes import options

    for name in ("CACHE_MODES", "CACHE_SIZE", "ACCESS_MODES", "HOST_CACHE_PATH"):
        assert getattr(cluster_flags, name) == getattr(options, name), name
