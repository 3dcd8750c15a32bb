"""BFD without sockets: the codec, the reception checks, and the session machine on a fake clock.

Two sans-IO sessions are wired through `Link`, a simulated wire with a delay and a cut switch
per direction, and a fake clock that jumps from one timer expiry or delivery to the next; so
every interval, detection time and jitter bound is checked exactly, in microseconds of
simulated time, in a few milliseconds of real time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.contrib.bfd import BFD

from bgplab.bgp.bfd.packet import ControlPacket, Diag, Discard, State, decode, encode
from bgplab.bgp.bfd.session import (
    SLOW_TX_US,
    Action,
    Send,
    Session,
    StartTimer,
    StateChanged,
    StopTimer,
    Timer,
)

# ---------------------------------------------------------------- codec

PACKET = ControlPacket(state=State.UP, diag=Diag.NONE, detect_mult=3, my_discriminator=0x01020304,
                       your_discriminator=0x0A0B0C0D, desired_min_tx=300_000, required_min_rx=300_000)

states = st.sampled_from(list(State))
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def valid_packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(states)
    your_min = 0 if state in (State.DOWN, State.ADMIN_DOWN) else 1
    poll = draw(st.booleans())
    return ControlPacket(
        state=state, diag=draw(st.integers(0, 31)), detect_mult=draw(st.integers(1, 255)),
        my_discriminator=draw(st.integers(1, 0xFFFFFFFF)),
        your_discriminator=draw(st.integers(your_min, 0xFFFFFFFF)),
        desired_min_tx=draw(u32), required_min_rx=draw(u32), required_min_echo_rx=draw(u32),
        poll=poll, final=draw(st.booleans()) and not poll, control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()))


@given(valid_packets())
def test_round_trip(packet: ControlPacket) -> None:
    data = encode(packet)
    assert len(data) == 24 and data[3] == 24
    assert decode(data) == packet


@given(valid_packets())
def test_scapy_agrees_on_every_field(packet: ControlPacket) -> None:
    """scapy's BFD layer is an independent reading of RFC 5880 section 4.1."""
    theirs = BFD(encode(packet))
    flags = {f for f, on in (("P", packet.poll), ("F", packet.final), ("C", packet.control_plane_independent),
                             ("D", packet.demand)) if on}
    assert (theirs.version, theirs.diag, theirs.sta, theirs.detect_mult, theirs.len) == \
        (1, packet.diag, packet.state, packet.detect_mult, 24)
    assert {f for f in "MDACFP" if f in theirs.flags} == flags
    assert (theirs.my_discriminator, theirs.your_discriminator, theirs.min_tx_interval, theirs.min_rx_interval,
            theirs.echo_rx_interval) == (packet.my_discriminator, packet.your_discriminator,
                                         packet.desired_min_tx, packet.required_min_rx,
                                         packet.required_min_echo_rx)
    built = BFD(version=1, diag=packet.diag, sta=int(packet.state), flags="".join(sorted(flags)),
                detect_mult=packet.detect_mult, my_discriminator=packet.my_discriminator,
                your_discriminator=packet.your_discriminator, min_tx_interval=packet.desired_min_tx,
                min_rx_interval=packet.required_min_rx, echo_rx_interval=packet.required_min_echo_rx)
    assert decode(bytes(built)) == packet


def test_known_bytes() -> None:
    data = encode(replace(PACKET, poll=True, diag=Diag.NEIGHBOR_SIGNALED_SESSION_DOWN))
    assert data.hex() == "23e00318" "01020304" "0a0b0c0d" "000493e0" "000493e0" "00000000"


def test_longer_payload_than_length_is_accepted() -> None:
    assert decode(encode(PACKET) + b"\x00" * 8) == PACKET


def _raw(packet: ControlPacket, **patch: int) -> bytes:
    data = bytearray(encode(packet))
    for offset, value in patch.items():
        data[int(offset.lstrip("b"))] = value
    return bytes(data)


