"""The local runner's cache keys: a hash of everything that decides a step's result that the runner can see.

A key covers
- trainflow's version, the step's kind and its command with parameters filled in (parameters marked
  `cache_key=False` left out);
- where it runs: the folder of the pipeline file and the working directory its command starts in (a run's
  own program submitted with `--code-package`: the package's unpacked folder, named by its digest), so
  two projects never share entries;
- the code it runs: every `*.py` file under the pipeline's folder (not entering `.git`, virtualenvs,
  `__pycache__`, `node_modules`, hidden folders or `$TRAINFLOW_HOME`), and for a function found outside
  that folder, its module and the modules beside it in its package. All of the folder's Python rather
  than the imports a parser can follow: dynamic imports (`importlib`, plugins) and the modules a
  Command's script imports count too, without running or parsing user code; an edit to any of them
  re-runs the pipeline's steps;
- the files its command names: every argument (or `--flag=VALUE`, or `file://` URL) that is an
  existing local file, by content; they are read again when the step ends, so a file the step writes
  itself keeps its result reusable while it stays as the step left it;
- `cache_key_files` (paths or globs relative to the pipeline's folder; a folder counts with all its
  files) by content, and `cache_key_env` variables by value;
- for each earlier step it reads or waits for, that step's key and the digests of the artifacts it reads.

It cannot see other environment variables, data read over the network, files a step opens without
naming them, or folders passed by path: give such a step `cache=False`, or add what matters with
`cache_key_files` / `cache_key_env`. Contents are hashed in full (sha256); a memo keyed by each file's
stat in `$TRAINFLOW_HOME/cache/file-digests.db` saves reading unchanged large files again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainflow import __version__
from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.artifacts import DIGEST_SUFFIX
from trainflow.pipelines.digests import DigestMemo, HashFile, file_sha256, tree_digest, walk_files
from trainflow.pipelines.loading import find_module_spec
from trainflow.pipelines.refs import ItemRef, OutputRef, ParamRef, Ref, substitute
from trainflow.storage import StorageError, local_path_of
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.commands import as_text, package_folder

log = logging.getLogger(__name__)
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})
MAX_CODE_FILES = 20_000  # a pipeline folder holding more Python than this is a home or a checkout of the world
_LONGEST_PATH = 4096


class KeyUnavailable(WorkflowError):
    """The runner cannot tell what a step depends on at a bounded cost: it runs without the cache."""


@dataclass(frozen=True)
class StepKey:
    """One step instance's key: what was fixed when it started, and the files it names as they are."""

    fixed: str
    paths: tuple[str, ...]  # command arguments that may name local files
    patterns: tuple[str, ...]  # the step's cache_key_files
    files: str  # the digest of what `paths` and `patterns` name
    folder: Path  # where its command starts: relative `paths` name files there

    @property
    def value(self) -> str:
        return hashlib.sha256(f"{self.fixed}:{self.files}".encode()).hexdigest()


