"""Several models in one server: TF Serving's `--model_config_file` text format, and version policies.

model_config_list {
  config { name: "mnist" base_path: "/models/mnist" model_platform: "onnx"
           model_version_policy { latest { num_versions: 2 } } }
  config { name: "iris" base_path: "s3://bucket/iris" model_version_policy { specific { versions: 3 } } }
}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from trainflow.serving.errors import ServingError, shown
from trainflow.serving.names import check_model_name
from trainflow.serving.protos.tensorflow_serving.config import file_system_storage_path_source_pb2 as storage_pb
from trainflow.serving.protos.tensorflow_serving.config import model_server_config_pb2 as pb

ServableVersionPolicy = storage_pb.FileSystemStoragePathSourceConfig.ServableVersionPolicy

PLATFORMS = ("onnx", "onnxruntime_onnx")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_VERSIONS = 1000


@dataclass(frozen=True)
class VersionPolicy:
    """Which complete versions to serve: the newest `count` ("latest"), every one ("all"), or `versions`."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, candidates: list[int]) -> list[int]:
        """The versions to try, in order (newest first); loading stops once `limit` have loaded."""
        newest_first = sorted(candidates, reverse=True)
        if self.kind == "specific":
            return [v for v in newest_first if v in self.versions]
        return newest_first

    @property
    def limit(self) -> int | None:
        return self.count if self.kind == "latest" else None

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {self.count}"
        return "all versions" if self.kind == "all" else f"versions {', '.join(map(str, self.versions))}"


@dataclass(frozen=True)
class ModelEntry:
    """One served model: the name clients address, where its numbered versions are, which ones to serve."""

    name: str
    base_path: str
    policy: VersionPolicy


def read_model_config(path: str | Path) -> list[ModelEntry]:
    """The models of a `--model_config_file`; ServingError in one line naming the file and what to fix."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ServingError(f"model config file {file} is over {MAX_CONFIG_BYTES} bytes: is it the right file?")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ServingError(f"cannot read model config file {file}: {reason}") from None
    return parse_model_config(text, str(file))


def parse_model_config(text: str, source: str = "model config") -> list[ModelEntry]:
    """Parse the text format into model entries, refusing unknown fields, duplicates and invalid names."""
    config = pb.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ServingError(
            f"{source}: {str(exc).splitlines()[0]}: see TF Serving's model_config_list format in the README"
        ) from None
    entries = [_entry(c, source, i) for i, c in enumerate(config.model_config_list.config, 1)]
    if not entries:
        raise ServingError(f"{source}: no models: add a model_config_list {{ config {{ name: ... base_path: ... }} }}")
    names = [e.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ServingError(f"{source}: model {shown(twice[0])} is configured twice: give each model its own name")
    return entries


def _entry(config: pb.ModelConfig, source: str, index: int) -> ModelEntry:
    where = f"{source}: config {index}"
    name, base_path, platform = config.name, config.base_path, config.model_platform
    try:
        check_model_name(name)
    except ServingError as exc:
        raise ServingError(f"{where}: {exc.message}") from None
    if not base_path:
        raise ServingError(
            f"{where} (model '{name}'): base_path is missing: give the directory or s3:// URL "
            "holding its numbered versions"
        )
    if platform and platform not in PLATFORMS:
        raise ServingError(
            f"{where} (model '{name}'): model_platform {shown(platform)} is not served here: use "
            f"{' or '.join(repr(p) for p in PLATFORMS)} (or leave it out)"
        )
    return ModelEntry(name, base_path, _policy(config.model_version_policy, f"{where} (model '{name}')"))


def _policy(policy: ServableVersionPolicy, where: str) -> VersionPolicy:
    choice = policy.WhichOneof("policy_choice")
    if choice is None:
        return VersionPolicy("latest", 1)
    if choice == "all":
        return VersionPolicy("all")
    if choice == "latest":
        count = policy.latest.num_versions or 1
        if count > MAX_VERSIONS:
            raise ServingError(f"{where}: latest num_versions is {count}: serve at most {MAX_VERSIONS}")
        return VersionPolicy("latest", count)
    versions = tuple(sorted(set(policy.specific.versions)))
    if not versions or versions[0] < 1 or len(versions) > MAX_VERSIONS:
        raise ServingError(
            f"{where}: specific versions must be 1 to {MAX_VERSIONS} positive numbers, got {shown(list(versions))}"
        )
    return VersionPolicy("specific", versions=versions)