@pytest.mark.parametrize(("data", "reason"), [
    (encode(PACKET)[:23], "short"),
    (encode(replace(PACKET, version=0)), "version"),
    (encode(replace(PACKET, version=2)), "version"),
    (_raw(PACKET, b3=23), "length"),
    (_raw(PACKET, b3=25), "length"),  # Length over the payload
    (encode(replace(PACKET, authentication=b"\x01")), "length"),  # A bit: at least 26
    (encode(replace(PACKET, detect_mult=0)), "detect-mult"),
    (encode(replace(PACKET, multipoint=True)), "multipoint"),
    (encode(replace(PACKET, my_discriminator=0)), "my-discriminator"),
    (encode(replace(PACKET, your_discriminator=0)), "your-discriminator"),
    (encode(replace(PACKET, your_discriminator=0, state=State.INIT)), "your-discriminator"),
    (encode(replace(PACKET, authentication=b"\x01\x03\x00")), "authentication"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_reception_checks_discard(data: bytes, reason: str) -> None:
    with pytest.raises(Discard) as info:
        decode(data)
    assert info.value.reason == reason


@pytest.mark.parametrize("state", [State.DOWN, State.ADMIN_DOWN])
def test_your_discriminator_zero_is_fine_while_down(state: State) -> None:
    packet = replace(PACKET, your_discriminator=0, state=state)
    assert decode(encode(packet)) == packet


def test_encode_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode(replace(PACKET, diag=32))
    with pytest.raises(ValueError):
        encode(replace(PACKET, authentication=b"x" * 240))


# ---------------------------------------------------------------- a simulated wire


@dataclass
class Node:
    name: str
    session: Session
    timers: dict[Timer, tuple[float, int]] = field(default_factory=dict)
    sent: list[tuple[float, ControlPacket]] = field(default_factory=list)
    changes: list[tuple[float, StateChanged]] = field(default_factory=list)

    @property
    def periodic(self) -> list[tuple[float, ControlPacket]]:
        """Sent packets other than Finals, which answer a Poll off the schedule."""
        return [(t, p) for t, p in self.sent if not p.final]

    def last_change(self) -> StateChanged:
        return self.changes[-1][1]


class Link:
    """Two sessions on a fake clock; `cut` silences a direction ("ab" is a to b)."""

    def __init__(self, a: Session, b: Session, delay: float = 0.0005) -> None:
        self.a, self.b = Node("a", a), Node("b", b)
        self.delay = delay
        self.now = 0.0
        self.cut: set[str] = set()
        self.drop: Callable[[str, ControlPacket], bool] = lambda direction, packet: False
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._generation = itertools.count()

    def start(self) -> None:
        self.run(self.a, self.a.session.start())
        self.run(self.b, self.b.session.start())

    def other(self, node: Node) -> Node:
        return self.b if node is self.a else self.a

    def _at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), fn))

    def run(self, node: Node, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                packet = decode(action.data)
                node.sent.append((self.now, packet))
                direction = node.name + self.other(node).name
                if direction not in self.cut and not self.drop(direction, packet):
                    peer = self.other(node)
                    self._at(self.now + self.delay, lambda peer=peer, packet=packet: self.deliver(peer, packet))
            elif isinstance(action, StartTimer):
                token = next(self._generation)
                node.timers[action.timer] = (self.now + action.seconds, token)
                self._at(self.now + action.seconds,
                         lambda node=node, timer=action.timer, token=token: self._fire(node, timer, token))
            elif isinstance(action, StopTimer):
                node.timers.pop(action.timer, None)
            elif isinstance(action, StateChanged):
                node.changes.append((self.now, action))

    def deliver(self, node: Node, packet: ControlPacket) -> None:
        self.run(node, node.session.receive(packet))

    def _fire(self, node: Node, timer: Timer, token: int) -> None:
        if node.timers.get(timer, (0.0, -1))[1] != token:
            return  # re-armed or stopped since
        del node.timers[timer]
        self.run(node, node.session.timer_expired(timer))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _, fn = heapq.heappop(self._queue)
            self.now = when
            fn()
        self.now = end

    def until(self, predicate: Callable[[], bool], limit: float = 30.0) -> float:
        """Advance event by event until predicate holds; returns the fake time it took."""
        start = self.now
        while not predicate():
            if not self._queue or self._queue[0][0] - start > limit:
                raise AssertionError(f"never happened within {limit}s of fake time")
            when, _, fn = heapq.heappop(self._queue)
            self.now = when
            fn()
        return self.now - start


def session(discriminator: int, tx_ms: float = 300, rx_ms: float = 300, mult: int = 3,
            rng: Callable[[], float] | None = None, **options: bool) -> Session:
    return Session(discriminator, desired_min_tx=round(tx_ms * 1000), required_min_rx=round(rx_ms * 1000),
                   detect_mult=mult, rng=rng or random.Random(discriminator).random, **options)


def up_pair(a: Session | None = None, b: Session | None = None) -> Link:
    link = Link(a or session(1), b or session(2))
    link.start()
    link.until(lambda: link.a.session.up and link.b.session.up and not link.a.session.polling
               and not link.b.session.polling)
    return link


def gaps(sent: list[tuple[float, ControlPacket]]) -> list[float]:
    return [t2 - t1 for (t1, _), (t2, _) in itertools.pairwise(sent)]


# ---------------------------------------------------------------- the machine


def test_three_way_handshake() -> None:
    link = Link(session(1), session(2))
    link.start()
    took = link.until(lambda: link.a.session.up and link.b.session.up)
    assert took < 0.01  # each state change sends at once; nothing waits for the 1 s timer
    for node in (link.a, link.b):
        assert [(c.old, c.new) for _, c in node.changes] in (
            [(State.DOWN, State.INIT), (State.INIT, State.UP)],  # heard Down, then Up or Init
            [(State.DOWN, State.UP)],  # heard Init straight away
        )
        assert node.session.remote_discriminator == link.other(node).session.local_discriminator
        assert node.session.local_diag == Diag.NONE
    first = link.a.sent[0][1]
    assert (first.state, first.your_discriminator, first.desired_min_tx) == (State.DOWN, 0, SLOW_TX_US)


def test_handshake_survives_loss_at_the_slow_rate() -> None:
    link = Link(session(1), session(2))
    dropped = iter(range(4))
    link.drop = lambda direction, packet: next(dropped, None) is not None  # the first four packets
    link.start()
    link.until(lambda: link.a.session.up and link.b.session.up)
    assert 1.0 < link.now < 4.0


def test_negotiated_intervals() -> None:
    """TX = max(own DesiredMinTx, peer RequiredMinRx); detection = peer mult x max(own RX, peer TX)."""
    link = up_pair(session(1, tx_ms=100, rx_ms=300, mult=3), session(2, tx_ms=200, rx_ms=50, mult=5))
    a, b = link.a.session, link.b.session
    assert (a.tx_interval, a.detection_time) == (100_000, 5 * 300_000)
    assert (b.tx_interval, b.detection_time) == (300_000, 3 * 100_000)
    link.advance(5.0)
    start = len(link.a.periodic)
    link.advance(10.0)
    for gap in gaps(link.a.periodic[start:]):
        assert 0.075 - 1e-9 <= gap <= 0.100 + 1e-9
    for gap in gaps(link.b.periodic[-20:]):
        assert 0.225 - 1e-9 <= gap <= 0.300 + 1e-9
    assert not link.a.changes[2:] and not link.b.changes[2:]  # no flap in 15 s


def test_slow_rate_while_not_up() -> None:
    """Section 6.8.3: a peer that never answers gets packets >= 0.75 s apart (1 s less jitter)."""
    link = Link(session(1, tx_ms=10, rx_ms=10), session(2))
    link.cut = {"ab", "ba"}
    link.start()
    link.advance(30.0)
    periodic = link.a.periodic
    assert 30 <= len(periodic) <= 41
    assert all(p.desired_min_tx == SLOW_TX_US and p.state is State.DOWN for _, p in periodic)
    assert min(gaps(periodic)) >= 0.75 - 1e-9
    assert link.a.session.state is State.DOWN and not link.a.changes


def test_slow_rate_in_init() -> None:
    """b never hears a: a sits in Init (b's slow packets keep it there) and stays at the slow rate."""
    link = Link(session(1, tx_ms=50, rx_ms=50), session(2, tx_ms=50, rx_ms=50))
    link.cut = {"ab"}
    link.start()
    link.advance(20.0)
    assert (link.a.session.state, link.b.session.state) == (State.INIT, State.DOWN)
    assert link.a.session.detection_time == 3 * SLOW_TX_US  # b advertises 1 s while not Up
    late = [(t, p) for t, p in link.a.periodic if t > 2.0]
    assert len(late) >= 17 and all(p.state is State.INIT and p.desired_min_tx == SLOW_TX_US for _, p in late)
    assert min(gaps(late)) >= 0.75 - 1e-9


def test_fast_rate_once_up_and_slow_again_when_down() -> None:
    link = up_pair(session(1, tx_ms=50, rx_ms=50), session(2, tx_ms=50, rx_ms=50))
    link.advance(2.0)
    assert max(gaps(link.a.periodic[-10:])) <= 0.050 + 1e-9
    assert link.a.periodic[-1][1].desired_min_tx == 50_000
    link.cut = {"ab", "ba"}
    link.advance(5.0)
    assert link.a.session.state is State.DOWN
    tail = link.a.periodic[-4:]
    assert min(gaps(tail)) >= 0.75 - 1e-9
    assert all(p.desired_min_tx == SLOW_TX_US and p.your_discriminator == 0 for _, p in tail)


def test_detection_timeout_goes_down_with_diag_1_at_exactly_the_detection_time() -> None:
    link = up_pair(session(1, tx_ms=300, rx_ms=300, mult=3), session(2, tx_ms=300, rx_ms=300, mult=3))
    link.advance(3.0)
    link.cut = {"ba"}  # a stops hearing b
    cut_at = link.now
    link.until(lambda: link.a.session.state is State.DOWN, limit=5)
    at, change = link.a.changes[-1]
    last_heard = max(t for t, _ in link.b.sent if t <= cut_at) + link.delay
    assert at - last_heard == pytest.approx(0.9, abs=1e-9)  # 3 x max(300, 300) ms
    assert 0.9 - 0.3 <= at - cut_at <= 0.9
    assert (change.old, change.new, change.diag, change.remote_state) == \
        (State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED, State.UP)
    assert link.a.session.remote_discriminator == 0
    # b still hears a: a's Down packet (sent at once, diag 1) takes b down with diag 3.
    link.until(lambda: link.b.session.state is not State.UP, limit=1)
    assert link.b.changes[-1][0] - at == pytest.approx(link.delay)
    change = link.b.last_change()
    assert (change.new, change.diag, change.remote_state, change.remote_diag) == \
        (State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED)
    link.cut = set()
    link.until(lambda: link.a.session.up and link.b.session.up)


def test_detection_uses_the_peers_multiplier_and_slower_tx() -> None:
    link = up_pair(session(1, tx_ms=100, rx_ms=100, mult=3), session(2, tx_ms=250, rx_ms=100, mult=4))
    assert link.a.session.detection_time == 4 * 250_000
    link.advance(1.0)
    link.cut = {"ba"}
    last = link.now
    link.until(lambda: link.a.session.state is State.DOWN, limit=5)
    assert 1.0 - 0.25 <= link.now - last <= 1.0


def test_admin_down_both_ways() -> None:
    link = up_pair()
    link.run(link.a, link.a.session.admin_down())
    a_change = link.a.last_change()
    assert (a_change.old, a_change.new, a_change.diag) == (State.UP, State.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN)
    assert link.a.sent[-1][1].state is State.ADMIN_DOWN  # told at once
    link.advance(0.01)
    b_change = link.b.last_change()
    assert (b_change.new, b_change.diag, b_change.remote_state) == \
        (State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.ADMIN_DOWN)
    link.advance(10.0)  # a keeps saying AdminDown at the slow rate; nothing flaps
    assert link.a.session.state is State.ADMIN_DOWN and link.b.session.state is State.DOWN
    assert len(link.b.changes) == 3
    assert all(p.state is State.ADMIN_DOWN for _, p in link.a.sent[-5:])
    assert min(gaps(link.a.periodic[-5:])) >= 0.75 - 1e-9
    assert Timer.DETECT not in link.a.timers
    # the other side too, then both back
    link.run(link.b, link.b.session.admin_down())
    link.advance(5.0)
    assert (link.a.session.state, link.b.session.state) == (State.ADMIN_DOWN, State.ADMIN_DOWN)
    link.run(link.a, link.a.session.admin_up())
    link.advance(5.0)
    assert link.a.session.state is State.DOWN  # the peer is still AdminDown
    link.run(link.b, link.b.session.admin_up())
    link.until(lambda: link.a.session.up and link.b.session.up, limit=5)
    assert link.a.session.local_diag == Diag.NONE


def test_remote_down_takes_an_up_session_down_with_diag_3() -> None:
    link = up_pair()
    b = link.b.session
    # b loses a (one-way cut), goes Down on detection and says so; a hears it.
    link.cut = {"ab"}
    link.until(lambda: link.a.session.state is State.DOWN, limit=5)
    change = link.a.last_change()
    assert (change.old, change.new, change.diag, change.remote_state) == \
        (State.UP, State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.DOWN)
    assert b.local_diag == Diag.CONTROL_DETECTION_TIME_EXPIRED


def test_down_ignores_up_from_the_peer() -> None:
    """A session in Down that hears Up stays Down: the peer must see our Down first."""
    s = session(1)
    s.start()
    up = ControlPacket(state=State.UP, diag=0, detect_mult=3, my_discriminator=9, your_discriminator=1,
                       desired_min_tx=SLOW_TX_US, required_min_rx=SLOW_TX_US)
    actions = s.receive(up)
    assert s.state is State.DOWN and not any(isinstance(a, StateChanged) for a in actions)
    assert s.remote_discriminator == 9


def test_poll_final_on_a_slower_tx() -> None:
    """Section 6.8.3: a larger DesiredMinTx is used only once the peer has acknowledged it."""
    link = up_pair(session(1, tx_ms=100, rx_ms=100), session(2, tx_ms=100, rx_ms=100))
    link.advance(1.0)
    a, b = link.a.session, link.b.session
    before = len(link.a.sent)
    link.drop = lambda direction, packet: direction == "ba" and packet.final  # hold the Final back
    link.run(link.a, a.set_params(desired_min_tx=400_000))
    assert a.polling and a.tx_interval == 100_000
    assert len(link.a.sent) == before  # the poll rides on the schedule; nothing extra is sent
    link.advance(1.0)
    polls = [p for _, p in link.a.sent[before:]]
    assert len(polls) >= 10 and all(p.poll and p.desired_min_tx == 400_000 for p in polls)
    assert max(gaps(link.a.sent[before - 1:])) <= 0.100 + 1e-9  # still the old rate
    assert b.detection_time == 3 * 400_000  # b widened its detection on the first poll
    assert a.polling and a.up and b.up
    link.drop = lambda direction, packet: False
    took = link.until(lambda: not a.polling, limit=1)
    assert took <= 0.100 + 2 * link.delay
    finals = [p for _, p in link.b.sent if p.final]
    assert finals and not any(p.poll for p in finals)
    assert a.tx_interval == 400_000
    link.advance(5.0)
    assert min(gaps(link.a.periodic[-5:])) >= 0.3 - 1e-9
    assert not any(p.poll for _, p in link.a.sent[-5:])
    assert len(link.a.changes) <= 2 and len(link.b.changes) <= 2  # no flap


def test_poll_final_on_a_shorter_rx() -> None:
    """A smaller RequiredMinRx shortens our detection only after the peer's Final."""
    link = up_pair(session(1, tx_ms=300, rx_ms=300), session(2, tx_ms=50, rx_ms=300))
    a = link.a.session
    assert a.detection_time == 3 * 300_000
    link.cut = {"ba"}
    link.run(link.a, a.set_params(required_min_rx=50_000))
    assert a.detection_time == 3 * 300_000
    link.advance(0.35)
    assert a.polling and a.detection_time == 3 * 300_000
    link.cut = set()
    link.until(lambda: not a.polling, limit=1)
    assert a.detection_time == 3 * 50_000
    link.advance(3.0)
    assert a.up and max(gaps(link.b.periodic[-10:])) <= 0.050 + 1e-9


def test_a_longer_rx_is_used_at_once() -> None:
    link = up_pair(session(1, tx_ms=100, rx_ms=100), session(2, tx_ms=100, rx_ms=100))
    a = link.a.session
    link.run(link.a, a.set_params(required_min_rx=500_000))
    assert a.detection_time == 3 * 500_000 and a.polling
    link.until(lambda: not a.polling, limit=1)
    assert link.b.session.tx_interval == 500_000


def test_final_without_a_poll_is_ignored() -> None:
    link = up_pair()
    a = link.a.session
    link.cut = {"ba", "ab"}
    link.run(link.a, a.set_params(desired_min_tx=600_000))
    final = ControlPacket(state=State.UP, diag=0, detect_mult=3, my_discriminator=2, your_discriminator=1,
                          desired_min_tx=300_000, required_min_rx=300_000, final=True)
    link.deliver(link.a, final)  # no P packet with the new values has left yet
    assert a.polling and a.tx_interval == 300_000


def test_poll_gets_a_final_at_once_without_the_poll_bit() -> None:
    s = session(1)
    s.start()
    s.receive(ControlPacket(state=State.DOWN, diag=0, detect_mult=3, my_discriminator=7, your_discriminator=0,
                            desired_min_tx=SLOW_TX_US, required_min_rx=SLOW_TX_US))
    actions = s.receive(ControlPacket(state=State.UP, diag=0, detect_mult=3, my_discriminator=7,
                                      your_discriminator=1, desired_min_tx=SLOW_TX_US,
                                      required_min_rx=SLOW_TX_US, poll=True))
    sent = [decode(a.data) for a in actions if isinstance(a, Send)]
    assert len(sent) == 1
    assert sent[0].final and not sent[0].poll and sent[0].state is State.UP


def test_peer_lowering_its_rx_is_honoured_at_once() -> None:
    link = up_pair(session(1, tx_ms=50, rx_ms=300), session(2, tx_ms=300, rx_ms=1000))
    assert link.a.session.tx_interval == 1_000_000
    link.advance(0.5)
    link.run(link.b, link.b.session.set_params(required_min_rx=50_000))
    link.advance(0.5)  # b's poll went out on its schedule; a answered and re-armed its timer
    assert link.a.session.tx_interval == 50_000
    assert max(gaps(link.a.periodic[-5:])) <= 0.050 + 1e-9


def test_detect_mult_change_needs_no_poll() -> None:
    link = up_pair()
    link.run(link.a, link.a.session.set_params(detect_mult=5))
    assert not link.a.session.polling
    link.advance(1.0)
    assert link.b.session.detection_time == 5 * 300_000


def test_changes_while_down_need_no_poll() -> None:
    s = session(1)
    s.start()
    s.set_params(desired_min_tx=50_000, required_min_rx=50_000)
    assert not s.polling and s.advertised_min_tx == SLOW_TX_US


@pytest.mark.parametrize(("mult", "low", "high"), [(3, 0.75, 1.0), (2, 0.75, 1.0), (1, 0.75, 0.90)])
def test_jitter_bounds(mult: int, low: float, high: float) -> None:
    for value in (0.0, 0.5, 0.999999):
        seconds = session(1, mult=mult, rng=lambda value=value: value).jittered(1_000_000)
        assert low - 1e-9 <= seconds <= high
    assert session(1, mult=mult, rng=lambda: 0.0).jittered(1_000_000) == pytest.approx(low)


@given(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255), st.integers(1, 10_000_000))
def test_jitter_is_a_reduction_of_at_most_a_quarter(u: float, mult: int, interval: int) -> None:
    seconds = session(1, mult=mult, rng=lambda: u).jittered(interval)
    assert 0.75 * interval / 1e6 - 1e-12 <= seconds <= (0.90 if mult == 1 else 1.0) * interval / 1e6


