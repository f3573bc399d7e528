"""The model repository: numbered versions under a base path, loaded, polled and hot-swapped.

A version is `<base>/<n>/` with `signature.json` (written last by the exporter, so its presence means
the version is complete). New versions are loaded and warmed up before they are swapped in by
replacing one dict reference: requests in flight finish on the version they started with. A version
that fails to load is refused with a log line and the previous ones keep serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from trainflow.export.signature import SIGNATURE_FILE, ModelSignature
from trainflow.serving.batching import BatchingConfig
from trainflow.serving.errors import NotFound, ServingError, Unavailable
from trainflow.serving.model_config import VersionPolicy
from trainflow.serving.runtime import OnnxModel
from trainflow.storage import StorageError, StorageOptions, join_url, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepositoryConfig:
    """Where the versions are and how to load them."""

    model_name: str
    base_url: str
    poll_seconds: float = 1.0
    policy: VersionPolicy = field(default_factory=lambda: VersionPolicy("latest", 2))  # newest loadable versions
    threads: int = 1
    batching: BatchingConfig | None = None
    storage: StorageOptions | None = None


class ModelRepository:
    """Serves the highest complete version under `base_url` and keeps polling for new ones."""

    def __init__(self, config: RepositoryConfig) -> None:
        self.config = config
        self.versions: dict[int, OnnxModel] = {}  # replaced whole, never mutated: readers need no lock
        self.refused: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_logged = False
        self._loaded = threading.Event()  # set once a version is served, or on stop

    @property
    def name(self) -> str:
        return self.config.model_name

    def start(self) -> None:
        """Load what is there now, then poll in a background thread."""
        self.poll_once()
        self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._loaded.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for model in self.versions.values():
            model.close()

    def ready(self) -> bool:
        return bool(self.versions)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a version is loaded (or the repository stops); True when one is."""
        self._loaded.wait(timeout)
        return bool(self.versions)

    def loaded(self) -> list[OnnxModel]:
        """Every version loaded now, oldest first."""
        return list(self.versions.values())

    def latest_version(self) -> int | None:
        """The version served when a request names none; None before one is loaded."""
        versions = self.versions
        return max(versions) if versions else None

    def get(self, version: int | None = None) -> OnnxModel:
        """The requested version, or the latest; NotFound / Unavailable with what there is."""
        versions = self.versions
        if not versions:
            raise Unavailable(
                f"model '{self.name}' has no version loaded yet: waiting for one under {self.config.base_url}"
            )
        if version is None:
            return versions[max(versions)]
        found = versions.get(version)
        if found is None:
            raise NotFound(
                f"model '{self.name}' version {version} is not loaded: loaded versions are "
                f"{', '.join(str(v) for v in sorted(versions))}"
            )
        return found

    def poll_once(self) -> None:
        """Look for new or removed versions once; load, swap and unload accordingly."""
        try:
            complete = self._complete_versions()
        except StorageError as exc:
            log.warning(
                "cannot list versions of model '%s': %s (still serving %s)",
                self.name,
                exc.message,
                sorted(self.versions) or "nothing",
            )
            return
        current = self.versions
        loaded: dict[int, OnnxModel] = {}
        # newest first until the policy's count load: a refused version leaves its slot to the next older one,
        # which is usually already loaded, so refusing a new version never unloads an old one
        limit = self.config.policy.limit
        for version in self.config.policy.choose([v for v in complete if v not in self.refused]):
            if len(loaded) == limit:
                break
            model = current.get(version) or self._load(version)
            if model is not None:
                loaded[version] = model
        loaded = dict(sorted(loaded.items()))
        if loaded.keys() != current.keys():
            self._swap(current, loaded)
        elif not loaded and not self._waiting_logged:
            log.info(
                "model '%s': no complete version under %s yet (policy: %s); waiting for one",
                self.name,
                self.config.base_url,
                self.config.policy.describe(),
            )
            self._waiting_logged = True

    def _swap(self, current: dict[int, OnnxModel], loaded: dict[int, OnnxModel]) -> None:
        self.versions = loaded
        for version, model in current.items():
            if version not in loaded:
                model.close()
                log.info("model '%s' version %d unloaded", self.name, version)
        if loaded:
            self._loaded.set()
            log.info(
                "model '%s': serving version %d (loaded: %s)",
                self.name,
                max(loaded),
                ", ".join(str(v) for v in sorted(loaded)),
            )

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a poller that dies silently would stop all updates
                log.exception("model '%s': polling for versions failed", self.name)

    def _complete_versions(self) -> list[int]:
        store = open_store(self.config.base_url, self.config.storage)
        return [int(n) for n in store.children(holding=SIGNATURE_FILE) if n.isascii() and n.isdigit()]

    def _load(self, version: int) -> OnnxModel | None:
        try:
            model = self._load_version(version)
        except ServingError as exc:
            reason = exc.message
        except (StorageError, OSError) as exc:  # the store, not the model: try again at the next poll
            log.warning("model '%s' version %d could not be fetched, will retry: %s", self.name, version, exc)
            return None
        else:
            log.info("model '%s' version %d loaded", self.name, version)
            return model
        self.refused[version] = reason
        log.error(
            "model '%s' version %d refused, %s: %s",
            self.name,
            version,
            f"still serving version {max(self.versions)}" if self.versions else "nothing served yet",
            reason,
        )
        return None

    def _load_version(self, version: int) -> OnnxModel:
        store = open_store(join_url(self.config.base_url, str(version)), self.config.storage)
        signature = _parse_signature(store.read_bytes(SIGNATURE_FILE))
        with store.local_copy([signature.model_file]) as directory:
            # the session holds the model in memory: a downloaded copy can go
            return OnnxModel(self.name, version, directory, signature, self.config.threads, self.config.batching)


def _parse_signature(data: bytes) -> ModelSignature:
    from trainflow.export.signature import SignatureError

    try:
        return ModelSignature.from_json(data)
    except SignatureError as exc:
        raise ServingError(exc.message) from None
