"""Curves of a workflow: its steps' progress events, TensorBoard event scalars, final metrics.

Progress events (see trainflow.progress) come from the training steps, live, fan-out items each as their own
series. The event files are what TensorBoard shows, but rank 0 flushes them in batches (and uploads them to an
S3 train dir only at checkpoints), so progress events fill in the steps they do not have yet. Event files and
`metrics.json` are read from the train dir each training step declares (`Train(train_dir=...)`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, join_url, open_store
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.endpoints import store_settings, train_dirs
from trainflow.workflows.runs import METRICS_FILE

log = logging.getLogger(__name__)

_NOT_METRICS = ("step", "total", "time")

Points = list[tuple[int, float]]


@dataclass
class Curves:
    """Scalar series by tag (points sorted by step), training progress and the final test metrics."""

    series: dict[str, Points] = field(default_factory=dict)
    step: int = 0
    total_steps: int | None = None
    final: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)
    progress_step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": {tag: [[s, v] for s, v in points] for tag, points in sorted(self.series.items())},
            "step": self.step,
            "total_steps": self.total_steps,
            "final": self.final,
            "sources": self.sources,
            "progress_step": self.progress_step,
        }


def parse_progress(events: Iterable[dict[str, Any]]) -> tuple[dict[str, dict[int, float]], int | None]:
    """Progress events -> {metric: {step: value}} and the last total steps reported.

    A metric named without a section (`loss`, as `report_progress(step, loss=...)` gives it) is a training
    curve: `train/loss`, drawn beside the built-in training's.
    """
    series: dict[str, dict[int, float]] = {}
    total = None
    for event in events:
        step = int(event["step"])
        total = int(event["total"]) if isinstance(event.get("total"), int) else total
        for key, value in event.items():
            if key not in _NOT_METRICS and isinstance(value, int | float):
                series.setdefault(key if "/" in key else f"train/{key}", {})[step] = float(value)
    return series, total


def _progress_curves(curves: Curves, progress: dict[str, list[dict[str, Any]]]) -> dict[str, dict[int, float]]:
    """The training steps' progress as series (one step's as they are, fan-out items' named after each), and
    the steps done of the total over all of them."""
    reporting = [name for name, events in progress.items() if events]
    merged: dict[str, dict[int, float]] = {}
    if not reporting:
        return merged
    curves.progress_step = reporting[-1]
    curves.sources.append("progress")
    done, totals = 0, []
    for name in reporting:
        reported, total = parse_progress(progress[name])
        done += int(progress[name][-1]["step"])
        totals.append(total)
        for tag, points in reported.items():
            merged[tag if len(reporting) == 1 else f"{name} {tag}"] = dict(points)
    curves.step = done
    curves.total_steps = sum(t for t in totals if t) if all(totals) else None
    return merged


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
        self._refused: set[tuple[str, str]] = set()  # event files that cannot be a file here, warned about once

    def read(self, info: WorkflowInfo, progress: dict[str, list[dict[str, Any]]]) -> Curves:
        """The curves of `info` from its training steps' progress events (`progress`: by step instance), its train
        dir's event files and its metrics.json."""
        curves = Curves()
        merged = _progress_curves(curves, progress)
        dirs = train_dirs(info)
        train_dir = dirs[-1] if len(dirs) == 1 else None  # several train dirs: their progress is what compares
        if train_dir:
            options = StorageOptions.from_env(*store_settings(info))
            events = self._events(join_url(train_dir, "logs"), options)
            if events:
                curves.sources.append("events")
            for tag, points in events.items():
                merged.setdefault(tag, {}).update(points)  # events are what TensorBoard shows
            curves.final = _read_metrics(train_dir, options)
        # NaN and infinity (a run that diverged) are not JSON: such points are left out of the plot
        finite = {tag: {s: v for s, v in points.items() if math.isfinite(v)} for tag, points in merged.items()}
        curves.series = {tag: sorted(points.items()) for tag, points in finite.items() if points}
        trained = max((p[-1][0] for t, p in curves.series.items() if t.startswith("train/")), default=0)
        curves.step = curves.step or trained
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
            if key in self._refused:
                return {}
            local = self.cache_dir / hashlib.sha256(logs_url.encode()).hexdigest()[:16] / name
            part = local.with_name(f".{local.name}.part")
            try:
                local.parent.mkdir(parents=True, exist_ok=True)
                store.download(name, part)
                part.replace(local)
            except StorageError as exc:
                log.warning("cannot fetch %s from %s: %s", name, logs_url, exc)
                return cached[1] if cached else {}
            except OSError as exc:  # 'x' beside 'x/y': one of them cannot be a file here (as the log mirror skips it)
                log.warning("not reading %r from %s: %s", name, logs_url, exc.strerror or exc)
                self._refused.add(key)
                return {}
            parsed = parse_event_file(local)
            self._parsed[key] = (tag, parsed)
            return parsed


def _read_metrics(train_dir: str, options: StorageOptions) -> dict[str, Any] | None:
    """The final test metrics the training wrote, or None while it runs."""
    try:
        # older runs wrote a bare NaN for a diverged loss: the page gets null, as NaN is not JSON
        metrics = json.loads(
            open_store(train_dir, options).read_bytes(METRICS_FILE),
            parse_constant=lambda _: None,
            parse_float=_finite_or_none,
        )
    except (ObjectNotFound, ValueError, RecursionError):  # absent, or not JSON (a torn or hostile file)
        return None
    except StorageError as exc:
        log.warning("cannot read %s in %s: %s", METRICS_FILE, train_dir, exc)
        return None
    return metrics if isinstance(metrics, dict) else None


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None
