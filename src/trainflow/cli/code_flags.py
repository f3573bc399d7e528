"""Code packages on the command line: `--code-package URL` (compile, submit) and `trainflow code-package`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from trainflow.pipelines import Pipeline
    from trainflow.workflows.code_packages import Shipped

code_package_option = click.option(
    "--code-package",
    default=None,
    metavar="URL",
    help="Run the pipeline file's own code from a package: a store URL to pack its folder to "
    "(URL/code/SHA256.tar.gz, uploaded once), or the URL of a package uploaded before.",
)


def pipeline_folder(pipeline: str) -> Path | None:
    """The folder of a pipeline file (None for a built-in pipeline, which has no code of its own)."""
    from trainflow.workflows import PIPELINES

    return None if pipeline in PIPELINES else Path(pipeline).resolve().parent


def fetched(url: str | None) -> list[str] | None:
    """The import path of the package `url` names (fetched, verified, unpacked); None for a store URL or none."""
    if not url:  # most runs: nothing to import, not even the packages' module
        return None
    from trainflow.settings import trainflow_home
    from trainflow.workflows.code_packages import digest_of, fetch

    if not digest_of(url):
        return None
    return [str(fetch(url, trainflow_home()))]


def shipped(
    pipeline: str, spec: Pipeline, values: dict[str, str], given: str | None, send: bool = True
) -> Shipped | None:
    """The run's code package: `given` (packed and sent if a store URL), else under a shared artifacts_url."""
    from trainflow.workflows import WorkflowError, resolve_params
    from trainflow.workflows.code_packages import artifacts_base, digest_of, ship

    folder = pipeline_folder(pipeline)
    if folder is None:
        if given and not digest_of(given):
            raise WorkflowError(f"{pipeline} is built in and has no folder to pack: --code-package takes a package URL")
        return ship(Path("."), given) if given else None
    where = given or artifacts_base(spec, resolve_params(spec, dict(values)))
    return ship(folder, where, send) if where else None


@click.command("code-package")
@click.argument("pipeline", metavar="FILE")
@click.option("--to", "where", required=True, metavar="URL", help="Store URL: the package goes to URL/code/.")
def code_package_command(pipeline: str, where: str) -> None:
    """Pack the folder of pipeline FILE (respecting .trainflowignore/.gitignore), upload it once, print its URL."""
    from trainflow.workflows import WorkflowError
    from trainflow.workflows.code_packages import digest_of, ship

    if digest_of(where):
        raise WorkflowError(f"--to {where} names a package: give the store URL it goes under (e.g. s3://BUCKET/PREFIX)")
    result = ship(Path(pipeline).resolve().parent, where)
    if result.packed is None:  # ship packs whenever `where` names no package
        raise WorkflowError(f"nothing was packed for {pipeline}")
    click.echo(result.url)
    click.echo(f"{len(result.packed.files)} files, {len(result.packed.data)} bytes", err=True)
