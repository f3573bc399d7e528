"""MLflow's REST `runs/log-batch` over one kept-alive connection: how the curve sink sends a batch.

The standard library's http.client, which a training worker has loaded already: no httpx or mlflow import
in the worker, and no new connection or TLS context per batch (`httpx.post` built both each time: about
0.2 s of CPU, most of it holding the interpreter lock, against training steps of a few milliseconds).
Where an HTTP(S)_PROXY applies to the server, a kept `httpx.Client` goes through it instead.
Credentials are MLflow's own variables (token, else user name and password, else the URI's user info).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import urllib.parse
import urllib.request
from typing import Any

from trainflow.tracking.uri import ServerAddress, server_address

# a kept connection the server closed while idle fails on its next request before the server read it: sent again once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


def auth_headers(uri: str) -> dict[str, str]:
    """The Authorization header MLflow's client would send to `uri`: bearer token, basic user/password, or none."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    url_user, _, url_password = server_address(uri).userinfo.partition(":")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(url_user)
    if not user:
        return {}
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(url_password)
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def tls_context() -> ssl.SSLContext:
    """Verification as MLflow's client does it: its insecure switch, its CA bundle variable, else certifi's."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":  # the user's choice, as MLflow allows
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        return insecure
    cafile = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    return ssl.create_default_context(cafile=cafile)


def _proxied(address: ServerAddress) -> bool:
    protocol = "https" if address.https else "http"
    return protocol in urllib.request.getproxies() and not urllib.request.proxy_bypass(address.host)


class LogBatchPoster:
    """POSTs metrics to one run's server; `post` raises on any failure (the sink keeps the batch and retries)."""

    def __init__(self, uri: str, timeout: float):
        self.uri, self.timeout = uri, timeout
        self._address = address = server_address(uri)
        self._host = address.host.strip("[]")  # an IPv6 literal without its brackets
        self._path = address.path + "/api/2.0/mlflow/runs/log-batch"
        port = f":{address.port}" if address.port else ""
        # without the user info, which goes in the header
        self._url = f"{'https' if address.https else 'http'}://{address.host}{port}{self._path}"
        self._headers = {"Content-Type": "application/json", **auth_headers(uri)}
        self._connection: http.client.HTTPConnection | None = None
        self._client: Any = None  # httpx.Client, where a proxy applies

    def post(self, run_id: str, metrics: list[dict[str, Any]]) -> None:
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        if self._client is not None or _proxied(self._address):
            status, text = self._post_through_proxy(body)
        else:
            status, text = self._post_direct(body)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {text[:200]}")

    def _post_direct(self, body: bytes) -> tuple[int, str]:
        reused = self._connection is not None
        try:
            return self._request(body)
        except _STALE:
            self.close()
            if not reused:
                raise
        return self._request(body)

    def _request(self, body: bytes) -> tuple[int, str]:
        if self._connection is None:
            port = self._address.port
            if self._address.https:
                self._connection = http.client.HTTPSConnection(
                    self._host, port, timeout=self.timeout, context=tls_context()
                )
            else:
                self._connection = http.client.HTTPConnection(self._host, port, timeout=self.timeout)
        try:
            self._connection.request("POST", self._path, body, self._headers)
            reply = self._connection.getresponse()
            text = reply.read().decode("utf-8", "replace")
        except BaseException:
            self.close()  # a request cut halfway leaves the connection unusable
            raise
        if reply.will_close:
            self.close()
        return reply.status, text

    def _post_through_proxy(self, body: bytes) -> tuple[int, str]:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout, verify=tls_context())
        reply = self._client.post(self._url, content=body, headers=self._headers)
        return reply.status_code, reply.text

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._client is not None:
            self._client.close()
            self._client = None
