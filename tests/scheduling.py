"""How xdist hands the suite to its workers: the longest work first, docs pages one by one, shared fixtures together.

`--dist loadfile` alone sends whole files, most tests first: the files that train a model or run a whole
pipeline (a few tests, minutes each) started last and the suite waited on one worker at its end, and the
docs test (one file) ran every page in turn on one worker. This scheduler keeps loadfile's promise (a file's
tests run in one worker, in order, so its module fixtures are built once) and changes three things:

- each docs page is its own unit, except pages that use one fixed port (two `trainflow ui` on 8001 would
  collide), which stay one unit;
- files that share a session fixture too costly to build twice (the dashboard's trained runs) are one unit; the
  files using the MLflow server are two units, a server each (one unit was the longest of the suite);
- units start heaviest first: their weight is what they train (tests marked slow or image), read from
  the test files' source, since the controller sees only test ids.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import cache
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

ROOT = Path(__file__).resolve().parents[1]
DOCS_TEST = "tests/docs/test_doc_blocks.py"

# Files sharing a costly session fixture (tests/ui/conftest.py's dashboard trains three runs;
# tests/image/conftest.py builds the image): one worker builds it once.
# tests/tracking/conftest.py's `mlflow server` (mlflow_server) is shared by ten files: as one unit they were the
# suite's longest (~1,830 s of a worker at load average 17-20, 2026-12-06), so they are two units, each starting
# its own server (seconds), split by their measured times; only test_mlflow_tracking.py trains the tracked run. A
# tracking file in neither (test_tracking_faults.py starts a server of its own to kill) is a unit of its own.
_TRACKING_1 = "tests/tracking (mlflow server 1: the tracked run)"
_TRACKING_2 = "tests/tracking (mlflow server 2)"
TOGETHER = {
    "tests/ui/test_browser.py": "tests/ui (the dashboard's trained runs)",
    "tests/ui/test_server_api.py": "tests/ui (the dashboard's trained runs)",
    "tests/tracking/test_mlflow_tracking.py": _TRACKING_1,
    "tests/tracking/test_cluster_workflow_run.py": _TRACKING_1,
    "tests/tracking/test_registry_serving.py": _TRACKING_1,
    "tests/tracking/test_worker_exit_flush.py": _TRACKING_1,
    "tests/tracking/test_metric_sink.py": _TRACKING_1,
    "tests/tracking/test_tracking_params.py": _TRACKING_2,
    "tests/tracking/test_registry_deploy.py": _TRACKING_2,
    "tests/tracking/test_local_run_states.py": _TRACKING_2,
    "tests/tracking/test_workflow_run_end.py": _TRACKING_2,
    "tests/tracking/test_retry_other_server.py": _TRACKING_2,
}
TOGETHER_UNDER = {
    "tests/image/": "tests/image (one image build: a second worker would wait on its lock)",
}

# Units that take far longer than their source shows (one test that runs a whole pipeline, a page that
# trains twice): seconds measured on the shared 2-core machine at load average ~18 (about 3x idle; only
# the order matters), see benchmarks/README.md.
MEASURED = {
    "docs page docs/how-to/tracking.md + docs/how-to/your-own-data.md": 575.0,
    "tests/e2e/test_model_tune.py": 300.0,
    "tests/e2e/test_model_train_pipeline.py": 300.0,
    "docs page docs/how-to/train-by-hand.md": 100.0,  # 200 steps since 2026-12-06: 0.6x of the 600-step page
    "docs page docs/how-to/tuning.md": 165.0,
    # Sampled from a full `pytest` run's worker titles at load average 17-20 (2026-12-06), where the tracking files
    # were one unit: 271+211+125+46+10 s and 228+190+120+101+72 s; the server-killing test (500 CNN steps) 415 s.
    _TRACKING_1: 660.0,
    _TRACKING_2: 710.0,
    "tests/tracking/test_tracking_faults.py": 415.0,
    # Files whose source misleads the estimate either way, from `pytest -n 2 --durations=0` of their folder at load
    # average 7-21 (2026-12-06): many short subprocess runs, schedules waiting on their due times, studies.
    "tests/pipelines/test_user_pipelines.py": 280.0,
    "tests/workflows/test_schedules.py": 235.0,
    "tests/workflows/test_study.py": 135.0,
    "tests/pipelines/test_tuning.py": 105.0,
    "tests/adversarial/test_export_hostile.py": 70.0,
    "tests/adversarial/test_builtin_models_export.py": 70.0,
    "tests/export/test_export_reuse.py": 70.0,
    "tests/training/test_precision.py": 45.0,
    "tests/pipelines/test_artifacts.py": 40.0,
    "tests/cli/test_data_cli.py": 40.0,
    "tests/adversarial/test_dataset_cli.py": 40.0,
    "tests/workflows/test_fan_out_runs.py": 40.0,
    "tests/workflows/test_service_ports.py": 35.0,
}

_SLOW = re.compile(r"@pytest\.mark\.(slow|image)\b")
_ALL_SLOW = re.compile(r"^pytestmark\s*=\s*(?:\[[^\]]*|.*)\bpytest\.mark\.(slow|image)\b", re.MULTILINE)
_IMAGE = re.compile(r"\bpytest\.mark\.image\b")
_TESTS = re.compile(r"^\s*(?:async\s+)?def test_", re.MULTILINE)
_FIXED_PORT = re.compile(r"(?:127\.0\.0\.1|localhost):(\d{4,5})|--(?:rest-|grpc-)?port[ =](\d{4,5})")


class HeaviestFirstScheduling(LoadScopeScheduling):
    """loadfile with docs pages split, costly fixtures together, and the heaviest units started first."""

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: object) -> None:
        if not self._ordered:  # the first assignment: the queue is whole, in loadfile's order
            self._ordered = True
            ranked = sorted(self.workqueue.items(), key=lambda unit: -weight(unit[0], len(unit[1])))
            self.workqueue = OrderedDict(ranked)
        super()._assign_work_unit(node)  # type: ignore[arg-type]


def unit_of(nodeid: str) -> str:
    """The work unit a test belongs to: its file, its docs page (or port group), or its shared-fixture group."""
    path = nodeid.split("::", 1)[0]
    if path == DOCS_TEST:
        page = re.search(r"\[(.+)\]$", nodeid)
        return _page_unit(page[1]) if page else path
    for prefix, unit in TOGETHER_UNDER.items():
        if path.startswith(prefix):
            return unit
    return TOGETHER.get(path, path)


def weight(unit: str, tests: int) -> float:
    """Rough seconds: measured where known, else a minute per slow test and a second per other test."""
    if unit in MEASURED:
        return MEASURED[unit]
    if unit.startswith("docs page "):
        return sum(_page_weight(page) for page in unit.removeprefix("docs page ").split(" + "))
    files = [f for f in _unit_files(unit) if f.is_file()]
    slow = sum(_slow_tests(f) for f in files)
    return 60.0 * slow + (tests - slow)


def _unit_files(unit: str) -> list[Path]:
    if unit in TOGETHER.values():
        return [ROOT / path for path, name in TOGETHER.items() if name == unit]
    if unit in TOGETHER_UNDER.values():
        prefix = next(p for p, name in TOGETHER_UNDER.items() if name == unit)
        return sorted((ROOT / prefix).glob("test_*.py"))
    return [ROOT / unit.split("::", 1)[0]]


@cache
def _slow_tests(path: Path) -> int:
    source = path.read_text()
    if _ALL_SLOW.search(source):
        return len(_TESTS.findall(source)) * (5 if _IMAGE.search(source) else 1)
    return len(_SLOW.findall(source))


@cache
def _page_groups() -> dict[str, str]:
    """Page -> its unit: pages sharing a fixed port (a server a reader starts on it) are one unit."""
    from tests.docs.blocks import blocks, pages

    ports: dict[str, set[str]] = {}
    for path in pages():
        page = str(path.relative_to(ROOT))
        found = set()
        for block in blocks(path):
            if block.runs:
                found |= {a or b for a, b in _FIXED_PORT.findall(block.code)}
        ports[page] = found
    group = {page: {page} for page in ports}
    for page, mine in ports.items():
        for other, theirs in ports.items():
            if page < other and mine & theirs and group[page] is not group[other]:
                merged = group[page] | group[other]
                for member in merged:
                    group[member] = merged
    return {page: "docs page " + " + ".join(sorted(members)) for page, members in group.items()}


@cache
def _page_weight(page: str) -> float:
    """A page that trains or runs a pipeline: a minute; any other: a few seconds."""
    from tests.docs.blocks import TRAINS, blocks

    return 60.0 if any(b.runs and TRAINS.search(b.code) for b in blocks(ROOT / page)) else 5.0


def _page_unit(page: str) -> str:
    return _page_groups().get(page, f"docs page {page}")
