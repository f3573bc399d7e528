"""The package's shape holds: layers import downwards, no import cycles, no built-in names or scheme tests where they do not belong.

Imports are read with `ast` from the source, so a test sees what an import graph sees. Imports
inside functions (how trainflow loads heavy modules lazily) count too: a lazy import is still a
dependency, and a cycle through one only waits for the first call to bite (datasets had
cache -> prepare -> loader -> cache that way). Imports under `if TYPE_CHECKING:` never run and do not count.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainflow
from trainflow.pipelines.builtin import PIPELINES

SRC = Path(trainflow.__file__).parent
# DESIGN.md's order, highest first: a layer may import the layers after it, never one before it.
LAYERS = (
    ("cli", "ui"),
    ("workflows",),
    ("pipelines",),
    ("serving", "client"),
    ("export",),
    ("training",),
    ("datasets",),
    ("storage",),
)
# Modules beside the layers that every layer may use (they import no layer).
BASE = {"lazy_names", "settings", "progress", "errors", "cores", "proctitle", "tracking", "__init__", "__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py") if "protos" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> Iterator[str]:
    """The trainflow modules `module` imports, inside functions too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (name for stmt in child.orelse for name in visit(stmt))
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield from _targets(child, package)
            yield from visit(child)

    yield from visit(ast.parse(path.read_text()))


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name.startswith("trainflow"))
        return
    base = node.module or ""
    if node.level:
        parent = package.split(".")
        base = ".".join([*parent[: len(parent) - node.level + 1], *([base] if base else [])])
    if not base.startswith("trainflow"):
        return
    yield base
    for alias in node.names:  # `from trainflow.x import y` may import the module x.y
        yield f"{base}.{alias.name}"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {t for t in _imports(p, m) if t in modules and t != m} for m, p in modules.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    assert top in BASE, f"{module}: a package outside DESIGN.md's layers: add it to LAYERS or BASE"
    return None


def test_no_module_imports_a_higher_layer_even_lazily() -> None:
    upward = []
    for module, targets in sorted(_graph().items()):
        here = _layer(module)
        for target in sorted(targets):
            there = _layer(target)
            if here is None and there is not None and module not in ("trainflow", "trainflow.__main__"):
                upward.append(f"{module} (beside the layers) -> {target}")
            elif here is not None and there is not None and there < here:
                upward.append(f"{module} -> {target}")
    assert upward == [], "a layer imports one above it (DESIGN.md's order): " + "; ".join(upward)


def test_there_is_no_import_cycle_lazy_imports_included() -> None:
    graph = _graph()
    # a package's __init__ importing its own modules is how packages work: only module -> module edges count
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_modules_stay_under_about_400_lines() -> None:
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


# Parameter names that are also a layer's own words: the Kubernetes namespace a run goes to (the
# backend's --namespace), the generic 'model' and 'workflow', and 'model-name', also an output key
# (whose reading by the CLI and the dashboard the output-key checks cover); 'objective' and 'algorithm',
# also the fields of a Katib Experiment (kubernetes/katib.py writes them).
GENERIC_NAMES = {"namespace", "model", "workflow", "model-name", "objective", "algorithm"}
BUILTIN_PARAMS = sorted({p.name for p in PIPELINES.values() for p in p.params} - GENERIC_NAMES)


def _strings(path: Path) -> Iterator[str]:
    """The string literals of a module's code (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def _named_params(layer: str) -> set[tuple[str, str]]:
    found = set()
    for path in sorted((SRC / layer).rglob("*.py")):
        for text in _strings(path):
            for name in BUILTIN_PARAMS:
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
                    found.add((str(path.relative_to(SRC)), name))
    return found


@pytest.mark.parametrize("layer", ["workflows", "ui"])
def test_no_built_in_parameter_is_named_in_the_runners_or_the_dashboard(layer: str) -> None:
    assert _named_params(layer) == set(), "declare what the code needs on the Param (pipelines/params.py)"


# A scheme test: what storage answers (Store.local_root, storage.local_path_of / is_shared / listable).
SCHEME_TEST = re.compile(r"is_local\(|\.scheme\b|\.netloc\b|urlsplit\(|startswith\(\(?[\"'](s3|file|gs)://")


def test_nothing_above_storage_tests_a_urls_scheme() -> None:
    found = [
        f"{path.relative_to(SRC)}:{i}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if "storage" not in path.relative_to(SRC).parts[:1]
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if SCHEME_TEST.search(line)
    ]
    assert found == [], "ask storage (local_path_of, is_shared, Store.local_root, Store.listable)"


# Output keys only the built-in pipeline's steps write (its step programs write them; pipelines/builtin.py
# declares them): runners, the CLI's run readers and the dashboard find a model server, TensorBoard, a train
# dir or a dataset by what a step declares (pipelines/roles.py), never by these names.
BUILTIN_OUTPUTS = sorted(
    {k for p in PIPELINES.values() for s in p.steps for k in (*s.declared_outputs(), "logdir")} - {"url", "accuracy"}
)
# Folders whose code must not name them: workflows/ (runners) and ui/ (dashboard, its scripts included).
OUTPUT_READERS = ("workflows", "ui")


def _named_outputs(layer: str) -> set[tuple[str, str]]:
    found = set()
    for path in sorted((SRC / layer).rglob("*")):
        if path.suffix not in (".py", ".js", ".html"):
            continue
        texts = _strings(path) if path.suffix == ".py" else iter([path.read_text()])
        for text in texts:
            for key in BUILTIN_OUTPUTS:
                if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", text):
                    found.add((str(path.relative_to(SRC)), key))
    return found


def test_the_built_in_output_keys_are_the_ones_the_readers_must_not_name() -> None:
    assert {"rest-url", "grpc-address", "model-name", "model-version", "train-dir", "dataset-path"} <= set(
        BUILTIN_OUTPUTS
    )


@pytest.mark.parametrize("layer", OUTPUT_READERS)
def test_no_built_in_output_key_is_named_in_the_runners_or_the_dashboard(layer: str) -> None:
    assert _named_outputs(layer) == set(), "declare what a step provides (pipelines/roles.py) and ask endpoints"


# The backends a command can pick are one table (workflows/backends.py): the CLI and the dashboard talk to
# the Backend base, and never name a concrete backend, import one, or compare a backend's name.
CONCRETE_BACKENDS = re.compile(r"\b(KubernetesBackend|LocalBackend)\b")
BACKEND_MODULES = ("trainflow.workflows.local.backend", "trainflow.workflows.kubernetes.backend")


def _backend_mentions(layer: str) -> list[str]:
    from trainflow.workflows.backends import BACKENDS

    found = []
    for path in sorted((SRC / layer).rglob("*.py")):
        where = str(path.relative_to(SRC))
        found += [f"{where}: {m}" for m in CONCRETE_BACKENDS.findall(path.read_text())]
        found += [f"{where}: '{s}'" for s in _strings(path) if s in BACKENDS]
        found += [f"{where}: imports {t}" for t in _imports(path, _module_name(path)) if t in BACKEND_MODULES]
    return found


@pytest.mark.parametrize("layer", ["cli", "ui"])
def test_the_cli_and_the_dashboard_choose_a_backend_only_from_the_one_table(layer: str) -> None:
    assert _backend_mentions(layer) == [], "open backends with workflows.backends.open_backend; ask the Backend base"
