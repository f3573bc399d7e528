"""The dashboard server: a JSON API over the workflow backend, and the static page that draws it."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trainflow.errors import TrainflowError
from trainflow.ui.compare import compared_names, comparison
from trainflow.ui.curves import CurveReader, Curves
from trainflow.ui.errors import ModelFailed, ModelUnavailable, RequestTooLarge, UiError, WorkflowNotFound
from trainflow.ui.hosts import HostCheck, allowed_host_names
from trainflow.ui.model_input import model_input
from trainflow.ui.predict import example_for, predict_digit
from trainflow.ui.study import study_view
from trainflow.ui.views import workflow_view
from trainflow.workflows import WorkflowError
from trainflow.workflows.backend import Backend, WorkflowInfo
from trainflow.workflows.endpoints import training_steps

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_LOG_LINES = 2000
MAX_PREDICT_BYTES = 2 * 1024 * 1024
# What the page cannot do for workflows on a cluster, said once on the page (and by the refused requests).
TRY_ON_CLUSTER = (
    "Try the model is not available for a cluster's workflows (the model server's address is inside the "
    "cluster): run `trainflow predict {flags} --workflow NAME`"
)
CLUSTER_LIMITS = (
    TRY_ON_CLUSTER,
    "Curves come from the train dir's TensorBoard events (this machine needs read access to it); "
    "per-step progress stays in the pods: `trainflow tensorboard NAME {flags}`",
)


def _status_of(exc: TrainflowError) -> int:
    """The one place library errors become HTTP statuses."""
    if isinstance(exc, ModelUnavailable):
        return 503
    if isinstance(exc, ModelFailed):
        return 502
    if isinstance(exc, WorkflowNotFound):
        return 404
    if isinstance(exc, RequestTooLarge):
        return 413
    return 400


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; RequestTooLarge as soon as it is known to exceed `limit` bytes, before reading it all."""
    too_large = RequestTooLarge(f"the request is larger than {limit} bytes: send one digit, a PNG of the canvas")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class Dashboard:
    """The API handlers, bound to one backend."""

    def __init__(self, backend: Backend, cache_dir: Path) -> None:
        self.backend = backend
        self.curves = CurveReader(cache_dir)
        self.namespace = backend.namespace
        self.limits = (
            [] if backend.services_listen_here else [line.format(flags=backend.flags) for line in CLUSTER_LIMITS]
        )

    def backend_of(self, request: Request) -> JSONResponse:
        """Where the workflows run, and what the page cannot do there."""
        return JSONResponse({"name": self.backend.name, "namespace": self.namespace or None, "limits": self.limits})

    def _served_here(self) -> None:
        if self.limits:
            raise ModelUnavailable(TRY_ON_CLUSTER.format(flags=self.backend.flags))

    def find(self, name: str) -> WorkflowInfo:
        """The workflow `name`; unknown names raise WorkflowNotFound (a 404), other failures stay as they are."""
        try:
            return self.backend.get(name)
        except WorkflowError as exc:
            if name not in {i.name for i in self.backend.list()}:
                raise WorkflowNotFound(exc.message) from None
            raise

    def list_workflows(self, request: Request) -> JSONResponse:
        infos = sorted(self.backend.list(), key=lambda i: i.created_at, reverse=True)
        return JSONResponse([i.to_dict() for i in infos])

    def list_schedules(self, request: Request) -> JSONResponse:
        """Each schedule with its last and next runs (its history stays for `trainflow schedule get`)."""
        return JSONResponse([{**s.to_dict(), "history": []} for s in self.backend.schedules()])

    def get_workflow(self, request: Request) -> JSONResponse:
        return JSONResponse(workflow_view(self.find(request.path_params["name"])))

    def logs(self, request: Request) -> JSONResponse:
        name, step = request.path_params["name"], request.query_params.get("step")
        if not step:
            raise UiError("say which step's log to show: ?step=<step name>")
        self.find(name)
        prefix = f"{step}: "
        lines = [line.removeprefix(prefix) for line in self.backend.logs(name, step)]
        return JSONResponse(
            {"workflow": name, "step": step, "lines": lines[-MAX_LOG_LINES:], "truncated": len(lines) > MAX_LOG_LINES}
        )

    def _curves(self, info: WorkflowInfo) -> Curves:
        progress = {
            s.name: self.backend.progress(info.name, s.name) for s in training_steps(info) if s.status != "Pending"
        }
        return self.curves.read(info, progress)

    def curves_of(self, request: Request) -> JSONResponse:
        return JSONResponse(self._curves(self.find(request.path_params["name"])).to_dict())

    def trials_of(self, request: Request) -> JSONResponse:
        """The run's studies: each trial's parameters, value, state and curve, and the best so far."""
        return JSONResponse(study_view(self.find(request.path_params["name"])))

    def compare(self, request: Request) -> JSONResponse:
        """Runs side by side (`?run=A&run=B...`): their parameters, final metrics and curves."""
        infos = [self.find(name) for name in compared_names(request.query_params.getlist("run"))]
        return JSONResponse(comparison(infos, [self._curves(info) for info in infos]))

    async def predict(self, request: Request) -> JSONResponse:
        self._served_here()
        body = await read_body(request, MAX_PREDICT_BYTES)
        try:
            payload: Any = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
            raise UiError('the body is not JSON: send {"image": "data:image/png;base64,..."}') from None
        info = await run_in_threadpool(self.find, request.path_params["name"])
        model = await run_in_threadpool(model_input, info)
        example = await run_in_threadpool(example_for, payload, model)
        return JSONResponse(await run_in_threadpool(predict_digit, info, example, 10.0, model))

    async def model_of(self, request: Request) -> JSONResponse:
        self._served_here()
        info = await run_in_threadpool(self.find, request.path_params["name"])
        return JSONResponse((await run_in_threadpool(model_input, info)).to_dict())


async def _trainflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrainflowError)
    status = _status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return _error(exc.message, status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return _error(exc.detail if exc.status_code != 404 else f"no API route {request.url.path}", exc.status_code)
    return Response(exc.detail, status_code=exc.status_code)


def create_app(
    backend: Backend, cache_dir: Path | None = None, allowed_hosts: frozenset[str] | None = None
) -> Starlette:
    """The dashboard as an ASGI app: `/` the page, `/static/...` its assets, `/api/...` the JSON.

    Requests must name one of `allowed_hosts` in their Host header (default: the loopback names; `*`: any).
    """
    cache = cache_dir or Path(tempfile.mkdtemp(prefix="trainflow-ui-"))
    dashboard = Dashboard(backend, cache)

    def index(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/api/backend", dashboard.backend_of),
        Route("/api/workflows", dashboard.list_workflows),
        Route("/api/compare", dashboard.compare),
        Route("/api/schedules", dashboard.list_schedules),
        Route("/api/workflows/{name}", dashboard.get_workflow),
        Route("/api/workflows/{name}/logs", dashboard.logs),
        Route("/api/workflows/{name}/curves", dashboard.curves_of),
        Route("/api/workflows/{name}/trials", dashboard.trials_of),
        Route("/api/workflows/{name}/predict", dashboard.predict, methods=["POST"]),
        Route("/api/workflows/{name}/model-input", dashboard.model_of),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    hosts = allowed_hosts if allowed_hosts is not None else allowed_host_names("127.0.0.1")
    return Starlette(
        routes=routes,
        exception_handlers={TrainflowError: _trainflow_error, HTTPException: _http_error},
        middleware=[Middleware(HostCheck, allowed=hosts)],
    )
