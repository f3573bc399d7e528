"""Following a local workflow live: the step table, a training progress bar, the summary."""

from __future__ import annotations

import re
import shlex
import time
from typing import TYPE_CHECKING

from trainflow.cli.output import console, stdout_console
from trainflow.workflows.backend import DONE, FINISHED, RUNNING, Backend, WorkflowInfo
from trainflow.workflows.errors import WorkflowError

if TYPE_CHECKING:
    from rich.table import Table

_COLOURS = {
    "Succeeded": "green",
    "Failed": "red",
    "Running": "cyan",
    "Pending": "dim",
    "Skipped": "yellow",
    "Omitted": "yellow",
    "Cached": "green",
}
DEFAULT_MODEL_NAME = "mnist"  # what `trainflow predict` asks for when nothing names a model


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    return f"{(end or time.time()) - start:.1f}s"


def step_table(info: WorkflowInfo, said: str = "") -> Table:
    """One row a step; a failed step whose message `said` (the workflow's Message) already shows points there."""
    from rich.table import Table

    table = Table("STEP", "STATUS", "DURATION", "MESSAGE", box=None)
    for step in info.steps:
        colour = _COLOURS.get(step.status, "white")
        shown = (
            "Running (service)"
            if step.service and step.status == "Succeeded" and step.message.startswith("service running")
            else step.status
        )
        message = step.message
        if said and step.status == "Failed" and said.startswith(f"step {step.name} failed") and said.endswith(message):
            message = "(the Message above)"
        table.add_row(step.name, f"[{colour}]{shown}[/{colour}]", _duration(step.started_at, step.finished_at), message)
    return table


def summary_lines(info: WorkflowInfo) -> list[str]:
    """What a user wants after a run: each step's outputs (metrics, versions, URLs), and a predict command to try."""
    lines = []
    width = max((len(s.name) for s in info.steps), default=0) + 2
    for step in info.steps:
        shown = {
            k: v
            for k, v in step.outputs.items()
            if isinstance(v, str | int | float | bool) and k != "pid" and not k.endswith("-digest")
        }  # in -o json
        if step.status in DONE and shown:
            values = "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
            lines.append(f"{step.name + ':':<{width}}{values}")
    lines += try_lines(info, width)
    return lines


def try_lines(info: WorkflowInfo, width: int = 0) -> list[str]:
    """The `trainflow predict` command that asks the run's model server (gRPC, else REST) about its test split."""
    from trainflow.workflows.endpoints import dataset, model_server  # `trainflow list` shows no server

    server = model_server(info)
    address = server and (server.grpc or server.rest)
    if server is None or not address:
        return []
    data = dataset(info)
    examples = f"--data-dir {shlex.quote(data)} --num 10" if data else "FILE"
    protocol = "" if server.grpc else " --protocol rest"
    named = f" --model-name {shlex.quote(server.model_name)}" if server.model_name != DEFAULT_MODEL_NAME else ""
    return [f"{'Try:':<{width}}trainflow predict --server {shlex.quote(address)}{protocol}{named} {examples}"]


def step_progress(backend: Backend, info: WorkflowInfo) -> tuple[str, int, int | None] | None:
    """(step, done, total) from the last progress event of a running step that reports progress."""
    for step in info.steps:
        if step.status == RUNNING:
            events = backend.progress(info.name, step.name)
            if events:
                return step.name, int(events[-1]["step"]), events[-1].get("total")
    return None


def follow(backend: Backend, name: str, live: bool = True) -> WorkflowInfo:
    """Poll the workflow until it ends, drawing it live when `live`; returns its final state."""
    info = backend.get(name)
    if live:
        info = _draw_live(backend, name, info)
        console.print(f"Status: {info.status}" + (f"  ({info.message})" if info.message else ""))
        for line in summary_lines(info):
            console.print(line, soft_wrap=True, markup=False)  # URLs and commands stay whole, to copy
        return info
    while info.status not in FINISHED:
        time.sleep(backend.poll_seconds)
        info = backend.get(name)
    print_workflow(info, backend)
    return info


def _draw_live(backend: Backend, name: str, info: WorkflowInfo) -> WorkflowInfo:
    """The step table (and the training's progress bar once it reports) redrawn until the workflow ends."""
    from rich.console import Group
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = progress.add_task("steps", total=None)
    with Live(console=stdout_console(), refresh_per_second=4) as view:
        while True:
            done = step_progress(backend, info)
            if done:
                progress.update(task, description=done[0], completed=done[1], total=done[2])
            view.update(Group(step_table(info), progress) if done else step_table(info))
            if info.status in FINISHED:
                return info
            time.sleep(backend.poll_seconds)
            info = backend.get(name)


def age(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    return age(time.time() - ((end or time.time()) - start))


def print_workflow(info: WorkflowInfo, backend: Backend) -> None:
    """A workflow as `get` shows it: header, steps, outputs, and the failed steps' last log lines."""
    console.print(
        f"Name:      {info.name}\nPipeline:  {info.pipeline}\nStatus:    {info.status}"
        + (f"\nMessage:   {info.message}" if info.message else "")
        + f"\nDuration:  {duration(info.started_at, info.finished_at)}",
        soft_wrap=True,  # a long message wraps where the terminal does, never cut into lines
        markup=False,
    )
    console.print(step_table(info, info.message))
    for line in summary_lines(info):
        console.print(line, soft_wrap=True, markup=False)  # URLs and commands stay whole, to copy
    for line in failed_log_tails(info, backend):
        console.print(line, soft_wrap=True, markup=False)


def failed_log_tails(info: WorkflowInfo, backend: Backend, lines: int = 15) -> list[str]:
    """The last log lines of each failed step (what a user reads first to see why).

    Attempts that printed the same lines show once, as `--- attempts 1-3`; the error line the Message
    above already says is left out.
    """
    found = []
    for step in info.steps:
        if step.status == "Failed":
            try:
                logged = [line.removeprefix(step.name + ": ") for line in backend.logs(info.name, step.name)]
            except WorkflowError:  # its pods are gone (cluster): the message above is what there is
                continue
            tail = [
                line
                for line in collapse_attempts(logged)
                if not (line.startswith("error: ") and line.removeprefix("error: ") in info.message)
            ][-lines:]
            if tail:
                found += [f"Last lines of {step.name}:", *(f"  {line}" for line in tail)]
    return found


_ATTEMPT = re.compile(r"--- attempt (\d+): (.*)")


def collapse_attempts(lines: list[str]) -> list[str]:
    """A step's log with consecutive attempts that printed the same lines (a retried step failing alike) shown once."""
    blocks: list[tuple[list[int], str, list[str]]] = []  # (attempt numbers, command, lines)
    head: list[str] = []
    for line in lines:
        marker = _ATTEMPT.fullmatch(line)
        if marker:
            blocks.append(([int(marker[1])], marker[2], []))
        elif blocks:
            blocks[-1][2].append(line)
        else:
            head.append(line)
    merged: list[tuple[list[int], str, list[str]]] = []
    for block in blocks:
        if merged and merged[-1][1:] == block[1:]:
            merged[-1][0].append(block[0][0])
        else:
            merged.append(block)
    out = list(head)
    for numbers, command, body in merged:
        which = f"attempt {numbers[0]}" if len(numbers) == 1 else f"attempts {numbers[0]}-{numbers[-1]}, alike"
        out += [f"--- {which}: {command}", *body]
    return out
