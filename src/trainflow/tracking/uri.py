"""The tracking URI's one parser: which URIs MLflow takes, an http(s) one's parts, and its user info kept out of sight.

A tracking URI is not a storage URL (trainflow's stores never see it), so storage's URL rules do not apply; every
reader of one (the client's check, the curve sink's poster, the `tracking-uri` parameter type) asks this module.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from trainflow.tracking.errors import TrackingError

# http(s)://AUTHORITY[/PATH] (the authority anything but a slash or a space, not starting with @), or a store MLflow
# opens itself: file:, sqlite:, postgresql(+driver):, mysql(+driver):, databricks(:profile)
_URI = re.compile(
    r"(?P<protocol>https?)://(?P<authority>(?!@)[^/\s]+)(?P<path>/\S*)?"
    r"|(?P<store>file|sqlite|postgresql|mysql|databricks)[:+]\S*"
)
# an http(s) authority a connection can be opened to: [USERINFO@]HOST[:PORT], HOST a name, an address or [IPv6]
_AUTHORITY = re.compile(r"(?:(?P<userinfo>[^/@]*)@)?(?P<host>\[[^\]/]+\]|[^/:@]+)(?::(?P<port>\d+))?")
# the user info of any scheme://user:password@ (what messages, logs and records must not show)
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]*@")
# what a tracking URI parameter may hold: a URL's characters without quotes, braces, spaces or backslashes (a pod's
# env gets it; a placeholder or a string's end has no business in it)
_PARAMETER_CHARS = re.compile(r"[A-Za-z0-9:/._~%+=?&,\[\]-]{1,2000}")


class TrackingUri(NamedTuple):
    protocol: str  # http or https, else the store's (file, sqlite, postgresql, mysql, databricks)
    authority: str  # http(s): [USERINFO@]HOST[:PORT]; '' for a store
    path: str  # http(s): '' or /PATH; '' for a store


class ServerAddress(NamedTuple):
    https: bool
    userinfo: str
    host: str
    port: int | None
    path: str  # the server's base path, '' or /prefix without a trailing slash


def parse_uri(uri: str) -> TrackingUri | None:
    """`uri`'s parts when it is a tracking URI MLflow accepts, else None (matched whole)."""
    found = _URI.fullmatch(uri)
    if found is None:
        return None
    if found["store"]:
        return TrackingUri(found["store"], "", "")
    return TrackingUri(found["protocol"], found["authority"], found["path"] or "")


def check_uri(uri: str) -> None:
    """TrackingError unless `uri` is a tracking URI MLflow accepts (credentials stay out of the message)."""
    if parse_uri(uri) is None:
        raise TrackingError(
            f"MLFLOW_TRACKING_URI {redacted(uri)!r} is not a tracking URI: give http(s)://HOST:PORT of an MLflow "
            "server (or file:// / sqlite://), or unset it to run without tracking"
        )


def server_address(uri: str) -> ServerAddress:
    """The parts of an http(s) tracking URI a connection opens to; ValueError for anything else."""
    parsed = parse_uri(uri.strip())
    found = _AUTHORITY.fullmatch(parsed.authority) if parsed is not None and parsed.authority else None
    if parsed is None or found is None:
        raise ValueError("not an http(s) tracking URI")
    port = found["port"]
    return ServerAddress(
        parsed.protocol == "https",
        found["userinfo"] or "",
        found["host"],
        int(port) if port else None,
        parsed.path.rstrip("/"),
    )


def redacted(uri: str) -> str:
    """`uri` without a user name or password in it (what messages and logs may show)."""
    return _USERINFO.sub(r"\1", uri)


def has_credentials(uri: str) -> bool:
    """Whether `uri` holds a user name or password (user info before its host)."""
    return redacted(uri) != uri


def is_parameter_uri(uri: str) -> bool:
    """Whether `uri` may be a `tracking-uri` parameter's value: a tracking URI of plain URL characters (a pod's
    environment and a manifest get it as data). Credentials are checked apart (`has_credentials`)."""
    return parse_uri(uri) is not None and _PARAMETER_CHARS.fullmatch(uri) is not None
