"""The image the Dockerfile builds, built once per test session by scripts/build-image (cached between runs).

Without the tools (root, buildah, debootstrap) the image tests skip with the reason, except in CI
(CI=true), where that is a failure: CI installs them and must run these tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from filelock import FileLock

from tests.image.runtime import Pod, build_image, unavailable_reason
from tests.multinode.conftest import make_cluster, netns_available  # noqa: F401 (network-namespace nodes)

# A cold cache (debootstrap and every wheel) takes minutes; a warm one rebuilds only what changed.
BUILD_TIMEOUT = 1500

MakePod = Callable[..., Pod]


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image's name in buildah's local storage, built from the unmodified Dockerfile."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"image tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(f"image tests need buildah: {reason}")
    log = tmp_path_factory.mktemp("image-build") / "build.log"
    # xdist workers share buildah's storage: one builds, the others then find every layer cached.
    with FileLock(str(tmp_path_factory.getbasetemp().parent / "trainflow-image-build.lock")):
        try:
            return build_image(log, BUILD_TIMEOUT)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def make_pod(image: str) -> Iterator[MakePod]:
    """Pods of the image for one test: make_pod(hostname, volumes, hosts=..., netns=...); all removed after it."""
    pods: list[Pod] = []

    def make(hostname: str, volumes: Mapping[str, Path], **kwargs: object) -> Pod:
        pods.append(Pod(image, hostname, volumes, **kwargs))  # type: ignore[arg-type]
        return pods[-1]

    try:
        yield make
    finally:
        for pod in pods:
            pod.close()
