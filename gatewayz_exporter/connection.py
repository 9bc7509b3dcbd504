"""One client connection on the server's event loop: bytes in and out, TLS on memory buffers.

A ``Connection`` is the asyncio protocol for one accepted socket and knows nothing of HTTP: it
buffers input up to MAX_BUFFERED_BYTES, writes with flow control and, on a TLS port, runs an
``ssl.SSLObject`` once a whole ClientHello has arrived and its host grants a handshake slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .webconfig import WebConfig

log = logging.getLogger("gatewayz_exporter.server")

MAX_BUFFERED_BYTES = 64 * 1024  # read no further ahead than this (pipelined requests wait in the kernel)
MAX_CLIENT_HELLO_BYTES = 5 + 2**14 + 2048  # one TLS record, buffered before a handshake slot is taken
READ_CHUNK = 64 * 1024


class ConnectionHost(Protocol):
    """What a Connection needs from its server; all called on the event loop."""

    @property
    def idle_timeout(self) -> float: ...

    @property
    def handshake_timeout(self) -> float: ...

    def admit(self, connection: Connection) -> bool:
        """Count a new connection; False refuses it (the connection cap)."""

    def released(self, connection: Connection) -> None:
        """The connection is gone or going: it no longer counts, waits or holds a handshake slot."""

    def current_config(self) -> WebConfig | None:
        """The web config for a new connection (its TLS context)."""

    def want_handshake(self, connection: Connection) -> None:
        """A whole ClientHello record is here: ``start_handshake`` now, or when a slot frees."""

    def handshake_finished(self, connection: Connection) -> None:
        """The connection's handshake slot is free."""

    def write_stalled(self, connection: Connection) -> None:
        """The peer stopped taking what is written (the transport's buffer is over its high mark)."""

    def write_resumed(self, connection: Connection) -> None:
        """The peer takes what is written again."""

    def client_error(self, event: str, peer: str | None, **fields: object) -> None:
        """Log a client's fault (DEBUG, rate-limited)."""

    async def serve(self, connection: Connection) -> None:
        """The HTTP exchange, from the handshake to the close."""


