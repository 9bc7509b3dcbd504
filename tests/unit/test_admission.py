"""The admission policy alone: the cap, each address's share, eviction order, handshake slots."""

from gatewayz_exporter.admission import BACK_TO_BACK, EVICT_GRACE, HANDSHAKE_GRACE, Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Member:
    def __init__(self, admission: Admission | None, peer: str):
        self.peer, self.closed, self.handshaking, self.paused = peer, False, False, False
        self._admission = admission

    def abort(self) -> None:
        self.closed = True
        if self._admission is not None:
            self._admission.release(self)

    def start_handshake(self) -> None:
        self.handshaking = True

    def pause_for_handshake_slot(self) -> None:
        self.paused = True


def filled(cap: int, peer: str = "192.0.2.1", **kw):
    clock = Clock()
    admission = Admission(cap, kw.get("handshakes", 4), clock)
    members = [Member(admission, peer) for _ in range(cap)]
    assert all(admission.admit(m) for m in members)
    return admission, clock, members


def test_a_newcomer_from_a_lighter_address_takes_one_from_the_busiest_even_within_the_grace():
    admission, _clock, flood = filled(4)
    newcomer = Member(admission, "192.0.2.2")
    assert admission.admit(newcomer)
    assert sum(m.closed for m in flood) == 1 and flood[0].closed
    assert admission.held_by("192.0.2.1") == 3 and admission.held_by("192.0.2.2") == 1
    assert len(admission) == 4


def test_a_newcomer_from_the_busiest_address_never_takes_another_address_idle_keep_alive():
    admission, clock, flood = filled(3)
    scraper = Member(admission, "192.0.2.2")
    assert admission.admit(scraper)  # takes one of the flood's
    clock.now += 10 * EVICT_GRACE  # the scraper idles between scrapes, the flood keeps sending
    for member in flood:
        if not member.closed:
            admission.request_started(member, None)
    assert not admission.admit(Member(admission, "192.0.2.1"))
    assert not scraper.closed


def test_within_one_address_the_connection_waiting_longest_past_the_grace_makes_room():
    admission, clock, held = filled(3)
    clock.now += EVICT_GRACE / 2
    assert not admission.admit(Member(admission, "192.0.2.1"))
    clock.now += EVICT_GRACE
    assert admission.admit(Member(admission, "192.0.2.1"))
    assert [m.closed for m in held] == [True, False, False]


def test_a_connection_answered_on_metrics_recently_is_the_last_to_go():
    admission, clock, held = filled(3)
    admission.scraped(held[0])
    clock.now += 2 * EVICT_GRACE
    assert admission.admit(Member(admission, "192.0.2.1"))
    assert [m.closed for m in held] == [False, True, False]


def test_a_busy_run_of_back_to_back_requests_past_the_grace_makes_room():
    admission, clock, held = filled(2)
    answered = clock.now
    for member in held:
        admission.request_started(member, None)
    clock.now += BACK_TO_BACK / 2
    admission.request_started(held[1], answered)  # a run begins at the last answer
    clock.now += 2 * EVICT_GRACE
    admission.request_started(held[1], clock.now - BACK_TO_BACK / 2)
    assert admission.admit(Member(admission, "192.0.2.1"))
    assert [m.closed for m in held] == [False, True]


def test_ipv6_addresses_share_their_64_and_nat64_ones_are_told_apart_by_their_ipv4():
    admission, _clock, _held = filled(2, peer="2001:db8::1")
    assert not admission.admit(Member(admission, "2001:db8::2"))  # the same /64: no lighter address
    assert admission.admit(Member(admission, "2001:db8:0:1::1"))
    admission, _clock, _held = filled(2, peer="64:ff9b::192.0.2.1")
    assert admission.admit(Member(admission, "64:ff9b::192.0.2.2"))


def test_many_addresses_of_one_network_cannot_tie_with_a_scraper_and_take_its_connection():
    """A host with many /64s of one /48 holds one connection on each: the newest of its
    addresses cannot take the scraper's connection, only its own network's."""
    clock = Clock()
    admission = Admission(4, 4, clock)
    scraper = Member(admission, "2001:db8:ffff::1")
    assert admission.admit(scraper)
    admission.scraped(scraper)
    flood = [Member(admission, f"2001:db8:0:{index:x}::1") for index in range(3)]
    assert all(admission.admit(member) for member in flood)
    for index in range(3, 40):
        assert admission.admit(Member(admission, f"2001:db8:0:{index:x}::1"))
        assert not scraper.closed
    assert admission.held_by("2001:db8:ffff::1") == 1
    same_network = Member(admission, "2001:db8:0:ffff::1")  # a fresh /64 of the flood's /48
    assert admission.admit(same_network) and not scraper.closed
    assert admission.admit(Member(admission, "198.51.100.7"))  # another network takes from the flood's
    assert not scraper.closed and len(admission) == 4


def test_handshake_slots_are_bounded_and_a_stalled_one_yields_to_the_newest_waiting():
    admission, clock, members = filled(5, handshakes=2)
    for member in members[:4]:
        admission.want_handshake(member)
    assert [m.handshaking for m in members[:4]] == [True, True, False, False]
    assert members[2].paused and members[3].paused
    clock.now += 2 * HANDSHAKE_GRACE
    admission.want_handshake(members[4])  # all slots taken by stalled handshakes: the oldest gives up
    assert members[0].closed
    assert members[4].handshaking  # the newest waiting gets the freed slot
    admission.handshake_finished(members[1])
    assert members[3].handshaking and not members[2].handshaking
