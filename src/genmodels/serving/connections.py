"""uvicorn's HTTP/1.1 protocol with a deadline on each request's headers, and JSON answers
to requests it cannot parse.

uvicorn times out idle kept-alive connections but not a request whose headers trickle in (or
never come): thousands of such connections stay open as long as the client likes. Here a
connection that has not sent a whole request head within `header_timeout` seconds of its
first byte (or of opening) gets 408 and is closed. The body's deadline is the app's
(`RequestGuard`), which sees the request once its headers are in.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def _json_response(status: int, reason: str, detail: str) -> bytes:
    """A whole response that closes the connection, with the app's {"detail": ...} body."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class HeaderTimeoutProtocol(H11Protocol):
    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a whole request head arrived: its cycle started
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expired(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            detail = (
                f"request headers not received within {self.header_timeout:g} s; send them at once"
            )
            self.transport.write(_json_response(408, "Request Timeout", detail))
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request HTTP cannot parse: the answer is JSON like every other (uvicorn's is
        plain text)."""
        detail = f"not a valid HTTP/1.1 request ({msg}); check its request line and headers"
        self.transport.write(_json_response(400, "Bad Request", detail))
        self.transport.close()


def header_timeout_protocol(seconds: float) -> Any:
    """What uvicorn's `http` setting takes: a protocol factory (a partial pickles into the
    spawned workers, a class made on the fly would not)."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout=seconds)
