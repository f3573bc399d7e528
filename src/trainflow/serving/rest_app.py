"""The REST server: the TF Serving and V2 adapters, health and /metrics behind one ASGI app.

Requests under `/v1/models/` and `/v2/models/` go straight to their adapter as a bare `RestRequest`, and the
adapter routes and answers every error itself (`v2_fast` answers the usual V2 infer request before all of them);
Starlette's router, middleware and `Request` (~15% of a small inference request's CPU) serve the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from trainflow.serving.dataplane import DataPlane
from trainflow.serving.http_status import Reply, json_response
from trainflow.serving.metrics import watch_event_loop
from trainflow.serving.rest_io import BodyLimits, BodyReader
from trainflow.serving.rest_request import RestRequest
from trainflow.serving.tfs_rest import TfsRest
from trainflow.serving.v2_fast import V2FastInfer
from trainflow.serving.v2_rest import V2Rest


def build_rest_app(plane: DataPlane, limits: BodyLimits, fast_v2: bool = True) -> ASGIApp:
    """All REST routes of one server, sharing one data plane; the event loop's lag is measured while it runs.

    `fast_v2=False` answers every V2 infer request with the general adapter; otherwise `v2_fast` answers the usual
    one first and hands anything else to it (the tests compare the two).
    """
    bodies = BodyReader(limits)
    tfs = TfsRest(plane, bodies)
    v2 = V2Rest(plane, bodies)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_event_loop(plane.metrics, "rest"))
        try:
            yield
        finally:
            watcher.cancel()

    async def live(request: Request) -> Reply:
        return json_response({"live": True})

    async def ready(request: Request) -> Reply:
        is_ready = plane.ready()
        return json_response({"ready": is_ready}, 200 if is_ready else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = plane.metrics.render()
        return Response(body, media_type=content_type)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        body = {"error": f"{request.method} {request.scope['path']}: {detail}"}
        return Response(orjson.dumps(body), status, media_type="application/json")

    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", v2.server, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    rest = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error}, lifespan=lifespan
    )
    adapters: dict[str, Callable[[RestRequest], Awaitable[Reply]]] = {"/v2/models/": v2, "/v1/models/": tfs}
    prefix = len("/v2/models/")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        adapter = adapters.get(scope["path"][:prefix]) if scope["type"] == "http" else None
        if adapter is None:
            await rest(scope, receive, send)
            return
        response = await adapter(RestRequest(scope, receive))
        await response(scope, receive, send)

    return V2FastInfer(plane, limits, app) if fast_v2 else app