class Connection(asyncio.Protocol):
    """One client connection: bytes in and out (TLS through memory BIOs), driven by ``host.serve``."""

    def __init__(self, host: ConnectionHost, loop: asyncio.AbstractEventLoop):
        self._host = host
        self._loop = loop
        self.accepted = self._loop.time()
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._inbox = bytearray()
        self._eof = False
        self.closed = False
        self._reading_paused = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._task: asyncio.Task[None] | None = None
        # TLS state; None on a plain port
        self._tls_context: ssl.SSLContext | None = None
        self._sslobj: ssl.SSLObject | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._hello = bytearray()  # bytes received while waiting for a handshake slot
        self._in_handshake = False
        self._handshake: asyncio.Future[bool] | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # create_server makes only these
            transport.close()
            return
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else None
        if not self._host.admit(self):
            self.closed = True
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config = self._host.current_config()
        if config is not None and config.ssl_context is not None:
            self._tls_context = config.ssl_context
            self._handshake = self._loop.create_future()
        self._task = self._loop.create_task(self.serve())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._tls_context is None:
            self._take(data)
        elif self._sslobj is None:
            self._hello += data
            if len(self._hello) > MAX_CLIENT_HELLO_BYTES:
                self.abort()
                return
            if _first_record_complete(self._hello):
                self._host.want_handshake(self)
        elif self._incoming is not None:
            self._incoming.write(data)
            self._tls_pump()

    def eof_received(self) -> bool:
        # Keep the transport open: answers to requests already received may still be sent.
        self._eof = True
        if self._incoming is not None:
            self._incoming.write_eof()
            self._tls_pump()
        self._handshake_failed()
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._host.released(self)
        self._handshake_failed()
        for timer in (self._handshake_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if not self.closed:
            self._host.write_stalled(self)

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._host.write_resumed(self)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --- TLS on memory buffers -------------------------------------------------

    def start_handshake(self) -> None:
        """Called by the server when a handshake slot is free; feeds the bytes buffered so far."""
        if self._tls_context is None or self.transport is None or self.closed:
            self._host.handshake_finished(self)  # never keep a slot
            return
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            self._sslobj = self._tls_context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        except ssl.SSLError:
            self.abort()
            return
        self._in_handshake = True
        self._handshake_timer = self._loop.call_later(self._host.handshake_timeout, self._handshake_expired)
        self._incoming.write(bytes(self._hello))
        self._hello = bytearray()
        if self._eof:
            self._incoming.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        self._tls_pump()

    def _handshake_failed(self) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_result(False)

    def _handshake_expired(self) -> None:
        if self._in_handshake and not self.closed:
            self._host.client_error("TLS handshake too slow", self.peer)
            self.abort()

    def pause_for_handshake_slot(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _tls_pump(self) -> None:
        sslobj = self._sslobj
        if sslobj is None or self._handshake is None or self.closed:
            return
        if self._in_handshake:
            try:
                sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                return
            except (ssl.SSLError, OSError) as error:
                self._flush_tls()
                self._host.client_error("TLS handshake failed", self.peer, error=type(error).__name__)
                self._handshake_failed()
                self.close()
                return
            self._in_handshake = False
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
            self._host.handshake_finished(self)
            if not self._handshake.done():
                self._handshake.set_result(True)
        while True:
            try:
                chunk = sslobj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True
                break
            except (ssl.SSLError, OSError) as error:
                self._host.client_error("TLS error", self.peer, error=type(error).__name__)
                self._flush_tls()
                self.abort()
                return
            if not chunk:
                self._eof = True
                break
            self._take(chunk)
            if self._reading_paused:
                break  # the rest waits in the BIO until the inbox is read
        self._flush_tls()
        self._wake()

    def _flush_tls(self) -> None:
        if (
            self._outgoing is not None
            and self._outgoing.pending
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.write(self._outgoing.read())

    # --- reading ---------------------------------------------------------------

    def _take(self, data: bytes) -> None:
        self._inbox += data
        if len(self._inbox) >= MAX_BUFFERED_BYTES and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def _wake(self) -> None:
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)

    async def receive(self) -> bytes:
        """The bytes received so far (waiting for some); b"" at end of stream."""
        while not self._inbox and not self._eof and not self.closed:
            self._data_waiter = self._loop.create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None
        data = bytes(self._inbox)
        self._inbox.clear()
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()
            if self._sslobj is not None and not self._in_handshake:
                self._tls_pump()  # decrypted data may be waiting in the BIO
        return data

    def push_back(self, data: bytes) -> None:
        """Return bytes not consumed yet; the next ``receive`` gets them first."""
        self._inbox[:0] = data

    def has_buffered(self) -> bool:
        return bool(self._inbox)

    async def handshake(self) -> bool:
        """True once TLS is up (at once on a plain port); False when the handshake failed."""
        return True if self._handshake is None else await self._handshake

    # --- writing ---------------------------------------------------------------

    def write(self, *pieces: bytes | memoryview) -> None:
        # is_closing: the transport saw the peer go before connection_lost reached us; writing
        # on would make asyncio log a warning per write.
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError()
        if self._sslobj is None:
            self.transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            return
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[self._sslobj.write(view) :]
        except ssl.SSLError:
            self.abort()
            raise ConnectionResetError() from None
        self._flush_tls()

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError()
        if self._writing_paused:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
            if self.closed:
                raise ConnectionResetError()

    def close(self) -> None:
        """Close after what is buffered has been sent (a peer that stops reading is cut off later)."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        if self._sslobj is not None and not self._in_handshake:
            with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: no wait for the peer's close_notify
                self._sslobj.unwrap()
            self._flush_tls()
        self.transport.close()
        # A peer that stops reading would hold the socket open for ever; it gets idle_timeout.
        self._close_timer = self._loop.call_later(self._host.idle_timeout, self.transport.abort)
        self._host.handshake_finished(self)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._host.released(self)
        self._wake()

    async def serve(self) -> None:
        try:
            await self._host.serve(self)
        except Exception:  # our bug: this connection ends, the server goes on
            log.exception("Connection failed")
            self.abort()
        finally:
            self._task = None


def _first_record_complete(received: bytearray) -> bool:
    """True once the first TLS record (the ClientHello) is all here, or the bytes are not TLS.

    Only the 5-byte record header is read (type 22, version, length); OpenSSL parses the
    rest. Anything that is not a handshake record goes to OpenSSL at once, to be refused.
    """
    if not received:
        return False
    if received[0] != 0x16:
        return True
    return len(received) >= 5 and len(received) >= 5 + int.from_bytes(received[3:5], "big")
