"""Find a pipeline: a built-in name, a `.py` file that defines one, or a `.yaml` / `.json` file.

Every failure is one PipelineError naming the file (and the step) and the fix; nothing has run.
"""

from __future__ import annotations

import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from trainflow.pipelines.builtin import PIPELINES
from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.pipeline import Pipeline

SUFFIXES = (".py", ".yaml", ".yml", ".json")


def load_pipeline(source: str, python_path: list[str] | None = None) -> Pipeline:
    """The validated pipeline `source` names: model-train, model-deploy, or a file.

    A file's own modules import from `python_path` (an unpacked code package) if given, else from its folder.
    """
    if source in PIPELINES:
        return PIPELINES[source]
    path = Path(source)
    if path.suffix not in SUFFIXES:
        raise PipelineError(
            f"'{source}' is neither a built-in pipeline ({', '.join(PIPELINES)}) nor a {', '.join(SUFFIXES)} file"
        )
    if not path.is_file():
        raise PipelineError(f"{source}: no such file")
    try:
        folders = python_path or [str(path.resolve().parent)]
        pipeline = _from_python(path, folders) if path.suffix == ".py" else _from_data(path)
        check_functions(pipeline.validate(), folders)
        return pipeline
    except PipelineError as exc:
        raise PipelineError(f"{source}: {exc.message}") from None


def _from_python(path: Path, folders: list[str]) -> Pipeline:
    """Run the file (`folders`, its own folder by default, first on sys.path, so its modules import); its Pipeline."""
    sys.path[:0] = [f for f in folders if f not in sys.path]
    try:
        namespace = runpy.run_path(str(path), run_name="trainflow_pipeline")
    except Exception as exc:  # noqa: BLE001 - any error in the user's file is reported as one line
        line = _error_line(exc, path)
        raise PipelineError(f"importing it raised {type(exc).__name__}: {exc}{line}: fix the file") from None
    found = [v for v in namespace.values() if isinstance(v, Pipeline)]
    if "PIPELINE" in namespace and isinstance(namespace["PIPELINE"], Pipeline):
        return namespace["PIPELINE"]
    if len(found) != 1:
        raise PipelineError(f"defines {len(found)} Pipeline objects: define one, or name the one to run PIPELINE")
    return found[0]


def _error_line(exc: BaseException, path: Path) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def _from_data(path: Path) -> Pipeline:
    from trainflow.pipelines.documents import read_document
    from trainflow.pipelines.serial import from_dict

    return from_dict(read_document(path))


def check_functions(pipeline: Pipeline, search_path: list[str] | None = None) -> None:
    """Every `module:function` a step calls can be found in `search_path` or sys.path (without running it)."""
    added = [p for p in search_path or [] if p not in sys.path]
    sys.path[:0] = added
    try:
        _check_functions(pipeline)
    finally:
        for p in added:
            sys.path.remove(p)


def _check_functions(pipeline: Pipeline) -> None:
    for step in pipeline.steps:
        function = getattr(step, "function", None)
        if not function:
            continue
        module, _, name = function.partition(":")
        spec = find_module_spec(module)
        if spec is None:
            raise PipelineError(
                f"step {step.name}: cannot import module '{module}' of {function}: put it next to the "
                "pipeline file or on PYTHONPATH"
            )
        if (
            spec.origin
            and spec.origin.endswith(".py")
            and f"def {name}" not in Path(spec.origin).read_text(errors="replace")
        ):
            raise PipelineError(f"step {step.name}: module {module} ({spec.origin}) defines no function '{name}'")


def find_module_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """Where module `name` is, asking the import system's finders without importing anything.

    `importlib.util.find_spec` would import (run) each parent package's `__init__.py` first.
    """
    parts = name.split(".")
    spec = None
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        module = sys.modules.get(prefix)
        if module is not None and getattr(module, "__spec__", None) is not None:
            spec = module.__spec__
            continue
        path = spec.submodule_search_locations if spec is not None else None
        if depth > 1 and path is None:
            return None  # the parent is a module, not a package
        spec = _ask_finders(prefix, path)
        if spec is None:
            return None
    return spec


def _ask_finders(name: str, path: Sequence[str] | None) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        try:
            spec = find_spec(name, path) if find_spec is not None else None
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            return spec
    return None