def test_jitter_is_applied_on_the_wire() -> None:
    link = up_pair(session(1, tx_ms=100, rx_ms=100, mult=1), session(2, tx_ms=100, rx_ms=100))
    link.advance(20.0)
    spacing = gaps(link.a.periodic[-150:])
    assert min(spacing) >= 0.075 - 1e-9 and max(spacing) <= 0.090 + 1e-9
    assert max(spacing) - min(spacing) > 0.01  # really random, not a constant


def test_passive_side_waits_for_the_peer() -> None:
    link = Link(session(1), session(2, passive=True))
    link.cut = {"ab"}
    link.start()
    link.advance(5.0)
    assert not link.b.sent
    link.cut = set()
    link.until(lambda: link.a.session.up and link.b.session.up, limit=5)


def test_no_periodic_packets_to_a_peer_asking_for_none() -> None:
    """Section 6.8.7: RequiredMinRx 0 from the peer stops our periodic transmission; more resumes it."""
    s = session(1, tx_ms=100, rx_ms=100)
    s.start()
    base = dict(diag=0, detect_mult=3, my_discriminator=7, your_discriminator=1, desired_min_tx=100_000)
    s.receive(ControlPacket(state=State.INIT, required_min_rx=100_000, **base))  # type: ignore[arg-type]
    assert s.up
    actions = s.receive(ControlPacket(state=State.UP, required_min_rx=0, **base))  # type: ignore[arg-type]
    assert StopTimer(Timer.TX) in actions and not any(isinstance(a, Send) for a in actions)
    assert s.timer_expired(Timer.TX) == []
    actions = s.receive(ControlPacket(state=State.UP, required_min_rx=200_000, **base))  # type: ignore[arg-type]
    assert any(isinstance(a, Send) for a in actions)
    assert any(isinstance(a, StartTimer) and a.timer is Timer.TX for a in actions)
    assert s.tx_interval == 200_000


