"""MkDocs hook: the reference pages, generated from the code at every build so they cannot drift.

- reference/cli.md: every command, subcommand and option, read from the click objects;
- reference/pipeline-api.md: `trainflow.pipelines`' public names, their signatures and docstrings;
- reference/pipeline-schema.md: the YAML pipeline schema (`trainflow/pipelines/pipeline.schema.json`);
- reference/builtin-pipelines.md: the built-in pipelines' parameters and steps, from their spec;
- reference/metrics.md: the model server's Prometheus metrics, from its registry;
- benchmarks.md: `benchmarks/README.md`, included as it is.

None of these files is committed: `mkdocs build` (and `mkdocs serve`) write them into the site.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

import click
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: MkDocsConfig) -> Files:
    pages = {
        "reference/cli.md": cli_page,
        "reference/pipeline-api.md": api_page,
        "reference/pipeline-schema.md": schema_page,
        "reference/builtin-pipelines.md": builtin_page,
        "reference/metrics.md": metrics_page,
        "benchmarks.md": benchmarks_page,
    }
    for uri, make in pages.items():
        files.append(File.generated(config, uri, content=make()))
    return files


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# --- the CLI ------------------------------------------------------------------------------------------------------


def cli_page() -> str:
    from trainflow.cli.main import cli

    ctx = click.Context(cli, info_name="trainflow")
    out = [
        "# CLI reference",
        "",
        "Generated from the commands themselves at every docs build: `trainflow COMMAND --help` says the same.",
        "Every command takes `-h`/`--help`. Internal commands (hidden from `--help`) are listed last.",
        "",
        *_command("trainflow", cli, ctx, level=2),
    ]
    return "\n".join(out) + "\n"


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None:
            found.append((name, command))
    return sorted(found, key=lambda item: (item[1].hidden, item[0]))


def _command(path: str, command: click.Command, ctx: click.Context, level: int) -> list[str]:
    sub = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=ctx)
    usage = " ".join(command.collect_usage_pieces(sub))
    lines = []
    if path != "trainflow":
        hidden = " (internal)" if command.hidden else ""
        lines += [f"{'#' * level} `{path}`{hidden}", ""]
    help_text = inspect.cleandoc(command.help or command.short_help or "")
    lines += [help_text, "", "```text", f"{path} {usage}".rstrip(), "```", ""]
    rows = []
    for param in command.get_params(sub):
        if isinstance(param, click.Option) and param.name != "help":
            rows.append(_option_row(param, sub))
        elif isinstance(param, click.Argument):
            rows.append(f"| `{_cell(param.human_readable_name)}` | argument | {_cell(param.type.name)} | | |")
    if rows:
        lines += ["| option | type | default | env | help |", "|---|---|---|---|---|", *rows, ""]
    if isinstance(command, click.Group):
        for name, child in _commands(command, sub):
            lines += _command(f"{path} {name}", child, sub, min(level + 1, 4) if path != "trainflow" else level)
    return lines


def _option_row(option: click.Option, ctx: click.Context) -> str:
    names = ", ".join(f"`{n}`" for n in [*option.opts, *option.secondary_opts])
    kind = "flag" if option.is_flag else option.type.name
    if isinstance(option.type, click.Choice):
        kind = " | ".join(str(c) for c in option.type.choices)
    default = ""
    value = option.default
    shown = option.show_default is not False and value is not None and not callable(value)
    shown = shown and type(value).__name__ != "Sentinel"  # click's UNSET: no default
    if shown and not (option.is_flag and value is False) and value not in ((), ""):
        default = f"`{value}`"
    env = f"`{option.envvar}`" if isinstance(option.envvar, str) else ""
    return f"| {names} | {_cell(kind)} | {default} | {env} | {_cell(option.help or '')} |"


# --- the pipeline API -----------------------------------------------------------------------------------------------


def api_page() -> str:
    import trainflow.pipelines as api

    out = [
        "# Pipeline API reference",
        "",
        "`trainflow.pipelines`: what a pipeline file imports. Generated from the signatures and docstrings at every",
        "docs build. The guide is [Your own pipeline](../how-to/your-own-pipeline.md).",
        "",
    ]
    for name in api.__all__:
        obj = getattr(api, name)
        out += _api_entry(name, obj)
    return "\n".join(out) + "\n"


def _api_entry(name: str, obj: Any) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        try:
            signature = str(inspect.signature(obj))
        except (TypeError, ValueError):
            signature = "(...)"
        kind = "exception" if issubclass(obj, BaseException) else "class"
        lines = [f"## `{name}`", "", f"*{kind}*", "", "```text", f"{name}{_short(signature)}", "```", "", doc, ""]
        if dataclasses.is_dataclass(obj):
            fields = [f for f in dataclasses.fields(obj) if not f.name.startswith("_")]
            if fields:
                lines += ["| field | type |", "|---|---|"]
                lines += [f"| `{f.name}` | `{_cell(f.type)}` |" for f in fields]
                lines.append("")
        for attr, member in sorted(vars(obj).items()):
            if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            member_doc = inspect.getdoc(member)
            if not member_doc:
                continue
            if isinstance(member, property):
                lines += [f"- `{name}.{attr}` (property): {_cell(member_doc)}"]
            else:
                lines += [f"- `{name}.{attr}{_short(str(inspect.signature(member)))}`: {_cell(member_doc)}"]
        return [*lines, ""]
    if callable(obj):
        return [f"## `{name}`", "", "```text", f"{name}{_short(str(inspect.signature(obj)))}", "```", "", doc, ""]
    return [f"## `{name}`", "", f"A constant: `{obj!r}`.", "", doc, ""]


def _short(signature: str) -> str:
    """A signature without module prefixes (`trainflow.pipelines.refs.ParamRef` reads `ParamRef`)."""
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Z]\w*)", r"\1", signature)


# --- the YAML schema ----------------------------------------------------------------------------------------------


def schema_page() -> str:
    path = ROOT / "src" / "trainflow" / "pipelines" / "pipeline.schema.json"
    schema = json.loads(path.read_text())
    out = [
        "# Pipeline YAML schema",
        "",
        "A YAML pipeline (`trainflow submit my-pipeline.yaml`) is checked against this JSON Schema, shipped in the",
        "package as `trainflow/pipelines/pipeline.schema.json` (point your editor's YAML plugin at it). Generated",
        "from that file at every docs build.",
        "",
        *_schema_object("The pipeline", schema, level=2),
    ]
    for name, definition in sorted((schema.get("$defs") or schema.get("definitions") or {}).items()):
        out += _schema_object(f"`{name}`", definition, level=2)
    out += ["## The whole schema", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(out) + "\n"


def _schema_type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return f"`{spec['$ref'].rsplit('/', 1)[-1]}`"
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    for key in ("oneOf", "anyOf"):
        if key in spec:
            return " or ".join(_schema_type(s) for s in spec[key])
    kind = spec.get("type", "")
    if kind == "array" and isinstance(spec.get("items"), dict):
        return f"list of {_schema_type(spec['items'])}"
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _schema_object(title: str, spec: dict[str, Any], level: int) -> list[str]:
    lines = [f"{'#' * level} {title}", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    properties = spec.get("properties") or {}
    required = set(spec.get("required") or ())
    if properties:
        lines += ["| key | type | required | meaning |", "|---|---|---|---|"]
        for key, value in properties.items():
            lines.append(
                f"| `{key}` | {_cell(_schema_type(value))} | {'yes' if key in required else ''} "
                f"| {_cell(value.get('description', ''))} |"
            )
        lines.append("")
    elif "type" in spec or "oneOf" in spec or "anyOf" in spec or "enum" in spec:
        lines += [f"Type: {_schema_type(spec)}", ""]
    return lines


# --- the built-in pipelines ---------------------------------------------------------------------------------------


def builtin_page() -> str:
    from trainflow.pipelines.builtin import PIPELINES

    out = [
        "# Built-in pipelines",
        "",
        "Their parameters and steps, generated from their spec (`trainflow.pipelines.builtin`) at every docs build.",
        "`trainflow pipeline show NAME` prints the same. Give a value with `-p NAME=VALUE` on `submit`, `retry`,",
        "`resubmit` and `compile`; `trainflow run` sets the common ones from its own options.",
        "",
    ]
    for name, pipeline in PIPELINES.items():
        out += [f"## `{name}`", "", pipeline.description or "", "", "### Parameters", ""]
        out += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        for p in pipeline.params:
            kind = p.type + (f" ({', '.join(p.choices)})" if getattr(p, "choices", None) else "")
            default = "*required*" if p.default is None else f"`{p.default}`" if p.default != "" else ""
            out.append(f"| `{p.name}` | {_cell(kind)} | {_cell(default)} | {_cell(p.help)} |")
        out += ["", "### Steps", "", "| step | kind | after | outputs |", "|---|---|---|---|"]
        for step in pipeline.steps:
            after = ", ".join(f"`{d}`" for d in _depends(step))
            outputs = ", ".join(f"`{o}`" for o in step.declared_outputs())
            out.append(f"| `{step.name}` | {type(step).__name__} | {after} | {outputs} |")
        out.append("")
    return "\n".join(out) + "\n"


def _depends(step: Any) -> list[str]:
    try:
        return list(step.upstream())
    except AttributeError:
        return list(getattr(step, "depends", ()) or ())


# --- metrics ------------------------------------------------------------------------------------------------------


def metrics_page() -> str:
    from trainflow.serving.metrics import ServingMetrics

    registry = ServingMetrics().registry
    out = [
        "# Metrics",
        "",
        "The model server's Prometheus metrics at `GET /metrics` on its REST port, generated from its registry at",
        "every docs build. A histogram adds `_bucket`, `_sum` and `_count` series; a counter `_total`.",
        "",
        "| metric | kind | labels | meaning |",
        "|---|---|---|---|",
    ]
    for collector in sorted(registry._collector_to_names, key=lambda c: getattr(c, "_name", "")):
        name = getattr(collector, "_name", "")
        kind = type(collector).__name__.lower()
        labels = ", ".join(f"`{label}`" for label in getattr(collector, "_labelnames", ()))
        out.append(f"| `{name}` | {kind} | {labels} | {_cell(getattr(collector, '_documentation', ''))} |")
    out += [
        "",
        "Training writes its figures to the run's `metrics.json` (`accuracy`, `loss`, `global_step`,",
        "`examples_per_sec`, `train_seconds`, `precision`, ...) and TensorBoard events under `<train dir>/logs/`",
        "(`train/loss`, `train/accuracy`, and with `--eval-every` `eval/loss`, `eval/accuracy`).",
        "",
    ]
    return "\n".join(out) + "\n"


# --- benchmarks ---------------------------------------------------------------------------------------------------


def benchmarks_page() -> str:
    text = (ROOT / "benchmarks" / "README.md").read_text()
    note = "*Included from `benchmarks/README.md` at every docs build; the scripts are in `benchmarks/`.*\n\n"
    first, _, rest = text.partition("\n")
    # links from benchmarks/ to the repository's files become code spans (the site holds only docs/)
    rest = re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`\2`)", rest)
    return f"{first}\n\n{note}{rest}"
