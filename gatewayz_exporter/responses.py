"""Writing one response: the head and the start of the body together, the rest in drained slices.

The head and the start of the body leave in one write (TCP_NODELAY is on); the
rest in slices, waiting for each to drain, so a slow reader holds one slice of
buffer, not a copy of the exposition. The whole response must be taken by
``deadline``: a reader that trickles or stops is cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from http import HTTPStatus

import h11

from .connection import Connection

WRITE_SLICE = 256 * 1024
COALESCE_BYTES = 64 * 1024  # head and the start of the body leave in one write


async def send_response(
    connection: Connection,
    exchange: h11.Connection,
    status: int,
    parts: Sequence[bytes],
    deadline: float,
    head_only: bool,
    content_type: bytes,
    extra: Sequence[tuple[bytes, bytes]],
) -> None:
    """Send one response on ``connection`` through the h11 state machine ``exchange``, by the loop time ``deadline``."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(sum(map(len, parts))).encode()),
        *extra,
    ]
    head = exchange.send(h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase))
    if head is None:  # h11 returns None only for ConnectionClosed
        raise ConnectionResetError()
    with_body = not head_only and exchange.our_state is h11.SEND_BODY
    slices = slices_of(parts, COALESCE_BYTES - len(head)) if with_body else iter(())
    first: list[bytes | memoryview] = [head]
    size = len(head)
    pending: bytes | memoryview | None = None
    for piece in slices:
        if size + len(piece) > COALESCE_BYTES and len(first) > 1:
            pending = piece
            break
        first.append(piece)
        size += len(piece)
    connection.write(*first)
    if with_body:
        # h11 frames the whole body at once, after the first bytes left: it only measures the
        # parts (passed through uncopied), and the head carries their total length.
        for part in parts:
            exchange.send_with_data_passthrough(h11.Data(data=part))
    if exchange.our_state is h11.SEND_BODY:
        exchange.send(h11.EndOfMessage())
    async with asyncio.timeout_at(deadline):
        while pending is not None:
            # A slice is written only once the one before has drained below the transport's mark.
            await connection.drain()
            connection.write(pending)
            pending = next(slices, None)
        await connection.drain()


def slices_of(parts: Sequence[bytes], first: int) -> Iterator[memoryview]:
    """Views of ``parts``: the first at most ``first`` bytes long, then WRITE_SLICE at most."""
    limit = max(1, first)
    for part in parts:
        view = memoryview(part)
        while view:
            yield view[:limit]
            view = view[limit:]
            limit = WRITE_SLICE
