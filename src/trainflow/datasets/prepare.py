"""Turn a synced dataset's files into checked arrays and a descriptor, once per content, atomically.

Runs under the dataset's lock at the end of a sync. The arrays a format needs to rewrite (decoded
images, tables, NPZ members) go to `.prepared/<digest>/`, built in a temp folder renamed into place;
the descriptor is written last, so a reader sees the old dataset or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainflow.datasets.array_files import open_array
from trainflow.datasets.arrays import ROLES, Built, build_idx, build_npy, build_npz
from trainflow.datasets.checks import (
    channels_first,
    class_names,
    finite_features,
    input_shape,
    integer_labels,
    normalization,
)
from trainflow.datasets.descriptor import (
    ArrayFiles,
    DatasetDescriptor,
    read_descriptor,
)
from trainflow.datasets.errors import DataFormatError, DatasetError
from trainflow.datasets.formats import FormatOptions, detect
from trainflow.datasets.layout import DESCRIPTOR_NAME, cached_path
from trainflow.datasets.manifest import Manifest

PREPARED_DIR = ".prepared"


def build_table(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    from trainflow.datasets.tables import build_table  # pyarrow takes ~70 MB: loaded for tables only

    return build_table(directory, names, options, work)


def build_images(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    from trainflow.datasets.images import build_images  # Pillow and multiprocessing: ~0.05 s of CPU, images only

    return build_images(directory, names, options, work)


_DIGEST_LINES = 4096  # files hashed per piece of the source digest
_BUILDERS: dict[str, Callable[[Path, Sequence[str], FormatOptions, Path], Built]] = {
    "idx": build_idx,
    "npy": build_npy,
    "npz": build_npz,
    "images": build_images,
    "csv": build_table,
    "parquet": build_table,
}


def prepare(
    directory: Path, manifest: Manifest, options: FormatOptions, settle: Callable[[], None] | None = None
) -> DatasetDescriptor | None:
    """The dataset's descriptor, built now unless the files and options are those it was built from.

    `settle`, when given, completes the manifest's checksums (files hashed beside the build). Where a first build is
    sure to be needed, the dataset is built without asking whether it is current, and `settle` is called before the
    digest is taken; otherwise first.
    None when the format is neither declared nor recognised (the cache then holds plain files).
    DataFormatError (one line naming the file and the fix) when the content cannot be used.
    """
    if settle is not None and not _builds_beside(directory, manifest, options):
        try:
            settle()
        except BaseException:
            (directory / DESCRIPTOR_NAME).unlink(missing_ok=True)  # its files may be other bytes now
            raise
        settle = None
    if settle is None:
        current = _current(directory, _digest(manifest, options))
        if current is not None:
            _prune(directory, keep=current.source_digest[:16])
            return current
    (directory / DESCRIPTOR_NAME).unlink(missing_ok=True)  # the old one describes other files
    names = manifest.files.sorted_names()  # read from the manifest's table: no list of every name
    fmt = detect(names, options)
    if fmt is None:
        _prune(directory, keep=None)
        return None
    prepared = cached_path(directory, PREPARED_DIR)
    prepared.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=prepared, prefix=".tmp-"))
    try:
        manifest.files.spill(work)  # off the heap while the build (and its forked decode workers) runs
        built = _BUILDERS[fmt](directory, names, options, work)
        if settle is not None:  # before the arrays are opened: a gzipped file is unpacked by the key its sha256 gives
            settle()
        digest = _digest(manifest, options)
        descriptor = _describe(directory, fmt, built, work, digest)
        final = prepared / digest[:16]
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    descriptor.save(directory)
    _prune(directory, keep=digest[:16])
    return descriptor


def _builds_beside(directory: Path, manifest: Manifest, options: FormatOptions) -> bool:
    """Whether the dataset is built while its files are hashed: not where a descriptor is there (the bytes fetched
    again may be the same, so it may still be current), a format that is none, or an image folder (its decode forks
    workers, which must not start beside a thread)."""
    if (directory / DESCRIPTOR_NAME).exists():
        return False
    return detect(manifest.files.sorted_names(), options) not in (None, "images")


def describe_plain_folder(directory: Path) -> DatasetDescriptor:
    """The descriptor of a folder of IDX files that was never synced (nothing is written)."""
    try:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
    except OSError as exc:
        raise DatasetError(
            f"cannot read dataset folder {directory} ({exc.strerror or exc}): "
            "sync the dataset first (trainflow data sync)"
        ) from None
    if detect(names, FormatOptions()) != "idx":
        raise DatasetError(
            f"{directory} has no {DESCRIPTOR_NAME} and no IDX files: sync it into the cache first "
            "(trainflow data sync SOURCE --name NAME) and use the cached copy"
        )
    return _describe(directory, "idx", build_idx(directory, names, FormatOptions(), directory), None, "")


def _digest(manifest: Manifest, options: FormatOptions) -> str:
    """The sha256 of the files' names and checksums, one per line, and the options; hashed as it goes (a
    text of every line was ~250 bytes a file at once)."""
    digest = hashlib.sha256()
    items = manifest.files.sorted_items()
    while part := list(itertools.islice(items, _DIGEST_LINES)):
        digest.update("".join(f"{n}\0{e.sha256}\n" for n, e in part).encode("utf-8", "surrogatepass"))
    if not manifest.files:
        digest.update(b"\n")  # as the text of no lines was
    digest.update(options.key().encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _current(directory: Path, digest: str) -> DatasetDescriptor | None:
    try:
        descriptor = read_descriptor(directory)
    except DatasetError:
        return None
    if descriptor is None or descriptor.source_digest != digest:
        return None
    arrays = [getattr(descriptor.arrays, role) for role in ROLES]
    return descriptor if all((directory / a).is_file() for a in arrays) else None


def _prune(directory: Path, keep: str | None) -> None:
    """Drop prepared arrays of earlier contents, and temp folders a killed sync left."""
    prepared = directory / PREPARED_DIR
    if prepared.is_dir():
        for child in prepared.iterdir():
            if child.name != keep:
                shutil.rmtree(child, ignore_errors=True)


def _opened(directory: Path, ref: str | Path) -> np.ndarray:
    """A built array, memory-mapped; DataFormatError naming the source file when it is not a readable array."""
    if isinstance(ref, Path):
        return np.load(ref, mmap_mode="r")
    try:
        return open_array(directory, ref)
    except DataFormatError:
        raise
    except DatasetError as exc:
        reason = str(exc).replace(f"{directory}/", "").split(";")[0].split(": sync")[0]
        raise DataFormatError(f"{ref} cannot be read as an array ({reason}): replace it at the source") from None


def _describe(directory: Path, fmt: str, built: Built, work: Path | None, digest: str) -> DatasetDescriptor:
    def name(role: str) -> str:
        ref = built.arrays[role]
        return f"{PREPARED_DIR}/{digest[:16]}/{ref.name}" if isinstance(ref, Path) else ref

    def label(role: str, ref: str | Path) -> str:
        return built.shown_as.get(role) or (ref.name if isinstance(ref, Path) else ref)

    arrays = {r: _opened(directory, ref) for r, ref in built.arrays.items()}
    names = {r: label(r, ref) for r, ref in built.arrays.items()}
    arrays = channels_first(arrays, work, built)
    shape = input_shape(arrays, names)
    if not built.finite:
        finite_features(arrays, names)
    arrays = integer_labels(arrays, work, built, names)
    classes = built.class_names or class_names(arrays, names)
    return DatasetDescriptor(
        format=fmt,
        input_shape=shape,
        dtype=str(arrays["x_train"].dtype.newbyteorder("=")),
        class_names=classes,
        train_count=int(arrays["y_train"].shape[0]),
        test_count=int(arrays["y_test"].shape[0]),
        normalization=built.normalization or normalization(arrays["x_train"], shape),
        arrays=ArrayFiles(**{role: name(role) for role in ROLES}),
        source_digest=digest,
    )
