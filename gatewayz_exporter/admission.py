"""Who may hold a connection: the cap, each address's share of it, eviction order, TLS handshake slots.

Pure bookkeeping on the event loop's thread: the server tells it what each
connection is doing (``waiting``, ``serving``, ``stalled``, ``scraped``) with the
loop's time, and it answers ``admit`` and hands out handshake slots, closing
connections only through the ``Member`` methods.

At the cap, a newcomer from a network holding fewer connections than the
busiest network (IPv4 /24, IPv6 /48, as ``addresses.client_group`` names them)
takes one from that network's busiest address; within the newcomer's own
network, a newcomer from an address holding fewer than the busiest address takes
one from the busiest. That address is over its share, whatever its connections
are doing: a host with many addresses of one network (an IPv6 /48 holds 65,536
/64s) cannot spread a flood thin enough to tie with a scraper holding one
connection. A newcomer from the busiest address of the busiest network (or one
tied with them) may only replace its own address's connections, and only one that
has waited longer than EVICT_GRACE for a request, stopped reading its answer, or
sent requests back to back for longer than EVICT_GRACE; otherwise it is refused.
Within an address, a connection that recently received a ``/metrics`` answer is
the last to go. Addresses are counted as ``addresses.client_key`` names them
(IPv6 per /64), so one host cannot hold the cap against everyone else.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from .addresses import client_group, client_key

log = logging.getLogger("gatewayz_exporter.server")

HANDSHAKE_GRACE = 1.0  # seconds; a handshake stalled longer yields its slot to one that is waiting
EVICT_GRACE = 1.0  # seconds; at the cap, a connection waiting longer without a request yields to a new one
BACK_TO_BACK = 0.5  # seconds; a request sent sooner after the last answer continues a busy run
SCRAPER_MEMORY = 120.0  # seconds; a connection answered on /metrics this recently is evicted last


class Member(Protocol):
    """What admission needs of a connection."""

    @property
    def peer(self) -> str | None: ...

    @property
    def closed(self) -> bool: ...

    def abort(self) -> None: ...

    def start_handshake(self) -> None: ...

    def pause_for_handshake_slot(self) -> None: ...


Report = Callable[..., None]  # (event, peer, **fields): the server's rate-limited client-error log


class Admission:
    """The connection cap and the TLS handshake slots of one server."""

    def __init__(
        self,
        max_connections: int,
        max_handshakes: int,
        clock: Callable[[], float],
        report: Report | None = None,
        *,
        evict_grace: float = EVICT_GRACE,
        back_to_back: float = BACK_TO_BACK,
    ):
        self.max_connections = max_connections
        self._clock = clock
        self._evict_grace = evict_grace
        self._back_to_back = back_to_back
        self._max_handshakes = max_handshakes
        self._report: Report = report or (lambda *args, **kwargs: None)
        self._key: dict[Member, str] = {}
        self._per_key: Counter[str] = Counter()
        self._per_group: Counter[str] = Counter()
        self._keys_of: dict[str, Counter[str]] = {}  # network -> its addresses' counts
        # Each longest first: waiting for a request (handshake, head, idle keep-alive) since;
        # peer stopped taking what is written since; sending requests back to back since.
        self._waiting: OrderedDict[Member, float] = OrderedDict()
        self._stalled: OrderedDict[Member, float] = OrderedDict()
        self._busy: OrderedDict[Member, float] = OrderedDict()
        self._scraped: dict[Member, float] = {}
        self._handshaking: dict[Member, float] = {}  # -> when its slot was granted
        self._handshake_queue: deque[Member] = deque()
        self._queued: set[Member] = set()

    def __len__(self) -> int:
        return len(self._key)

    def holds(self, member: Member) -> bool:
        return member in self._key

    def held_by(self, peer: str | None) -> int:
        """Connections held now by ``peer``'s address (as ``client_key`` groups them)."""
        return self._per_key[client_key(peer)]

    def members(self) -> list[Member]:
        return list(self._key)

    # --- the cap ---------------------------------------------------------------------

    def admit(self, member: Member) -> bool:
        """Count a new connection, making room at the cap if the policy allows; False refuses it."""
        key, now = client_key(member.peer), self._clock()
        if len(self._key) >= self.max_connections and not self._make_room(key, now):
            return False
        self._key[member] = key
        self._per_key[key] += 1
        group = client_group(key)
        self._per_group[group] += 1
        self._keys_of.setdefault(group, Counter())[key] += 1
        self.waiting(member)
        return True

    def release(self, member: Member) -> None:
        """The connection is gone or going: it no longer counts, waits or holds a handshake slot."""
        key = self._key.pop(member, None)
        if key is not None:
            self._per_key[key] -= 1
            if self._per_key[key] <= 0:
                del self._per_key[key]
            group = client_group(key)
            self._per_group[group] -= 1
            self._keys_of[group][key] -= 1
            if self._keys_of[group][key] <= 0:
                del self._keys_of[group][key]
            if self._per_group[group] <= 0:
                del self._per_group[group], self._keys_of[group]
        for table in (self._waiting, self._stalled, self._busy, self._scraped):
            table.pop(member, None)
        self.handshake_finished(member)

    def waiting(self, member: Member) -> None:
        """Waiting for a request (after accept, or after an answer on keep-alive)."""
        if member in self._key:
            self._waiting.pop(member, None)
            self._waiting[member] = self._clock()

    def serving(self, member: Member) -> None:
        self._waiting.pop(member, None)

    def stalled(self, member: Member) -> None:
        """The peer stopped taking what is written."""
        if member in self._key and member not in self._stalled:
            self._stalled[member] = self._clock()

    def resumed(self, member: Member) -> None:
        self._stalled.pop(member, None)

    def request_started(self, member: Member, previous_answer: float | None) -> None:
        """A request arrived; ``previous_answer`` is when the last one on this connection was answered.

        A request sent within BACK_TO_BACK of the last answer continues a busy run: a
        scraper sends one request per scrape interval, so a long run is a client holding
        its connection busy.
        """
        self.serving(member)
        if previous_answer is None or self._clock() - previous_answer >= self._back_to_back:
            self._busy.pop(member, None)
        elif member not in self._busy and member in self._key:
            self._busy[member] = previous_answer

    def scraped(self, member: Member) -> None:
        """The connection just received a successful ``/metrics`` answer."""
        if member in self._key:
            self._scraped[member] = self._clock()

    def _make_room(self, key: str, now: float) -> bool:
        group = client_group(key)
        heaviest, total = self._per_group.most_common(1)[0]
        if self._per_group[group] < total:
            group = heaviest  # the newcomer's network holds less: take from the heaviest network
        busiest, held = self._keys_of[group].most_common(1)[0]
        if group != client_group(key) or self._per_key[key] < held:
            victim = self._victim(busiest, now, grace=0.0)  # over its share: any of its connections
        else:
            victim = self._victim(key, now, grace=self._evict_grace)
        if victim is None:
            return False
        self._report("Connection cap reached; closed one of the busiest address's", victim.peer)
        victim.abort()
        self.release(victim)  # abort() reports too; this makes sure the count drops now
        return True

    def _victim(self, key: str, now: float, grace: float) -> Member | None:
        """The connection of ``key``'s address to close: the longest waiting for a request, then
        the longest stalled reader, then the longest busy run, each if past ``grace``; with no
        grace, failing those, its oldest connection. Recent scrapers go last."""
        recent = {m for m, at in self._scraped.items() if now - at < SCRAPER_MEMORY}
        for spare_scrapers in (True, False):
            for table in (self._waiting, self._stalled, self._busy):
                for member, since in table.items():  # longest first
                    if grace > 0.0 and now - since <= grace:
                        if table is self._busy:  # runs are recorded when detected, nearly in order
                            continue
                        break
                    if self._key.get(member) != key:
                        continue
                    if spare_scrapers and member in recent:
                        continue
                    return member
        if grace > 0.0:
            return None
        mine = [m for m, k in self._key.items() if k == key]
        mine.sort(key=lambda m: m in recent)  # stable: oldest first, scrapers last
        return mine[0] if mine else None

    # --- TLS handshake slots ---------------------------------------------------------

    def want_handshake(self, member: Member) -> None:
        """A connection's ClientHello record is complete: handshake now, or queue for a slot.

        When all slots are taken, the handshake that has waited longest for its client,
        if longer than HANDSHAKE_GRACE, is given up, and a freed slot goes to the newest
        waiting connection: a real client finishes in milliseconds, so connections that
        stall, and those queued long ago, cannot keep it waiting. (Queued ones still end
        at their head deadline.)
        """
        if member in self._handshaking or member in self._queued:
            return
        now = self._clock()
        if len(self._handshaking) < self._max_handshakes:
            self._handshaking[member] = now
            member.start_handshake()
            return
        member.pause_for_handshake_slot()
        if len(self._handshake_queue) >= self.max_connections:
            self._handshake_queue = deque(m for m in self._handshake_queue if not m.closed)
            self._queued = set(self._handshake_queue)
        self._queued.add(member)
        self._handshake_queue.append(member)
        stalled, started = min(self._handshaking.items(), key=lambda item: item[1])
        if now - started > HANDSHAKE_GRACE:
            self._report("TLS handshake stalled; slot given to a waiting one", stalled.peer)
            stalled.abort()

    def handshake_finished(self, member: Member) -> None:
        """``member``'s slot is free (handshake done, failed, or the connection gone)."""
        self._queued.discard(member)
        if self._handshaking.pop(member, None) is None:
            return
        while self._handshake_queue and len(self._handshaking) < self._max_handshakes:
            waiting = self._handshake_queue.pop()
            self._queued.discard(waiting)
            if not waiting.closed:
                self._handshaking[waiting] = self._clock()
                waiting.start_handshake()