class StepKeys:
    """Makes the keys of one workflow's steps and keeps those of the steps that are done."""

    def __init__(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        folders: Sequence[str],
        home: Path,
        code: Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.values = values
        self.folders = [Path(f).resolve() for f in folders]
        self.cwd = Path.cwd()  # the runner's, which every step process inherits
        self.code = code  # the run's unpacked code package, where its own programs start (commands.package_folder)
        self.home = home.resolve()
        self.memo = DigestMemo(home / "cache" / "file-digests.db")
        self.keys: dict[str, str] = {}  # step -> its key, once all its instances are done
        self._instances: dict[str, str] = {}

    def make(self, step: Step, item: str | None, outputs: Mapping[str, Mapping[str, Any]]) -> StepKey | None:
        """The key an earlier equal run of this instance of `step` was recorded under (None: it runs uncached)."""
        if not step.cacheable:
            return None
        try:
            return self._make(step, item, outputs)
        except KeyUnavailable as exc:
            log.warning("%s runs without the cache: %s", step.name, exc.message)
        except OSError as exc:  # a file of the pipeline's folder went away while it was read
            log.warning("%s runs without the cache: cannot read %s: %s", step.name, exc.filename, exc.strerror)
        return None

    def _make(self, step: Step, item: str | None, outputs: Mapping[str, Mapping[str, Any]]) -> StepKey:
        keyed = [substitute(a, self._keyed_ref(item, outputs)) for a in step.command]
        actual = [substitute(a, self._actual_ref(item, outputs)) for a in step.command]
        folder = package_folder(step, actual, self.code) or self.cwd
        fixed = [
            __version__,
            step.kind,
            keyed,
            sorted(self.keys[d] for d in step.upstream() if d in self.keys),
            [str(f) for f in self.folders],
            str(folder),
            self._code_digest(step),
            [[name, os.environ.get(name)] for name in step.cache_key_env],
            list(step.cache_key_files),
        ]
        paths = tuple(dict.fromkeys(p for a in actual for p in _path_candidates(a)))
        key = StepKey(hashlib.sha256(json.dumps(fixed).encode()).hexdigest(), paths, step.cache_key_files, "", folder)
        return self.after_run(key)

    def after_run(self, key: StepKey) -> StepKey:
        """`key` with the files it names read again (a step may have written them)."""
        found = [*self._named_files(key.paths, key.folder), *self._pattern_files(key.patterns)]
        return replace(key, files=hashlib.sha256(json.dumps(found).encode()).hexdigest())

    def record(self, step: str, instance: str, instances: Sequence[str], key: str) -> None:
        """Note a done instance's key; once all of a step's instances are done, the step's key is theirs."""
        self._instances[instance] = key
        if all(i in self._instances for i in instances):
            found = [self._instances[i] for i in instances]
            self.keys[step] = found[0] if list(instances) == [step] else _combined(found)

    def _keyed_ref(self, item: str | None, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
        def resolve(ref: Ref) -> str:
            if isinstance(ref, ParamRef):
                return self.values[ref.name] if self.pipeline.param(ref.name).cache_key else "<run name>"
            if isinstance(ref, OutputRef):
                source = self.pipeline.step(ref.step)
                if ref.key in source.locations:
                    return "<location>"
                recorded = outputs.get(ref.step, {}).get(f"{ref.key}{DIGEST_SUFFIX}")
                if source.name in self.keys:
                    return f"<{self.keys[source.name]}:{ref.key}:{recorded or ''}>"
                return as_text(outputs.get(ref.step, {}).get(ref.key))
            return (item or "") if isinstance(ref, ItemRef) else ""

        return resolve

    def _actual_ref(self, item: str | None, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
        """Fills references as the step will see them, to find the files it names.

        Left out: run names, locations, and artifacts (their digests are keyed already; their paths hold the run's name).
        """

        def resolve(ref: Ref) -> str:
            if isinstance(ref, ParamRef):
                return self.values[ref.name] if self.pipeline.param(ref.name).cache_key else ""
            if isinstance(ref, OutputRef):
                source = self.pipeline.step(ref.step)
                if ref.key not in (*source.locations, *source.artifacts):
                    return as_text(outputs.get(ref.step, {}).get(ref.key))
            return (item or "") if isinstance(ref, ItemRef) else ""

        return resolve

    def _code_digest(self, step: Step) -> list[str]:
        found = [self._folder_code(folder) for folder in self.folders]
        module = (getattr(step, "function", None) or "").partition(":")[0]
        if module and not any(_module_in(folder, module) for folder in self.folders):
            found.append(self._module_code(module))
        return found

    def _folder_code(self, folder: Path) -> str:
        """The digest of every `*.py` under the pipeline's folder (see the module docstring for what is left out)."""
        h = hashlib.sha256()
        count = 0
        for name, path in walk_files(folder, self._skipped):
            if name.endswith(".py") and path.is_file():
                count += 1
                if count > MAX_CODE_FILES:
                    raise KeyUnavailable(
                        f"{folder} holds over {MAX_CODE_FILES} Python files: put the pipeline file in its "
                        "project's own folder"
                    )
                h.update(f"{name}\0{self.memo(path)}\0".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def _skipped(self, folder: Path) -> bool:
        name = folder.name
        return name in SKIPPED_DIRS or name.startswith(".") or (folder / "pyvenv.cfg").exists() or folder == self.home

    def _module_code(self, module: str) -> str:
        """A function's module found outside the pipeline's folder: its file, and the modules beside it in a package."""
        spec = find_module_spec(module)  # without importing: no package's __init__ runs at submit
        if spec is None or not spec.origin or not Path(spec.origin).is_file():
            return ""
        origin = Path(spec.origin)
        beside = sorted(origin.parent.glob("*.py")) if (origin.parent / "__init__.py").is_file() else [origin]
        return json.dumps([[p.name, self.memo(p)] for p in beside if p.is_file()])

    def _named_files(self, paths: Sequence[str], folder: Path) -> list[list[str]]:
        found = []
        for text in paths:
            path = folder / text
            try:
                if not path.is_file():
                    continue
            except OSError:  # not a name the system takes (too long): no file
                continue
            try:
                found.append([text, self.memo(path)])
            except OSError:  # unreadable now: its name keys it, and the step itself will say what is wrong
                found.append([text, "<unreadable>"])
        return found

    def _pattern_files(self, patterns: Sequence[str]) -> list[list[str]]:
        return pattern_files(self.folders[0] if self.folders else self.cwd, patterns, self.memo)


def pattern_files(base: Path, patterns: Sequence[str], hash_file: HashFile = file_sha256) -> list[list[str]]:
    """Each of `cache_key_files`' patterns with every match under `base` by name and content (none: the pattern alone).

    The one hashing of `cache_key_files`: the local runner's keys and the Kubernetes compiler's memoization use it.
    """
    found = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(base / pattern), recursive=True, include_hidden=True))
        # names relative to `base`: the same files key the same wherever the project is checked out
        found.append([pattern, *(f"{os.path.relpath(m, base)}\0{_content(Path(m), hash_file)}" for m in matches)])
    return found


def _content(path: Path, hash_file: HashFile) -> str:
    try:
        return tree_digest(path, hash_file)
    except OSError:  # gone or unreadable meanwhile: its name keys it, and the step itself will say what is wrong
        return "<unreadable>"


def _module_in(folder: Path, module: str) -> bool:
    path = folder.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _path_candidates(arg: str) -> list[str]:
    """What in one argument may name a local file: itself, the VALUE of `--flag=VALUE`, a `file://` URL's path."""
    found = [arg]
    if arg.startswith("-") and "=" in arg:
        found.append(arg.partition("=")[2])
    result = []
    for text in found:
        if "://" in text:
            try:
                here = local_path_of(text)
            except StorageError:
                continue
            text = str(here) if here is not None else ""
        if text and len(text) < _LONGEST_PATH and "\0" not in text and "\n" not in text:
            result.append(text)
    return result


def _combined(keys: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(keys)).encode()).hexdigest()