def test_remote_demand_mode_stops_periodic_transmission() -> None:
    s = session(1, tx_ms=100, rx_ms=100)
    s.start()
    base = dict(diag=0, detect_mult=3, my_discriminator=7, desired_min_tx=100_000, required_min_rx=100_000)
    s.receive(ControlPacket(state=State.INIT, your_discriminator=1, **base))  # type: ignore[arg-type]
    assert s.up
    actions = s.receive(ControlPacket(state=State.UP, your_discriminator=1, demand=True, **base))  # type: ignore[arg-type]
    assert StopTimer(Timer.TX) in actions
    assert s.timer_expired(Timer.TX) == []


def test_timers_in_admin_down_and_after_stop() -> None:
    s = session(1, admin_down=True)
    actions = s.start()
    sent = [decode(a.data) for a in actions if isinstance(a, Send)]
    assert sent[0].state is State.ADMIN_DOWN and sent[0].diag == Diag.ADMINISTRATIVELY_DOWN
    assert s.timer_expired(Timer.DETECT) == []
    assert s.stop() == [StopTimer(Timer.TX), StopTimer(Timer.DETECT)]
    assert s.timer_expired(Timer.TX) == []
    assert s.receive(decode(encode(replace(PACKET, your_discriminator=1)))) == []


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        Session(0)
    with pytest.raises(ValueError):
        Session(1, desired_min_tx=0)
    with pytest.raises(ValueError):
        Session(1, detect_mult=0)
    with pytest.raises(ValueError):
        session(1).set_params(detect_mult=256)
