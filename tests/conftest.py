"""Fixtures shared by every test: an isolated TRAINFLOW_HOME, a real S3 endpoint, MNIST data."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers import AWS_TEST_ENV, free_port, start_moto, stop, wait_for_port  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from trainflow.datasets import DatasetCache

# MLflow's telemetry (off when CI is set, on in a plain `pytest`) sets and unsets a variable of os.environ from its
# thread while a test's thread iterates os.environ (requests' proxy lookup): a KeyError at random in an MLflow call.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# `mlflow.set_tracking_uri` / `set_registry_uri` (tests, and trainflow's registry code run in-process) also set these
# in os.environ, for subprocesses: left behind, every later test's `trainflow` process in that worker would track to,
# or look models up in, that test's server (a docs page's MlflowClient found no model in another test's registry).
_MLFLOW_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    before = {k: os.environ.get(k) for k in _MLFLOW_URIS}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trainflow"


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before any worker starts a `trainflow` process.

    The editable install leaves `src/` uncompiled, and with PYTHONDONTWRITEBYTECODE (set on our machines) no process
    writes a `.pyc`: each of the suite's hundreds of `trainflow` processes then compiled every module it imported
    (60-100 ms of CPU each, a third of a plain command's start-up). `compileall` rewrites only stale files.
    """
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without workers
        import compileall

        compileall.compile_dir(PACKAGE, quiet=2)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """loadfile, with the heaviest work first and the docs pages spread out (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from scheduling import HeaviestFirstScheduling

    return HeaviestFirstScheduling(config, log)


@pytest.fixture(autouse=True)
def trainflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TRAINFLOW_HOME and no stray endpoint settings."""
    home = tmp_path / "trainflow-home"
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "S3_ENDPOINT", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def cache(trainflow_home: Path) -> DatasetCache:
    """The dataset cache of the test's TRAINFLOW_HOME (shadows pytest's own `cache`, which no test here uses)."""
    from trainflow.datasets import DatasetCache

    return DatasetCache(trainflow_home / "cache" / "datasets")


@pytest.fixture
def refused_here() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """`trainflow ARGS` run in this process, for a command refused early: no interpreter and torch to load.

    A `trainflow train` process spends ~3 s (half a minute under the suite's load) importing before it refuses.
    The CLI's setup_logging replaces the root logger's handlers and level, and the training launcher sets
    OMP_NUM_THREADS: both are put back. (A launcher's idle fork server stays until this test process ends.)
    Child processes write to the real stderr, not the returned one.
    """
    from click.testing import CliRunner

    from trainflow.cli.main import cli

    root = logging.getLogger()
    handlers, level, environ = root.handlers[:], root.level, os.environ.copy()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = CliRunner().invoke(cli, list(args), prog_name="trainflow")
        assert isinstance(result.exception, SystemExit), result.exc_info  # an exit it chose, not a traceback
        return subprocess.CompletedProcess(["trainflow", *args], result.exit_code, result.stdout, result.stderr)

    try:
        yield run
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto server) on loopback for the whole session."""
    proc, url = start_moto()
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS variables at the test endpoint; returns the endpoint URL."""
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    """A new, empty bucket; returns its s3:// URL."""
    import boto3

    name = f"tf-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST (../shared/data/mnist-10k) where present, else a small synthetic IDX dataset."""
    if SHARED_MNIST.is_dir():
        return SHARED_MNIST
    from trainflow.datasets import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("mnist-synthetic"))


@pytest.fixture
def mnist_s3_url(s3_bucket: str, mnist_dir: Path) -> str:
    """`mnist_dir` uploaded to a fresh bucket; returns s3://bucket/data/mnist/."""
    from trainflow.storage import mirror_dir

    url = f"{s3_bucket}/data/mnist/"
    mirror_dir(mnist_dir, url)
    return url


class _Faults:
    """Per-path fault plan for the test HTTP server: how many 503s to answer before serving."""

    def __init__(self) -> None:
        self.fail_first: dict[str, int] = {}
        self.always_fail: set[str] = set()
        self.cut_short: set[str] = set()
        self.requests: list[tuple[str, str]] = []


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path, _Faults]]:
    """A real HTTP file server on loopback serving a temp directory, with injectable faults.

    Yields (base URL, served directory, faults).
    """
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "http-root"
    root.mkdir()
    faults = _Faults()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _fault(self) -> bool:
            faults.requests.append((self.command, self.path))
            left = faults.fail_first.get(self.path, 0)
            if self.path in faults.always_fail or left > 0:
                faults.fail_first[self.path] = max(0, left - 1)
                self.send_error(503, "try again")
                return True
            return False

        def do_HEAD(self) -> None:
            if not self._fault():
                super().do_HEAD()

        def do_GET(self) -> None:
            if self._fault():
                return
            if self.path in faults.cut_short:
                data = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root, faults
    finally:
        server.shutdown()
        server.server_close()
