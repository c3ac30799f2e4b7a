"""uvicorn's HTTP protocol with a deadline on request headers (the slowloris defence).

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``), but any byte received
cancels that timer and nothing bounds how long a request's headers may take: a client sending one
header byte every few seconds holds a connection, and its file descriptor, forever; a few hundred
such clients exhaust the server. ``header_deadline_protocol(seconds)`` returns uvicorn's protocol
with one more timer, armed when a connection opens and again when a response completes (the wait
for the next request on a keep-alive connection), and disarmed when a request's headers are
complete. A connection still without complete headers when it fires is closed. Request bodies and
responses are not bounded here: a slow upload or a long event stream is untouched.

The same protocols write a response's head and the start of its body in one ``send``
(``CoalescedWrites``): uvicorn writes the head as soon as the application starts its answer and
the body when it comes, two system calls and two wake-ups of the client for an answer that is
ready at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["CoalescedWrites", "HeaderDeadline", "header_deadline_protocol"]

_HEAD = b"HTTP/1."
"""How a response head written by uvicorn starts (httptools' and h11's alike)."""
_JOINED_BYTES = 64 * 1024
"""A body chunk up to this size is copied behind the head it follows; a larger one is sent
after it, as it was."""


class CoalescedWrites:
    """A connection's transport that holds a response head until the body's first chunk, then
    sends both in one ``write``.

    A held head is sent no later than the end of the event loop's current iteration (a
    ``call_soon``): an answer whose body comes later (an event stream, a download waiting on
    storage) gets its head as it did. Every other call goes to the transport; those that write
    or close send the held head first, so bytes keep their order.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOINED_BYTES:
                self._transport.write(held + bytes(data))
                return
            self._transport.write(held)
        elif data[:7] == _HEAD and not self._transport.is_closing():
            self._held = bytes(data)
            asyncio.get_running_loop().call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Send the held head, if any."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, lines: Any) -> None:
        self.flush()
        self._transport.writelines(lines)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()


class HeaderDeadline:
    """One connection's timer: ``arm()`` starts the wait for headers unless one is running,
    ``disarm()`` ends it; when it expires the transport is closed. ``stop()`` ends it for good
    (the connection is gone).

    Arming and disarming only note when the wait ends. The loop's timer is made when none is
    pending; when it fires it closes the connection if the wait it was made for still runs,
    sleeps again until a wait armed since ends, or stops if none runs. A keep-alive connection's
    requests then cost no timer each: a timer made and cancelled per request was a heap push,
    a cancel and a heap pop on the event loop for every request.
    """

    def __init__(self, seconds: float, transport: asyncio.Transport) -> None:
        self._seconds = seconds
        self._transport = transport
        self._ends: float | None = None
        """The loop time the running wait ends at; None when no wait runs."""
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._ends is None and not self._transport.is_closing():
            loop = asyncio.get_running_loop()
            self._ends = loop.time() + self._seconds
            if self._timer is None:
                self._timer = loop.call_at(self._ends, self._fired, loop)

    def disarm(self) -> None:
        self._ends = None

    def stop(self) -> None:
        self._ends = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fired(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._ends is None:
            return
        if self._ends > loop.time():  # the wait armed since the timer was made
            self._timer = loop.call_at(self._ends, self._fired, loop)
            return
        self._ends = None
        if not self._transport.is_closing():
            self._transport.close()


class _ArmedOnConnect(asyncio.Protocol):
    """The timer's life on a connection: armed when it opens, stopped when it is lost. Mixed in
    before a uvicorn protocol, which it extends through ``super()``."""

    header_timeout_seconds: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport = CoalescedWrites(transport)  # type: ignore[assignment]
        super().connection_made(transport)
        self.header_deadline = HeaderDeadline(self.header_timeout_seconds, transport)
        self.header_deadline.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.header_deadline.stop()
        super().connection_lost(exc)


class H11HeaderDeadline(_ArmedOnConnect, H11Protocol):
    """h11's protocol: the peer is sending headers exactly while h11 sees it ``IDLE``."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is h11.IDLE:
            self.header_deadline.arm()
        else:
            self.header_deadline.disarm()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        return None

    class HttpToolsHeaderDeadline(_ArmedOnConnect, HttpToolsProtocol):
        """httptools' protocol: headers are complete at ``on_headers_complete``; after a response,
        a request already queued behind it (pipelined) had its headers complete before."""

        def on_headers_complete(self) -> None:
            self.header_deadline.disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            next_request_waiting = bool(self.pipeline)
            super().on_response_complete()
            if not next_request_waiting:
                self.header_deadline.arm()

    return HttpToolsHeaderDeadline


def header_deadline_protocol(seconds: float, *, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (``http``: ``auto``, ``httptools`` or ``h11``, as uvicorn's
    own setting) closing connections whose request headers take longer than ``seconds``."""
    base = _httptools_protocol() if http in ("auto", "httptools") else None
    if base is None:
        if http == "httptools":
            raise ValueError("httptools is not installed")
        base = H11HeaderDeadline
    return type(base.__name__, (base,), {"header_timeout_seconds": seconds})
