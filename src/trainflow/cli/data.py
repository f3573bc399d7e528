"""`trainflow data ...` and the `download-dataset` step: the dataset cache from the command line."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from trainflow.cli.options import outputs_option
from trainflow.cli.output import (
    console,
    emit,
    err_console,
    human_bytes,
    human_time,
    write_outputs,
)
from trainflow.datasets import (
    DatasetCache,
    DatasetDescriptor,
    DatasetError,
    FormatOptions,
    SyncObserver,
    SyncResult,
    default_name,
    parse_image_size,
)
from trainflow.datasets.descriptor import FORMATS, read_descriptor
from trainflow.settings import trainflow_home
from trainflow.storage import SourceUnreachable, StorageOptions, mirror_dir

endpoint_option = click.option(
    "--aws-endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL or S3_ENDPOINT)."
)
region_option = click.option("--aws-region", default=None, help="S3 region (default: AWS_REGION).")
format_option = click.option(
    "--format",
    "data_format",
    type=click.Choice(("auto", *FORMATS)),
    default=None,
    help="The dataset's format (default, or auto: detected from the file layout).",
)
label_column_option = click.option(
    "--label-column", default=None, help="CSV/Parquet: the label column (default: label, target, class or y)."
)
image_size_option = click.option(
    "--image-size", default=None, help="Image folders: resize every image to N or HxW (default: the most common size)."
)


def format_options(data_format: str | None, label_column: str | None, image_size: str | None) -> FormatOptions:
    """The format options of `data sync` and the download-dataset step; empty strings (and format auto) mean the default."""
    fmt = None if data_format in (None, "", "auto") else data_format
    return FormatOptions(fmt, label_column or None, parse_image_size(image_size or None))


def dataset_cache(endpoint: str | None = None, region: str | None = None) -> DatasetCache:
    return DatasetCache(trainflow_home() / "cache" / "datasets", StorageOptions.from_env(endpoint, region))


class ProgressObserver(SyncObserver):
    """A rich progress bar: bytes, rate and files, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.files = 0
        self.done = 0
        self.lock = threading.Lock()

    def planned(self, files: int, total_bytes: int) -> None:
        self.files = files
        if files:
            self.task = self.progress.add_task(f"files 0/{files}", total=total_bytes)

    def bytes_done(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def file_done(self, name: str) -> None:
        with self.lock:
            self.done += 1
            if self.task is not None:
                self.progress.update(self.task, description=f"files {self.done}/{self.files}")


def _progress() -> Progress:
    # Off when stderr is not a terminal: a bar there is noise, and rich would still end it with a blank line.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def _summary(result: SyncResult) -> str:
    files = len(result.downloaded) + len(result.unchanged)
    text = f"{result.name}: {files} files, downloaded {human_bytes(result.bytes_downloaded)}"
    if result.unchanged:
        text += f", {len(result.unchanged)} up to date ({human_bytes(result.bytes_saved)} from cache)"
    if result.repaired:
        text += f", repaired {', '.join(result.repaired)}"
    if result.offline:
        text += " [source unreachable: using the cached copy]"
    text += f" -> {result.path}"
    if result.descriptor is not None:
        text += f"\n{result.name}: {describe_line(result.descriptor)}"
    return text


def describe_line(d: DatasetDescriptor) -> str:
    """The descriptor in one line: format, example shape and dtype, classes, counts."""
    shown = ", ".join(d.class_names[:8]) + (", ..." if d.num_classes > 8 else "")
    shape = "x".join(str(n) for n in d.input_shape)
    return (
        f"{d.format} dataset, examples {shape} {d.dtype}, {d.num_classes} classes ({shown}), "
        f"{d.train_count} train / {d.test_count} test"
    )


def sync(
    source: str,
    name: str,
    files: tuple[str, ...] | None,
    endpoint: str | None,
    region: str | None,
    verify: bool = False,
    options: FormatOptions | None = None,
) -> SyncResult:
    cache = dataset_cache(endpoint, region)
    with _progress() as progress:
        return cache.ensure(source, name, files or None, ProgressObserver(progress), verify=verify, options=options)


@click.group()
def data() -> None:
    """Upload datasets to an object store and manage the node's dataset cache."""


@data.command()
@click.argument("local_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("url")
@click.option(
    "--delete",
    is_flag=True,
    help="Also delete the objects under URL that LOCAL_DIR lacks (left from an earlier upload), once all is uploaded.",
)
@endpoint_option
@region_option
def upload(local_dir: Path, url: str, delete: bool, aws_endpoint_url: str | None, aws_region: str | None) -> None:
    """Mirror LOCAL_DIR to URL (s3://bucket/prefix/), creating the bucket if it is missing."""
    with _progress() as progress:
        task = progress.add_task("uploading", total=None)
        result = mirror_dir(
            local_dir,
            url,
            StorageOptions.from_env(aws_endpoint_url, aws_region),
            lambda n: progress.advance(task, n),
            delete=delete,
        )
    extra = len(result.extra)
    if result.deleted:
        left = f", deleted {extra} not in {escape(str(local_dir))}" if extra else ""
    else:
        left = f"; {extra} objects there are not in {escape(str(local_dir))} (--delete removes them)" if extra else ""
    console.print(
        f"{escape(url)}: uploaded {len(result.uploaded)} files ({human_bytes(result.bytes_uploaded)}), "
        f"{len(result.unchanged)} already there{left}"
    )


@data.command("sync")
@click.argument("source")
@click.option("--name", default=None, help="Cache name (default: derived from SOURCE).")
@click.option("--file", "files", multiple=True, help="Only these files (required for http(s) sources). Repeatable.")
@click.option("--mnist", is_flag=True, help="Shorthand for the four MNIST IDX files.")
@click.option("--verify", is_flag=True, help="Re-hash every cached file, not only those whose size or mtime changed.")
@format_option
@label_column_option
@image_size_option
@endpoint_option
@region_option
def sync_command(
    source: str,
    name: str | None,
    files: tuple[str, ...],
    mnist: bool,
    verify: bool,
    data_format: str | None,
    label_column: str | None,
    image_size: str | None,
    aws_endpoint_url: str | None,
    aws_region: str | None,
) -> None:
    """Sync SOURCE into the dataset cache and describe it; unchanged files are not downloaded again."""
    name = default_name(source) if name is None else name  # an explicit empty name is refused, not replaced
    options = format_options(data_format, label_column, image_size)
    if mnist:
        from trainflow.datasets.mnist import ALL_FILES  # numpy: loaded beside the copies for a sync without --mnist

        files = ALL_FILES
    result = sync(source, name, files, aws_endpoint_url, aws_region, verify, options)
    console.print(_summary(result), markup=False)


@data.command("ls")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
def ls(output: str | None) -> None:
    """List cached datasets."""
    cache = dataset_cache()
    rows: list[dict[str, Any]] = []
    for name in cache.names():
        try:
            manifest = cache.manifest(name)
            descriptor = read_descriptor(cache.path(name))
        except DatasetError:  # one damaged dataset must not hide the others
            rows.append({"name": name, "source": None, "files": None, "size": None, "last_sync": None, "damaged": True})
            continue
        if manifest is not None:
            rows.append(
                {
                    "name": name,
                    "source": manifest.source,
                    "files": len(manifest.files),
                    "size": manifest.total_size,
                    "last_sync": manifest.stats.last_sync,
                    "format": descriptor.format if descriptor else None,
                }
            )
    if output:
        emit(rows, output)
        return
    table = Table("NAME", "SOURCE", "FORMAT", "FILES", "SIZE", "LAST SYNC", box=None)
    for row in rows:
        if row.get("damaged"):
            table.add_row(row["name"], f"damaged: see trainflow data describe {row['name']}", "-", "-", "-", "-")
        else:
            table.add_row(
                row["name"],
                escape(row["source"]),
                row["format"] or "-",
                str(row["files"]),
                human_bytes(row["size"]),
                human_time(row["last_sync"]),
            )
    console.print(table if rows else "no cached datasets")


@data.command()
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
def describe(name: str, output: str | None) -> None:
    """Show a cached dataset: its descriptor, source, files, sizes, checksums, last sync, bytes saved."""
    cache = dataset_cache()
    manifest = cache.manifest(name)
    if manifest is None:
        raise DatasetError(
            f"no cached dataset '{name}': see `trainflow data ls`, or `trainflow data sync SRC --name {name}`"
        )
    descriptor = read_descriptor(cache.path(name))
    if output:
        emit({**manifest.to_dict(), "descriptor": descriptor.to_dict() if descriptor else None}, output)
        return
    stats = manifest.stats
    console.print(f"[bold]{name}[/bold]  source {escape(manifest.source)}")
    _print_descriptor(descriptor)
    console.print(
        f"last sync {human_time(stats.last_sync)} ({human_bytes(stats.last_sync_bytes)} downloaded); "
        f"{stats.syncs} syncs, {human_bytes(stats.bytes_downloaded)} downloaded in all, "
        f"{human_bytes(stats.bytes_saved)} saved by cache hits"
    )
    table = Table("FILE", "SIZE", "SHA256", "SOURCE VERSION", "FETCHED", box=None)
    for fname, entry in sorted(manifest.files.items()):
        table.add_row(
            escape(fname), human_bytes(entry.size), entry.sha256, escape(entry.source_tag), human_time(entry.fetched_at)
        )
    console.print(table)


def _print_descriptor(d: DatasetDescriptor | None) -> None:
    if d is None:
        console.print(
            f"format: not recognised (declare it: trainflow data sync SOURCE --format {'|'.join(FORMATS)})",
            markup=False,
        )
        return
    norm = d.normalization
    if d.kind == "image":
        how = f"pixels x {norm.scale:.6g}, then (x - mean) / std per channel: mean {list(norm.mean)}, std {list(norm.std)}"
    else:
        how = f"(x - mean) / std per feature, from the training split ({len(norm.mean)} features)"
    lines = [
        f"format       {d.format} ({d.kind})",
        f"input shape  {'x'.join(str(n) for n in d.input_shape)} {d.dtype}",
        f"classes      {d.num_classes}: {', '.join(d.class_names[:20])}{', ...' if d.num_classes > 20 else ''}",
        f"examples     {d.train_count} train, {d.test_count} test",
        f"normalize    {how}",
        f"arrays       {d.arrays.x_train}, {d.arrays.y_train}, {d.arrays.x_test}, {d.arrays.y_test}",
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)


@data.command()
@click.argument("name")
def rm(name: str) -> None:
    """Remove a cached dataset."""
    if not dataset_cache().remove(name):
        raise DatasetError(f"no cached dataset '{name}': see `trainflow data ls`")
    console.print(f"removed {name}")


LOCAL_COPY_HINT = (
    "to use a local copy of the dataset instead: `trainflow run --s3-data-url DIR`, or `-p s3-data-url=DIR` "
    "with submit, retry or resubmit"
)


@click.command("download-dataset")
@click.option("--s3-data-url", required=True, help="Where the dataset is: s3://, http(s)://, file:// or a path.")
@click.option("--dataset-name", default=None, help="Cache name (default: derived from the URL).")
@click.option(
    "--file",
    "files",
    multiple=True,
    help="Only these files (default: all of them; the four MNIST files for a source that cannot be listed). Repeatable.",
)
@format_option
@label_column_option
@image_size_option
@endpoint_option
@region_option
@outputs_option
def download_dataset_step(
    s3_data_url: str,
    dataset_name: str | None,
    files: tuple[str, ...],
    data_format: str | None,
    label_column: str | None,
    image_size: str | None,
    aws_endpoint_url: str | None,
    aws_region: str | None,
    outputs: str | None,
) -> None:
    """Pipeline step: sync --s3-data-url into the node's dataset cache and describe it."""
    from trainflow.datasets.download import download_dataset, step_outputs

    options = format_options(data_format, label_column, image_size)
    try:
        with _progress() as progress:
            cache = dataset_cache(aws_endpoint_url, aws_region)
            result = download_dataset(cache, s3_data_url, dataset_name, files, ProgressObserver(progress), options)
    except SourceUnreachable as exc:  # offline, most often: say how to train on a copy already here
        raise SourceUnreachable(f"{exc.message}; {LOCAL_COPY_HINT}") from None
    console.print(_summary(result), markup=False)
    write_outputs(outputs, step_outputs(result))
