"""The tracking URI has one parser (`tracking/uri.py`): the client's check, the curve sink's poster and the
`tracking-uri` parameter type all answer from it, and what each accepts or refuses is what it did before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import trainflow
from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.param_types import check_meaning
from trainflow.tracking.client import check_uri
from trainflow.tracking.errors import TrackingError
from trainflow.tracking.log_batch import LogBatchPoster, auth_headers
from trainflow.tracking.uri import ServerAddress, redacted, server_address

SRC = Path(trainflow.__file__).parent

# uri: (the client takes it, the sink posts to it directly, a tracking-uri parameter may hold it)
CASES = {
    "http://127.0.0.1:5000": (True, True, True),
    "https://mlflow.example.com": (True, True, True),
    "http://h:5000/prefix/": (True, True, True),
    "http://[::1]:5000": (True, True, True),
    "http://h:5000/x?y=1&z=2": (True, True, True),
    "http://u:p@h:5000": (True, True, False),  # credentials: the variable may hold them, a parameter never
    "http://a@b@c": (True, False, False),
    "http://h:abc": (True, False, True),  # MLflow is asked; the poster opens no connection to a port it cannot read
    "http://h/{{x}}": (True, True, False),
    "http://h/a'b": (True, True, False),
    "file:///tmp/mlruns": (True, False, True),
    "sqlite:///x.db": (True, False, True),
    "postgresql+psycopg2://h/db": (True, False, True),
    "databricks://profile": (True, False, True),
    "databricks": (False, False, False),
    "http://@h": (False, False, False),
    "http://h:5000/a b": (False, False, False),
    "HTTP://h": (False, False, False),
    "http:/h": (False, False, False),
    "gopher://h:70": (False, False, False),
    "s3://bucket/key": (False, False, False),
    "htp:/nowhere": (False, False, False),
    "": (False, False, False),
}


def _client_takes(uri: str) -> bool:
    try:
        check_uri(uri)
    except TrackingError:
        return False
    return True


def _sink_posts(uri: str) -> bool:
    try:
        LogBatchPoster(uri, 1.0).close()
    except ValueError:
        return False
    return True


def _parameter_holds(uri: str) -> bool:
    try:
        return check_meaning("tracking-uri", "mlflow-tracking-uri", uri) == uri
    except PipelineError as exc:
        assert "\n" not in exc.message and "p@" not in exc.message
        return False


@pytest.mark.parametrize("uri", CASES)
def test_each_reader_accepts_and_refuses_what_it_did(uri: str) -> None:
    assert (_client_takes(uri), _sink_posts(uri), _parameter_holds(uri)) == CASES[uri]


def test_an_http_uris_parts_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert server_address(" https://al%40ice:pw@[::1]:8443/mlflow/ ") == ServerAddress(
        True, "al%40ice:pw", "[::1]", 8443, "/mlflow"
    )
    assert auth_headers("http://al%40ice:pw@h:5000") == {"Authorization": "Basic YWxAaWNlOnB3"}
    assert redacted("http://al%40ice:pw@h:5000/x") == "http://h:5000/x"
    with pytest.raises(TrackingError) as refused:
        check_uri("gopher://bob:secret@h:70")
    assert "secret" not in refused.value.message


def test_no_other_module_parses_a_tracking_uri() -> None:
    """Only uri.py holds a URI pattern among the tracking modules and the parameter types."""
    pattern = re.compile(r"re\.compile\(.*(://|https\?|file\|sqlite)")
    readers = [*sorted((SRC / "tracking").glob("*.py")), SRC / "pipelines" / "param_types.py"]
    found = [
        f"{path.relative_to(SRC)}: {line.strip()}"
        for path in readers
        if path.name != "uri.py"
        for line in path.read_text().splitlines()
        if pattern.search(line) and "ENDPOINT" not in line
    ]
    assert found == []
