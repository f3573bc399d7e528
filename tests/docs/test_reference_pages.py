"""The generated reference pages cover the code they are generated from: every command and option, every API name."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import click

from trainflow.cli.main import cli
from trainflow.pipelines import __all__ as API
from trainflow.pipelines.builtin import PIPELINES

ROOT = Path(__file__).resolve().parents[2]


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _every_command(group: click.Group, ctx: click.Context, path: str) -> list[tuple[str, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found += _every_command(command, click.Context(command, info_name=name, parent=ctx), f"{path} {name}")
    return found


def test_the_cli_reference_has_every_command_and_option() -> None:
    page = _hooks().cli_page()
    ctx = click.Context(cli, info_name="trainflow")
    commands = _every_command(cli, ctx, "trainflow")
    assert len(commands) > 30
    for path, command in commands:
        assert f"## `{path}`" in page, path
        for param in command.params:
            if isinstance(param, click.Option):
                assert all(f"`{opt}`" in page for opt in param.opts), (path, param.opts)


def test_the_api_reference_has_every_public_name_and_the_builtin_page_every_parameter() -> None:
    hooks = _hooks()
    api = hooks.api_page()
    assert all(f"## `{name}`" in api for name in API)
    builtin = hooks.builtin_page()
    for pipeline in PIPELINES.values():
        assert all(f"| `{p.name}` |" in builtin for p in pipeline.params), pipeline.name
    schema = json.loads((ROOT / "src" / "trainflow" / "pipelines" / "pipeline.schema.json").read_text())
    assert all(f"| `{key}` |" in hooks.schema_page() for key in schema["properties"])
    assert "trainflow_requests" in hooks.metrics_page()
    assert hooks.benchmarks_page().startswith((ROOT / "benchmarks" / "README.md").read_text().split("\n")[0])


def test_the_exit_codes_page_has_a_row_for_every_code_the_code_defines() -> None:
    import trainflow.errors

    page = (ROOT / "docs" / "reference" / "exit-codes.md").read_text()
    codes = {value for name, value in vars(trainflow.errors).items() if name.endswith("_EXIT_CODE")}
    assert codes >= {2, 69, 143}
    assert all(f"\n| {code} |" in page for code in codes | {0, 1}), codes
