"""uvicorn's httptools protocol plus deadlines for a request's headers and for its body, on one timer.

uvicorn times out idle keep-alive connections but not a request whose headers are still arriving, so a
client sending a header line now and then (slowloris) would hold its connection, and a file descriptor,
forever. A body still arriving `body_timeout` s after its headers marks its request late (`BODY_LATE` in the
ASGI scope) and wakes the app's `receive()`, so that `rest_io.BodyReader` answers 408. A request whose body
arrives with its headers, nearly every one, costs no timer at all; nor does the wait for a keep-alive
connection's next request: one timer per connection checks when that wait began, and closes the connection
when no byte came within uvicorn's keep-alive timeout or no whole headers within `header_timeout`. (uvicorn
arms and cancels a keep-alive timer for every request, ~3 us of a small inference request's CPU, as much again
in the event loop's sweeps of cancelled timers.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trainflow.serving.rest_request import BODY_LATE


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose next request's headers are not complete `header_timeout` s after it could start,
    or that stays idle uvicorn's `timeout_keep_alive` s after a response, and marks a request late whose body is
    not complete `body_timeout` s after its headers."""

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._idle_timeout = min(self.timeout_keep_alive, header_timeout)  # after a response, until a byte comes
        self._header_timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # when the running header timer fires
        self._waiting_since = 0.0  # when the connection began waiting for its next request's headers
        self._keep_alive_wait = False  # that wait began with a response's end: an idle connection may be closed
        self._idle = False  # no byte arrived since the wait began
        self._body_timer: tuple[Any, asyncio.TimerHandle] | None = None  # (the request's cycle, its timer)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(keep_alive=False)

    def data_received(self, data: bytes) -> None:
        self._idle = False
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
        """uvicorn's, less its keep-alive timer: the header timer closes an idle connection as that timer would."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()  # never armed here; as uvicorn's, should anything arm it
        self.flow.resume_reading()
        if self.pipeline:  # a request that arrived during this one's response starts now: not idle
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            self._arm(keep_alive=False)
        else:
            self._arm(keep_alive=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_body_timer()
        super().connection_lost(exc)

    def _arm(self, keep_alive: bool) -> None:
        """The wait for the next request begins now; the running timer checks, if any and not due too late."""
        self._waiting_since = now = self.loop.time()
        self._keep_alive_wait = self._idle = keep_alive
        due = now + (self._idle_timeout if keep_alive else self.header_timeout)
        if self._header_timer is not None:
            if self._timer_due <= due:
                return
            self._header_timer.cancel()  # the first response's keep-alive: earlier than the connection's deadline
        self._timer_due = due
        self._header_timer = self.loop.call_at(due, self._expire)

    def _wait(self) -> float:
        """How long the connection may wait for its next request's headers, from when the wait began."""
        return self._idle_timeout if self._keep_alive_wait and self._idle else self.header_timeout

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
        due = self._waiting_since + self._wait()
        if self.loop.time() >= due:  # idle, or still waiting for the headers of a request that could start at `due`
            self.transport.close()
        else:  # requests were answered since this timer was armed, or bytes came: the wait ends later
            self._timer_due = due
            self._header_timer = self.loop.call_at(due, self._expire)

    def _body_late(self, cycle: Any) -> None:
        if self._body_timer is not None and self._body_timer[0] is cycle:
            self._body_timer = None
        if cycle.more_body and not cycle.response_complete:
            cycle.scope[BODY_LATE] = True
            cycle.message_event.set()  # the reader's receive() returns what arrived, and sees the mark
