"""The test suite's wall time under xdist's plain loadfile and under tests/scheduling.py, from measured test times.

Reads `pytest --durations=0 --durations-min=0` output (one or more runs' files: each test's setup, call and teardown
seconds are summed) and replays both schedules on N workers as xdist runs them: a worker gets a unit
(a file, or what tests/scheduling.py groups or splits) when it has two tests or fewer left; plain
loadfile queues files most tests first, the new scheduler heaviest first. Prints each schedule's
wall time and the ratio. A replay, not a run: it leaves out start-up and collection (the same in
both) and a session fixture that the new grouping builds once instead of once per worker.

    .venv/bin/python -m pytest --durations=0 --durations-min=0 tests/docs tests/e2e > durations.txt
    .venv/bin/python benchmarks/suite_schedule.py durations.txt --workers 3
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scheduling import unit_of, weight  # noqa: E402

_LINE = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S.*?)\s*$")


def read_durations(paths: list[Path]) -> dict[str, float]:
    """Test id -> seconds (setup + call + teardown), in the order the files list them."""
    seconds: dict[str, float] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            found = _LINE.match(line)
            if found:
                seconds[found[3]] = seconds.get(found[3], 0.0) + float(found[1])
    return seconds


def plain_loadfile(tests: dict[str, float]) -> list[list[str]]:
    """xdist's loadfile queue: whole files, most tests first (ties in path order, as collected)."""
    files: dict[str, list[str]] = {}
    for nodeid in sorted(tests):
        files.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    return [files[f] for f in sorted(files, key=lambda f: -len(files[f]))]


def heaviest_first(tests: dict[str, float]) -> list[list[str]]:
    """tests/scheduling.py's queue: its units, heaviest first by its own estimate."""
    units: dict[str, list[str]] = OrderedDict()
    for nodeid in sorted(tests):
        units.setdefault(unit_of(nodeid), []).append(nodeid)
    return [units[u] for u in sorted(units, key=lambda u: -weight(u, len(units[u])))]


def replay(queue: list[list[str]], tests: dict[str, float], workers: int) -> float:
    """Wall seconds until every worker is done, handing out units as xdist does."""
    pending: list[list[str]] = [[] for _ in range(workers)]
    clock = [0.0] * workers
    todo = list(queue)
    for node in range(workers):  # the first unit each, then a second where the first is short
        if todo:
            pending[node] += todo.pop(0)
    for node in range(workers):
        if todo and len(pending[node]) <= 2:
            pending[node] += todo.pop(0)
    while any(pending):
        node = min((n for n in range(workers) if pending[n]), key=lambda n: clock[n] + tests[pending[n][0]])
        clock[node] += tests[pending[node].pop(0)]
        if todo and len(pending[node]) <= 2:
            pending[node] += todo.pop(0)
    return max(clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("durations", nargs="+", type=Path, help="pytest --durations=0 output files")
    parser.add_argument("--workers", type=int, default=3, help="xdist workers (pyproject's -n)")
    args = parser.parse_args()
    tests = read_durations(args.durations)
    if not tests:
        parser.error("no durations found: run pytest with --durations=0 and pass its output")
    before = replay(plain_loadfile(tests), tests, args.workers)
    after = replay(heaviest_first(tests), tests, args.workers)
    print(f"{len(tests)} tests, {sum(tests.values()):.0f} s of test time, {args.workers} workers")
    print(f"plain loadfile:      {before:7.0f} s")
    print(f"tests/scheduling.py: {after:7.0f} s  ({after / before:.2f}x of loadfile)")


if __name__ == "__main__":
    main()
