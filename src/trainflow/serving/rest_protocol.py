"""uvicorn's httptools protocol plus deadlines for a request's headers and for its body.

uvicorn times out idle keep-alive connections but not a request whose headers are still arriving, so a
client sending a header line now and then (slowloris) would hold its connection, and a file descriptor,
forever. A body still arriving `body_timeout` s after its headers marks its request late (`BODY_LATE` in the
ASGI scope) and wakes the app's `receive()`, so that `rest_io.BodyReader` answers 408. A request whose body
arrives with its headers, nearly every one, costs no timer at all; nor does the header deadline of a keep-alive
connection's next request: one timer per connection checks when that wait began (a timer armed and cancelled per
request cost ~3% of a small inference request's CPU).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trainflow.serving.rest_request import BODY_LATE


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose next request's headers are not complete `header_timeout` s after it could start,
    and marks a request late whose body is not complete `body_timeout` s after its headers."""

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0  # when the connection began waiting for its next request's headers
        self._body_timer: tuple[Any, asyncio.TimerHandle] | None = None  # (the request's cycle, its timer)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if self._body_timer is None or self._body_timer[0] is not cycle:
            self._stop_body_timer()
            self._body_timer = (cycle, self.loop.call_later(self.body_timeout, self._body_late, cycle))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_body_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_body_timer()
        super().connection_lost(exc)

    def _arm(self) -> None:
        """The next request's headers are due `header_timeout` s from now; the running timer checks, if any."""
        self._waiting_since = self.loop.time()
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._waiting_since + self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer[1].cancel()
            self._body_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is under way: its response's end arms the timer again
        due = self._waiting_since + self.header_timeout
        if self.loop.time() >= due:  # still waiting for the headers of a request that could start at `due`
            self.transport.close()
        else:  # requests were answered since this timer was armed: the wait for the next one began later
            self._header_timer = self.loop.call_at(due, self._expire)

    def _body_late(self, cycle: Any) -> None:
        if self._body_timer is not None and self._body_timer[0] is cycle:
            self._body_timer = None
        if cycle.more_body and not cycle.response_complete:
            cycle.scope[BODY_LATE] = True
            cycle.message_event.set()  # the reader's receive() returns what arrived, and sees the mark
