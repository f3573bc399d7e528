"""How the CLI prints: rich for people, JSON/YAML for machines."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import click

from trainflow.settings import quiet_noisy_loggers

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def stdout_console() -> Console:
    """The console on standard output, made on first use: a step that prints plain lines never imports rich."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    # piped: lines as long as they are (tables, checksums, messages stay whole), no padding after them
    return Console(highlight=False, width=PIPED_WIDTH, file=_Unpadded())  # type: ignore[arg-type]


@functools.cache
def stderr_console() -> Console:
    """The console on standard error, made on first use."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class _OnFirstUse:
    """Stands for the console `make` returns, made when a command first prints (what `from ... import console` binds).

    Pass `stdout_console()` / `stderr_console()` themselves where rich wants a Console (a Live, a Progress).
    """

    def __init__(self, make: Callable[[], Console]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)


console = cast("Console", _OnFirstUse(stdout_console))
err_console = cast("Console", _OnFirstUse(stderr_console))

PIPED_WIDTH = 1000


class _Unpadded:
    """Standard output (whatever `sys.stdout` is when written to) without the spaces rich pads lines with."""

    def write(self, text: str) -> int:
        return sys.stdout.write(_TRAILING_SPACES.sub("\n", text))

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return sys.stdout.fileno()


_TRAILING_SPACES = re.compile(r" +\n")


def setup_logging(level: str) -> None:
    """Log records go to stderr; with rich when it is a terminal, plain lines otherwise."""
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(console=stderr_console(), show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_noisy_loggers()
    # Its retry warnings repeat, once per attempt, what the one error after the last attempt says.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under their headers in left-aligned columns, as `argo list` prints them (rich's Table measures and wraps
    every cell: seconds for a thousand workflows)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def emit(data: Any, fmt: str) -> None:
    """Print `data` as json or yaml for machines."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=True), nl=False)
    else:
        raise click.BadParameter(f"unknown output format {fmt!r}: use json or yaml")


def write_outputs(path: str | None, outputs: dict[str, Any]) -> None:
    """Write a step's outputs for the runner that started it.

    A file path gets one JSON object (the local runner reads it); a path ending in '/' gets one plain
    file per key plus `outputs.json` (Argo reads each key with `valueFrom.path`).
    """
    if not path:
        return
    from pathlib import Path

    from trainflow.pipelines.keys import check_keys
    from trainflow.storage.atomic import atomic_write_bytes

    check_keys("output", outputs)  # each key becomes a file name in the outputs folder

    # No fsync: the runner (Argo's wait container) reads them on this machine as soon as the step exits;
    # the rename alone keeps it from reading a half-written file.
    whole = json.dumps(outputs, indent=2, sort_keys=True).encode()
    if not path.endswith("/"):
        atomic_write_bytes(Path(path), whole, sync=False)
        return
    # outputs.json first: a runner polling the folder reads it whole (typed) before any per-key file.
    atomic_write_bytes(Path(path) / "outputs.json", whole, sync=False)
    for key, value in outputs.items():
        atomic_write_bytes(
            Path(path) / key, (value if isinstance(value, str) else json.dumps(value)).encode(), sync=False
        )
