"""The /metrics body: the snapshot's part rendered once per poll, the live part per scrape.

The snapshot's exposition (text or OpenMetrics, plain and gzip) is cached in pieces: the stats
lines, the per-provider families (reused, with their gzip state, while the providers are
unchanged) and the exporter's own status lines. A scrape renders only the live families and
continues a copy of the cached deflate state, so the result is one ordinary gzip stream.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .collector import (
    ExtraView,
    Family,
    SnapshotCollector,
    SnapshotSource,
    exported_providers,
    stats_families,
)
from .model import Provider, Snapshot
from .render import render_families, render_providers

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_END = b"# EOF\n"
GZIP_LEVEL = 3  # nearly the size of level 6 in half the time, for label-heavy text


def wants_openmetrics(accept: str | None) -> bool:
    """Content negotiation as prometheus_client does it: OpenMetrics only when asked for."""
    for item in (accept or "").split(","):
        if item.split(";")[0].strip() == "application/openmetrics-text":
            return True
    return False


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header lists gzip (its q-value is not read, as prometheus_client does)."""
    return any(item.split(";")[0].strip().lower() == "gzip" for item in (accept_encoding or "").split(","))


LARGE_BODY_BYTES = 1024 * 1024  # from about 1,000 providers


class _GzipStream:
    """A gzip stream in progress: the compressed bytes so far and the compressor state after them."""

    __slots__ = ("pieces", "state")

    def __init__(self, pieces: tuple[bytes, ...], state: Any):
        self.pieces, self.state = pieces, state

    @classmethod
    def start(cls, data: tuple[bytes, ...]) -> _GzipStream:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        return cls((b"".join(compressor.compress(d) for d in data),), compressor)

    def continued(self, data: bytes) -> _GzipStream:
        """The stream continued with ``data``; this one stays usable."""
        state = self.state.copy()
        return _GzipStream((*self.pieces, state.compress(data)), state)

    def finish(self, tail: bytes) -> tuple[bytes, ...]:
        state = self.state.copy()
        return (*self.pieces, state.compress(tail) + state.flush())


@dataclass(eq=False)
class _ProvidersPart:
    """The stats lines and the per-provider families of one format; kept while they do not change."""

    providers: tuple[Provider, ...] | None
    stats: bytes
    body: tuple[bytes, ...]  # one piece per family
    _deflate: _GzipStream | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def same_providers(self, providers: tuple[Provider, ...] | None) -> bool:
        """Equal providers render to equal text. The big-body parser hands back the very same
        tuple when nothing changed; the small-body one builds an equal one each poll."""
        return self.providers is providers or self.providers == providers

    def matches(self, providers: tuple[Provider, ...] | None, stats: bytes) -> bool:
        return self.same_providers(providers) and self.stats == stats

    def deflate(self) -> _GzipStream:
        with self.lock:
            if self._deflate is None:
                self._deflate = _GzipStream.start((self.stats, *self.body))
            return self._deflate


