"""Serving from the MLflow registry: `models:/NAME@ALIAS` or `models:/NAME/N` as a local folder of numbered versions.

The model server does not learn where a model came from: a `RegistryFollower` downloads the version an
alias points at (through MLflow's artifact API) into this node's cache as `<folder>/<version>/`, its
signature.json written last as the exporter does, and removes the versions the alias left. The model
repository watching that folder then hot-swaps as it does for a new exported version.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from trainflow.settings import trainflow_home
from trainflow.tracking import tracking_uri
from trainflow.tracking.client import check_uri, client, reason_of, redacted
from trainflow.tracking.errors import TrackingError
from trainflow.tracking.models import MODEL_FILE, SIGNATURE_FILE

log = logging.getLogger(__name__)

PREFIX = "models:/"
_REF = re.compile(
    r"models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.\- ]*)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>[1-9][0-9]*))"
)
MAX_NAME = 255


@dataclass(frozen=True)
class ModelRef:
    """A registered model and the alias or version to serve of it."""

    name: str
    alias: str = ""
    version: int | None = None

    def __str__(self) -> str:
        return f"{PREFIX}{self.name}@{self.alias}" if self.alias else f"{PREFIX}{self.name}/{self.version}"


def parse_model_ref(uri: str) -> ModelRef | None:
    """The reference `uri` makes, None when it is no `models:/` URI; TrackingError when it is one of a wrong shape."""
    if not uri.startswith(PREFIX):
        return None
    found = _REF.fullmatch(uri)
    if found is None or len(found.group("name")) > MAX_NAME or len(found.group("alias") or "") > MAX_NAME:
        raise TrackingError(f"{uri!r} is not a registry URI: give models:/NAME@ALIAS or models:/NAME/VERSION")
    version = found.group("version")
    if version is not None and len(version) > 9:
        raise TrackingError(f"{uri!r} names version {version}: registry versions are at most 9 digits")
    return ModelRef(found.group("name"), found.group("alias") or "", int(version) if version else None)


def resolve(uri: str, ref: ModelRef) -> int:
    """The version `ref` names now; TrackingError (exit 2) for an unknown model, alias or version."""
    c = client(uri)
    try:
        if ref.alias:
            return int(c.get_model_version_by_alias(ref.name, ref.alias).version)
        return int(c.get_model_version(ref.name, str(ref.version)).version)
    except Exception as exc:  # noqa: BLE001 - the registry's answer, whatever the client raised, is the message
        reason = reason_of(exc)
        raise TrackingError(
            f"{ref} is not in the registry at {redacted(uri)}: {reason}; `mlflow` lists its models and aliases"
        ) from None


def cache_folder(ref: ModelRef) -> Path:
    """Where this node keeps the versions of `ref` (a name of any characters gets a safe, unique folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ref.name)[:64]
    digest = hashlib.sha256(str(ref).encode()).hexdigest()[:12]
    return trainflow_home() / "cache" / "registry" / f"{safe}-{digest}"


def materialize(uri: str, ref: ModelRef, version: int, folder: Path) -> Path:
    """Download version `version` into `folder/<version>/` (once): model.onnx, then signature.json."""
    import mlflow
    import mlflow.artifacts

    mlflow.set_tracking_uri(uri)  # else mlflow may open its default store, ./mlflow.db in the user's folder
    mlflow.set_registry_uri(uri)  # models:/ resolves through the registry, not only the tracking URI given below
    target = folder / str(version)
    if (target / SIGNATURE_FILE).is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as scratch:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{PREFIX}{ref.name}/{version}", dst_path=scratch, tracking_uri=uri
            )
        )
        model = next(iter(sorted(local.rglob(MODEL_FILE))), None)
        signature = next(iter(sorted(local.rglob(SIGNATURE_FILE))), None)
        if model is None or signature is None:
            raise TrackingError(
                f"{PREFIX}{ref.name}/{version} holds no {MODEL_FILE} with a {SIGNATURE_FILE}: register models that "
                "trainflow exported (-p register-model=NAME)"
            )
        target.mkdir(exist_ok=True)
        shutil.copyfile(model, target / MODEL_FILE)
        shutil.copyfile(signature, target / f".{SIGNATURE_FILE}.tmp")
        (target / f".{SIGNATURE_FILE}.tmp").rename(target / SIGNATURE_FILE)  # last: the version is complete
    return target


class RegistryFollower:
    """Keeps `folder` holding the version `ref` names, polling the registry every `poll_seconds`."""

    def __init__(self, uri: str, ref: ModelRef, folder: Path, poll_seconds: float = 1.0) -> None:
        self.uri, self.ref, self.folder, self.poll_seconds = uri, ref, folder, poll_seconds
        self.version: int | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="registry-follower", daemon=True)

    def first(self) -> int:
        """Resolve and download the version served first; TrackingError (exit 2) when the registry has none."""
        version = resolve(self.uri, self.ref)
        self._switch(version)
        return version

    def start(self) -> None:
        if self.ref.alias:  # a numbered version never moves
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def poll_once(self) -> None:
        try:
            version = resolve(self.uri, self.ref)
            if version != self.version:
                self._switch(version)
        except Exception as exc:  # noqa: BLE001 - the registry away or the alias gone: keep serving what we have
            if not self._failing:
                log.warning("%s: %s (still serving version %s)", self.ref, reason_of(exc), self.version)
            self._failing = True
            return
        self._failing = False

    def _switch(self, version: int) -> None:
        materialize(self.uri, self.ref, version, self.folder)
        if self.version is not None:
            log.info("%s moved from version %s to %d", self.ref, self.version, version)
        self.version = version
        for other in self.folder.iterdir():  # the versions the alias left: the repository unloads them
            if other.is_dir() and other.name.isdigit() and int(other.name) != version:
                shutil.rmtree(other, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()


def follower_for(base_path: str | None, poll_seconds: float) -> RegistryFollower | None:
    """A follower when `base_path` is a `models:/` URI (tracking URI from MLFLOW_TRACKING_URI), else None."""
    ref = parse_model_ref(base_path or "")
    if ref is None:
        return None
    uri = tracking_uri()
    if not uri:
        raise TrackingError(f"{base_path} needs the registry's address: set MLFLOW_TRACKING_URI to its MLflow server")
    check_uri(uri)
    return RegistryFollower(uri, ref, cache_folder(ref), poll_seconds)
