"""The model repository: numbered versions under a base path, loaded, polled and hot-swapped.

A version is `<base>/<n>/` with `signature.json` (written last by the exporter, so its presence means
the version is complete). New versions are loaded and warmed up before they are swapped in by
replacing one dict reference: requests in flight finish on the version they started with. A version
that fails to load is refused with one log line and the previous ones keep serving; it is tried again only
once its files change. Only the base's top level and the files of the versions tried are listed, never the
whole base (an S3 prefix may hold far more than the versions).
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
from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, Store, join_url, open_store

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, str], ...]  # a version's files: (name, size and mtime or ETag), sorted


@dataclass(frozen=True)
class Refusal:
    """Why a version was refused, and its files then: it is tried again only once they change."""

    reason: str
    files: Fingerprint


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
        self.refused: dict[int, Refusal] = {}
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
            found = self._version_numbers()
        except (StorageError, OSError) as exc:
            log.warning(
                "cannot list versions of model '%s' under %s: %s (still serving %s)",
                self.name,
                self.config.base_url,
                exc.message if isinstance(exc, StorageError) else exc.strerror or exc,
                sorted(self.versions) or "nothing",
            )
            return
        self.refused = {v: r for v, r in self.refused.items() if v in found}  # a version deleted is forgotten
        current = self.versions
        loaded: dict[int, OnnxModel] = {}
        # newest first until the policy's count load: a refused version leaves its slot to the next older one,
        # which is usually already loaded, so refusing a new version never unloads an old one
        limit = self.config.policy.limit
        for version in self.config.policy.choose(found):
            if len(loaded) == limit:
                break
            model = current.get(version) or self._try(version)
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

    def _version_numbers(self) -> list[int]:
        """The numbered names directly under the base, complete or not: nothing below them is listed."""
        store = open_store(self.config.base_url, self.config.storage)
        return [int(n) for n in store.children() if n.isascii() and n.isdigit()]

    def _try(self, version: int) -> OnnxModel | None:
        """Load a version that is complete and not refused as it is now; None otherwise."""
        store = open_store(join_url(self.config.base_url, str(version)), self.config.storage)
        try:
            files = _fingerprint(store)
        except ObjectNotFound:  # a stray file named like a version, or a version deleted since the listing
            return None
        except (StorageError, OSError) as exc:  # the store, not the model: try again at the next poll
            log.warning("model '%s' version %d could not be listed, will retry: %s", self.name, version, exc)
            return None
        refusal = self.refused.get(version)
        if SIGNATURE_FILE not in dict(files) or (refusal is not None and refusal.files == files):
            return None  # incomplete (the signature is written last), or refused and unchanged since
        return self._load(version, store, files)

    def _load(self, version: int, store: Store, files: Fingerprint) -> OnnxModel | None:
        try:
            model = self._load_version(version, store)
        except ServingError as exc:
            reason = exc.message
        except (StorageError, OSError) as exc:  # the store, not the model: try again at the next poll
            log.warning("model '%s' version %d could not be fetched, will retry: %s", self.name, version, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - whatever one version does (MemoryError...), the others serve
            reason = f"loading it failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        else:
            self.refused.pop(version, None)
            log.info("model '%s' version %d loaded", self.name, version)
            return model
        self.refused[version] = Refusal(reason, files)
        log.error(
            "model '%s' version %d refused, %s: %s (tried again once its files change)",
            self.name,
            version,
            f"still serving version {max(self.versions)}" if self.versions else "nothing served yet",
            reason,
        )
        return None

    def _load_version(self, version: int, store: Store) -> OnnxModel:
        signature = _parse_signature(store.read_bytes(SIGNATURE_FILE))
        with store.local_copy([signature.model_file]) as directory:
            # the session holds the model in memory: a downloaded copy can go
            return OnnxModel(self.name, version, directory, signature, self.config.threads, self.config.batching)


def check_base_path(base_url: str, options: StorageOptions | None = None) -> None:
    """ServingError when the base names nothing (a typo would wait forever) or cannot be read; lists its top level."""
    store = open_store(base_url, options)
    try:
        found = bool(store.children()) or (store.local_root is not None and store.local_root.is_dir())
    except OSError as exc:
        raise ServingError(
            f"cannot read the model directory {base_url}: {exc.strerror or exc}; give a directory you can read"
        ) from None
    if not found:
        raise ServingError(
            f"no model directory at {base_url}: give the directory that holds the numbered versions "
            "(a run's export base), or add --wait-for-model to serve once a version appears there"
        )


def _fingerprint(store: Store) -> Fingerprint:
    """What identifies a version's files as they are now; a refused version is retried once this changes."""
    return tuple(sorted((info.name, info.version_tag) for info in store.list()))


def _parse_signature(data: bytes) -> ModelSignature:
    from trainflow.export.signature import SignatureError

    try:
        return ModelSignature.from_json(data)
    except SignatureError as exc:
        raise ServingError(exc.message) from None