def _compact(pieces: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Small pieces joined into one: the server writes (and waits to drain) once per piece."""
    if len(pieces) > 1 and sum(map(len, pieces)) < LARGE_BODY_BYTES:
        return (b"".join(pieces),)
    return pieces


@dataclass(eq=False)
class _Rendered:
    """One snapshot's cached exposition in one format: the providers part, then its status lines."""

    part: _ProvidersPart
    status: bytes
    _plain: tuple[bytes, ...] = ()
    _deflate: _GzipStream | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._plain = _compact((self.part.stats, *self.part.body, self.status))

    def plain(self, tail: bytes) -> tuple[bytes, ...]:
        return (*self._plain, tail)

    def gzip_ready(self) -> bool:
        """Whether ``gzip`` only finishes the stream (the cached body is compressed already)."""
        return self._deflate is not None

    def gzip(self, tail: bytes) -> tuple[bytes, ...]:
        """One gzip stream in pieces: the cached compressed body, then ``tail`` and the trailer."""
        deflate = self._deflate
        if deflate is not None:
            return deflate.finish(tail)
        with self.lock:
            if self._deflate is None:
                deflate = self.part.deflate().continued(self.status)
                if len(self._plain) == 1:  # a small exposition: one piece, as plain
                    deflate.pieces = (b"".join(deflate.pieces),)
                self._deflate = deflate
            deflate = self._deflate
        return deflate.finish(tail)


class Exposition:
    """Answers ``body(openmetrics, gzip)`` from the newest snapshot without touching the network."""

    def __init__(
        self,
        collector: SnapshotCollector,
        store: SnapshotSource,
        *,
        live: Callable[[], Iterable[Family]] = tuple,
        on_large_body: Callable[[], None] | None = None,
    ):
        """``live`` gives the families read at each scrape; ``on_large_body`` is called once,
        the first time the providers' text reaches LARGE_BODY_BYTES."""
        self._collector = collector
        self._store = store
        self._live = live
        self._on_large_body = on_large_body
        self._cache: dict[tuple[Any, ...], _Rendered] = {}
        self._providers_parts: dict[bool, _ProvidersPart] = {}  # by format (True: OpenMetrics)
        self._extra_data: dict[tuple[object, bool], bytes] = {}  # the extra source's data lines, by reading
        self._render_lock = threading.Lock()
        self._requested: set[bool] = set()  # formats scraped since the last poll (True: OpenMetrics)
        self._wanted: set[bool] = {False}  # formats prepared at each poll: those last scraped

    def prerender(self, snapshot: Snapshot) -> None:
        """Render the new snapshot ahead of the next scrape (called in the poller thread).

        Only the formats scraped since the previous poll are prepared (the last ones scraped when
        no scrape came between two polls; the text format before the first scrape), so the
        exporter never renders, nor holds a large copy in, a format nobody reads. A format
        scraped first is rendered for that scrape.
        """
        requested, self._requested = self._requested, set()
        if requested:
            self._wanted = requested
        wanted = self._wanted
        with self._render_lock:
            for openmetrics in (False, True):
                if openmetrics not in wanted:
                    self._providers_parts.pop(openmetrics, None)  # rendered again if that format is scraped
        for openmetrics in sorted(wanted):
            self._entry(snapshot, openmetrics).gzip(b"")  # warm the deflate state

    def prerender_extra(self) -> None:
        """Render the extra source's new reading into the formats already prepared (its poller thread)."""
        snapshot = self._store.current
        for openmetrics in sorted(self._providers_parts):
            self._entry(snapshot, openmetrics).gzip(b"")

    def _key(self, snapshot: Snapshot, openmetrics: bool) -> tuple[tuple[Any, ...], ExtraView | None]:
        """The cache key of what a scrape of ``snapshot`` shows now, and the extra source's reading."""
        extra = self._collector.extra()
        freshness = self._collector.freshness(snapshot)
        return (snapshot.generation, freshness, openmetrics, None if extra is None else extra.key), extra

    def _entry(self, snapshot: Snapshot, openmetrics: bool) -> _Rendered:
        key, extra = self._key(snapshot, openmetrics)
        freshness = key[1]
        entry = self._cache.get(key)
        if entry is not None:
            return entry
        with self._render_lock:
            entry = self._cache.get(key)
            if entry is None:
                # Keep only the current generation and extra reading (dropped before rendering,
                # so the old bytes can go first): memory stays at one snapshot's worth.
                cache = {k: v for k, v in self._cache.items() if (k[0], k[3]) == (key[0], key[3])}
                self._cache = cache
                entry = _Rendered(
                    self._providers_part(snapshot, freshness, openmetrics),
                    self._tail(snapshot, extra, openmetrics),
                )
                self._cache = {**cache, key: entry}
        return entry

    def _tail(self, snapshot: Snapshot, extra: ExtraView | None, openmetrics: bool) -> bytes:
        """What follows the per-provider families: the extra source's data lines (rendered once
        per reading), then the exporter's own families with the extra source's poll rows."""
        if extra is None:
            return render_families(list(self._collector.status_families(snapshot)), openmetrics=openmetrics)
        data = self._extra_data.get((extra.data_key, openmetrics))
        if data is None:
            self._extra_data = {k: v for k, v in self._extra_data.items() if k[0] == extra.data_key}
            data = render_families(list(extra.data_families()), openmetrics=openmetrics)
            self._extra_data[(extra.data_key, openmetrics)] = data
        own = [*self._collector.status_families(snapshot, extra.poll_rows()), *extra.own_families()]
        return data + render_families(own, openmetrics=openmetrics)

    def _providers_part(
        self, snapshot: Snapshot, freshness: tuple[bool, bool], openmetrics: bool
    ) -> _ProvidersPart:
        """The providers part for this snapshot: the previous one when providers and counts are unchanged."""
        providers = exported_providers(snapshot, providers_fresh=freshness[0])
        stats = render_families(
            list(stats_families(snapshot, stats_fresh=freshness[1])), openmetrics=openmetrics
        )
        part = self._providers_parts.get(openmetrics)
        if part is None or not part.matches(providers, stats):
            if part is not None and part.same_providers(providers):
                body = part.body  # only the counts changed
            else:
                # Let the old bytes go before rendering the new: one copy at a time.
                self._providers_parts.pop(openmetrics, None)
                part = None
                body = () if providers is None else render_providers(providers, openmetrics=openmetrics)
                if self._on_large_body is not None and sum(map(len, body)) >= LARGE_BODY_BYTES:
                    self._on_large_body()  # this object holds the biggest buffers
                    self._on_large_body = None
            part = self._providers_parts[openmetrics] = _ProvidersPart(providers, stats, body)
        return part

    def parts(self, *, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str]:
        """The exposition as pieces to send one after another, and its content type.

        The cached pieces are shared by every scrape, never joined, so slow scrapers hold no copies.
        """
        self._requested.add(openmetrics)
        return self._finish(self._entry(self._store.current, openmetrics), openmetrics, gzip)

    def cached_parts(self, *, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str] | None:
        """What ``parts`` returns, when that renders nothing but the live families: the newest
        snapshot is rendered in this format (and compressed, for ``gzip``). None otherwise."""
        key, _ = self._key(self._store.current, openmetrics)
        entry = self._cache.get(key)
        if entry is None or (gzip and not entry.gzip_ready()):
            return None
        self._requested.add(openmetrics)
        return self._finish(entry, openmetrics, gzip)

    def _finish(self, entry: _Rendered, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str]:
        """The cached pieces followed by the live families, rendered now."""
        tail = render_families(list(self._live()), openmetrics=openmetrics)
        if openmetrics:
            tail, content_type = tail + OPENMETRICS_END, OPENMETRICS_CONTENT_TYPE
        else:
            content_type = TEXT_CONTENT_TYPE
        if gzip:
            return entry.gzip(tail), content_type
        return entry.plain(tail), content_type

    def snapshot_text(self) -> bytes:
        """The newest snapshot's families in the text format, without the live families (``--once``)."""
        snapshot = self._store.current
        return b"".join(self._entry(snapshot, False).plain(b""))

    def body(self, *, openmetrics: bool, gzip: bool) -> tuple[bytes, str]:
        """The full exposition as one bytes object, and its content type."""
        parts, content_type = self.parts(openmetrics=openmetrics, gzip=gzip)
        return b"".join(parts), content_type
