"""Training curves of a workflow: TensorBoard event scalars, live `step=N/M` log lines, final metrics.

The event files are what TensorBoard shows, but rank 0 flushes them in batches (and uploads them to
an S3 train dir only at checkpoints), so the train-model log fills in the steps they do not have yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, join_url, open_store
from trainflow.workflows.backend import WorkflowInfo

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
LOG_LINE = re.compile(r"step=(\d+)/(\d+) loss=(\S+) acc=(\S+)")
LOG_TAGS = ("train/loss", "train/accuracy")

Points = list[tuple[int, float]]


@dataclass
class Curves:
    """Scalar series by tag (points sorted by step), training progress and the final test metrics."""

    series: dict[str, Points] = field(default_factory=dict)
    step: int = 0
    total_steps: int | None = None
    final: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"series": {tag: [[s, v] for s, v in points] for tag, points in sorted(self.series.items())},
                "step": self.step, "total_steps": self.total_steps, "final": self.final, "sources": self.sources}


def parse_log_lines(lines: Iterable[str]) -> tuple[dict[str, dict[int, float]], int | None]:
    """`step=N/M loss=X acc=Y` lines -> {tag: {step: value}} and M (the run's step count)."""
    series: dict[str, dict[int, float]] = {tag: {} for tag in LOG_TAGS}
    total = None
    for line in lines:
        match = LOG_LINE.search(line)
        if not match:
            continue
        step, total = int(match[1]), int(match[2])
        try:
            series["train/loss"][step], series["train/accuracy"][step] = float(match[3]), float(match[4])
        except ValueError:
            continue  # a line cut by the writer; the next poll reads it whole
    return series, total


def parse_event_file(path: Path) -> dict[str, dict[int, float]]:
    """Scalars of one TensorBoard event file; a record being written at the end is skipped."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    series: dict[str, dict[int, float]] = {}
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.HasField("simple_value"):
                number = float(value.simple_value)
            elif value.HasField("tensor") and value.tensor.dtype:
                number = float(make_ndarray(value.tensor).reshape(-1)[0])
            else:
                continue
            series.setdefault(value.tag, {})[int(event.step)] = number
    return series


class CurveReader:
    """Reads curves for the dashboard, fetching each event file again only when it changed."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._parsed: dict[tuple[str, str], tuple[str, dict[str, dict[int, float]]]] = {}
        self._lock = threading.Lock()

    def read(self, info: WorkflowInfo, train_log: Iterable[str]) -> Curves:
        """The curves of `info` from its event files, its train-model log lines and its metrics.json."""
        curves = Curves()
        merged: dict[str, dict[int, float]] = {}
        logged, curves.total_steps = parse_log_lines(train_log)
        if any(logged.values()):
            curves.sources.append("log")
            merged.update({tag: dict(points) for tag, points in logged.items()})
        train_dir = _train_dir(info)
        if train_dir:
            options = StorageOptions.from_env(info.params.get("aws-endpoint-url") or None,
                                              info.params.get("aws-region") or None)
            events = self._events(join_url(train_dir, "logs"), options)
            if events:
                curves.sources.append("events")
            for tag, points in events.items():
                merged.setdefault(tag, {}).update(points)  # events are exact; the log has 4 decimals
            curves.final = _read_metrics(train_dir, options)
        # NaN and infinity (a run that diverged) are not JSON: such points are left out of the plot
        finite = {tag: {s: v for s, v in points.items() if math.isfinite(v)} for tag, points in merged.items()}
        curves.series = {tag: sorted(points.items()) for tag, points in finite.items() if points}
        curves.step = max((p[-1][0] for t, p in curves.series.items() if t.startswith("train/")), default=0)
        return curves

    def _events(self, logs_url: str, options: StorageOptions) -> dict[str, dict[int, float]]:
        try:
            store = open_store(logs_url, options)
            objects = [o for o in store.list() if "tfevents" in o.name]
        except ObjectNotFound:
            return {}  # training has not written any events yet
        except StorageError as exc:
            log.warning("cannot list TensorBoard events in %s: %s", logs_url, exc)
            return {}
        merged: dict[str, dict[int, float]] = {}
        for obj in sorted(objects, key=lambda o: o.name):
            for tag, points in self._parsed_file(store, logs_url, obj.name, obj.version_tag).items():
                merged.setdefault(tag, {}).update(points)
        return merged

    def _parsed_file(self, store: Any, logs_url: str, name: str, tag: str) -> dict[str, dict[int, float]]:
        key = (logs_url, name)
        with self._lock:
            cached = self._parsed.get(key)
            if cached and cached[0] == tag:
                return cached[1]
            local = self.cache_dir / hashlib.sha256(logs_url.encode()).hexdigest()[:16] / name
            local.parent.mkdir(parents=True, exist_ok=True)
            part = local.with_name(f".{local.name}.part")
            try:
                store.download(name, part)
            except StorageError as exc:
                log.warning("cannot fetch %s from %s: %s", name, logs_url, exc)
                return cached[1] if cached else {}
            part.replace(local)
            parsed = parse_event_file(local)
            self._parsed[key] = (tag, parsed)
            return parsed


def _train_dir(info: WorkflowInfo) -> str | None:
    step = info.step("get-workflow-info")
    return step.outputs.get("train-dir") if step else None


def _read_metrics(train_dir: str, options: StorageOptions) -> dict[str, Any] | None:
    """The final test metrics the training wrote, or None while it runs."""
    try:
        # older runs wrote a bare NaN for a diverged loss: the page gets null, as NaN is not JSON
        metrics = json.loads(open_store(train_dir, options).read_bytes(METRICS_FILE),
                             parse_constant=lambda _: None, parse_float=_finite_or_none)
    except (ObjectNotFound, ValueError, RecursionError):  # absent, or not JSON (a torn or hostile file)
        return None
    except StorageError as exc:
        log.warning("cannot read %s in %s: %s", METRICS_FILE, train_dir, exc)
        return None
    return metrics if isinstance(metrics, dict) else None


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None
