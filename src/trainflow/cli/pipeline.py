"""`trainflow pipeline validate|show FILE`: check a pipeline without running it, or draw its DAG and parameters."""

from __future__ import annotations

import click
from rich.table import Table
from rich.tree import Tree

from trainflow.cli.options import parameters_option
from trainflow.cli.output import console


@click.group("pipeline")
def pipeline() -> None:
    """Check or show a pipeline (a built-in name, or a .py/.yaml file)."""


@pipeline.command("validate")
@click.argument("source")
@parameters_option("NAME=VALUE to check as well; repeatable.")
def validate(source: str, params: tuple[str, ...]) -> None:
    """Check SOURCE: its steps, references, conditions, functions and (with -p) parameter values."""
    from trainflow.pipelines.loading import load_pipeline
    from trainflow.workflows import parse_assignments, resolve_params

    spec = load_pipeline(source)  # checks the functions too, with the file's own folder on the path
    resolve_params(spec, parse_assignments(params))
    console.print(f"{source}: pipeline {spec.name} is valid ({len(spec.steps)} steps, {len(spec.params)} parameters)")


@pipeline.command("show")
@click.argument("source")
def show(source: str) -> None:
    """Print SOURCE's parameters and its steps as a tree of what runs after what."""
    from trainflow.pipelines.loading import load_pipeline

    spec = load_pipeline(source)
    console.print(f"[bold]{spec.name}[/bold]" + (f": {spec.description}" if spec.description else ""))
    table = Table("PARAMETER", "TYPE", "DEFAULT", "HELP", box=None)
    for p in spec.params:
        kind = f"choice({', '.join(p.choices)})" if p.type == "choice" else p.type
        table.add_row(
            p.name, kind, "(required)" if p.default is None else p.parse(p.default) if p.default != "" else "", p.help
        )
    console.print(table)
    tree = Tree("steps")
    nodes: dict[str, Tree] = {}
    position = {s.name: i for i, s in enumerate(spec.order())}
    for step in spec.order():
        label = (
            f"{step.name} [dim]({step.kind}"
            + (f", when {step.when}" if step.when else "")
            + (", fan-out" if step.for_each is not None else "")
            + (", not cached" if not step.cacheable else "")
            + ")[/dim]"
        )
        parents = sorted(step.upstream(), key=position.__getitem__)
        parent = nodes[parents[-1]] if parents else tree
        nodes[step.name] = parent.add(
            label + (f" [dim]after {', '.join(parents[:-1])}[/dim]" if len(parents) > 1 else "")
        )
    console.print(tree)
