"""The sans-IO session state machine, driven directly: events in, actions out, no sockets, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

import bgplab.bgp.fsm as fsm
from bgplab.bgp.fsm import (
    LARGE_HOLD_TIME,
    Connect,
    Disconnect,
    NotificationReceived,
    NotificationSent,
    Received,
    RefreshRequested,
    Send,
    Session,
    SessionConfig,
    SessionDown,
    SessionUp,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
    Timer,
    UpdateErrors,
    collision_loser,
)
from bgplab.bgp.wire import (
    KEEPALIVE,
    CodecContext,
    Framer,
    MpReach,
    Notification,
    Open,
    PathAttributes,
    RouteRefresh,
    Update,
    UpdateAction,
    decode_notification,
    decode_open,
    encode_notification,
    encode_open,
    encode_route_refresh,
    encode_update,
)
from bgplab.bgp.wire.capabilities import (
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    Multiprotocol,
)
from bgplab.bgp.wire.capabilities import RouteRefresh as RouteRefreshCap
from bgplab.bgp.wire.constants import AS_TRANS
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.nlri import parse_prefix

LOCAL_AS = 65000
PEER_AS = 65001
LOCAL_ID = "10.0.0.1"
PEER_ID = "10.0.0.2"


def config(**changes: object) -> SessionConfig:
    base = SessionConfig(local_asn=LOCAL_AS, router_id=LOCAL_ID, peer_asn=PEER_AS, hold_time=90)
    return replace(base, **changes)  # type: ignore[arg-type]


def peer_open(
    asn: int = PEER_AS,
    hold: int = 90,
    router_id: str = PEER_ID,
    families: tuple[tuple[int, int], ...] = ((1, 1), (2, 1)),
    extended: bool = True,
    four_octet: bool = True,
) -> bytes:
    caps: list = [Multiprotocol(a, s) for a, s in families] + [RouteRefreshCap(), EnhancedRouteRefresh()]
    if four_octet:
        caps.append(FourOctetAs(asn))
    if extended:
        caps.append(ExtendedMessage())
    return encode_open(Open(asn, hold, router_id, tuple(caps)))


def key(text: str) -> int:
    return parse_prefix(text)[1]


def update_bytes(first_as: int = PEER_AS, nlri: tuple[str, ...] = ("203.0.113.0/24",), **attrs: object) -> bytes:
    base = PathAttributes(origin=0, as_path=((2, (first_as, 65100)),), next_hop="192.0.2.2")
    update = Update(attributes=base.with_changes(**attrs), nlri=[key(n) for n in nlri])
    return encode_update(update, CodecContext())


def of(actions: list, kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def shape(actions: list) -> list:  # type: ignore[type-arg]
    """Actions with StateChanged reduced to (old, new): reasons are prose, not protocol."""
    return [("state", a.old, a.new) if isinstance(a, StateChanged) else a for a in actions]


def sent_notification(actions: list) -> Notification:  # type: ignore[type-arg]
    """The one NOTIFICATION among the Send actions, decoded from its bytes."""
    notes = []
    for send in of(actions, Send):
        msgs, err = Framer().feed(send.data)
        assert err is None
        notes += [decode_notification(body) for t, body in msgs if t == 3]
    assert len(notes) == 1, actions
    sent = of(actions, NotificationSent)
    assert sent == [NotificationSent(notes[0])]
    return notes[0]


def opensent(cfg: SessionConfig | None = None) -> Session:
    s = Session(cfg or config())
    s.start()
    s.connection_made()
    assert s.state is State.OPENSENT
    return s


def openconfirm(cfg: SessionConfig | None = None, **open_args: object) -> Session:
    s = opensent(cfg)
    s.data_received(peer_open(**open_args))  # type: ignore[arg-type]
    assert s.state is State.OPENCONFIRM
    return s


def established(cfg: SessionConfig | None = None, **open_args: object) -> Session:
    s = openconfirm(cfg, **open_args)
    s.data_received(KEEPALIVE)
    assert s.state is State.ESTABLISHED
    return s


def assert_went_idle(actions: list, old: State, restart_delay: float | None, down: bool) -> None:  # type: ignore[type-arg]
    assert Disconnect() in actions
    assert ("state", old, State.IDLE) in shape(actions)
    for t in (Timer.CONNECT_RETRY, Timer.HOLD, Timer.KEEPALIVE, Timer.SEND_HOLD, Timer.STABLE):
        assert StopTimer(t) in actions
    idle_hold = [a for a in of(actions, StartTimer) if a.timer is Timer.IDLE_HOLD]
    assert idle_hold == ([StartTimer(Timer.IDLE_HOLD, restart_delay)] if restart_delay is not None else [])
    assert bool(of(actions, SessionDown)) == down


# ---------------------------------------------------------------- the happy path


def test_happy_path_exact_actions() -> None:
    s = Session(config())
    a = s.start()
    assert shape(a) == [Connect(), StartTimer(Timer.CONNECT_RETRY, 5.0), ("state", State.IDLE, State.CONNECT)]

    a = s.connection_made()
    assert len(a) == 4
    assert a[0] == StopTimer(Timer.CONNECT_RETRY)
    assert isinstance(a[1], Send)
    assert shape(a[2:]) == [StartTimer(Timer.HOLD, LARGE_HOLD_TIME), ("state", State.CONNECT, State.OPENSENT)]
    assert LARGE_HOLD_TIME == 240.0  # RFC 4271 section 8.2.2 suggests 4 minutes
    msgs, err = Framer().feed(a[1].data)
    assert err is None and [t for t, _ in msgs] == [1]
    sent_open = decode_open(msgs[0][1])
    assert (sent_open.asn, sent_open.hold_time, sent_open.router_id) == (LOCAL_AS, 90, LOCAL_ID)
    assert sent_open.capabilities == (
        Multiprotocol(1, 1),
        Multiprotocol(2, 1),
        RouteRefreshCap(),
        EnhancedRouteRefresh(),
        FourOctetAs(LOCAL_AS),
        ExtendedMessage(),
    )

    a = s.data_received(peer_open(hold=30))
    assert shape(a) == [
        Send(KEEPALIVE),
        StartTimer(Timer.HOLD, 30),
        StartTimer(Timer.KEEPALIVE, 10.0),
        ("state", State.OPENSENT, State.OPENCONFIRM),
        StartTimer(Timer.HOLD, 30),  # re-armed once per batch of received bytes
    ]
    neg = s.negotiated
    assert neg is not None
    assert (neg.hold_time, neg.keepalive) == (30, 10.0)
    assert neg.families == frozenset({(1, 1), (2, 1)})
    assert neg.route_refresh and neg.enhanced_route_refresh and neg.extended_message
    assert neg.max_message_length == 65535
    assert neg.codec == CodecContext(four_octet_as=True, ebgp=True, families=frozenset({(1, 1), (2, 1)}))
    assert s.peer_router_id == PEER_ID

    a = s.data_received(KEEPALIVE)
    assert shape(a) == [
        StopTimer(Timer.IDLE_HOLD),
        StartTimer(Timer.STABLE, 60.0),
        ("state", State.OPENCONFIRM, State.ESTABLISHED),
        SessionUp(neg),
        StartTimer(Timer.HOLD, 30),
    ]

    a = s.data_received(update_bytes())
    assert len(a) == 2 and isinstance(a[0], Received) and a[1] == StartTimer(Timer.HOLD, 30)
    assert a[0].update.nlri == [key("203.0.113.0/24")]
    assert a[0].update.attributes is not None and a[0].update.attributes.next_hop == "192.0.2.2"

    assert s.timer_expired(Timer.KEEPALIVE) == [Send(KEEPALIVE), StartTimer(Timer.KEEPALIVE, 10.0)]
    assert s.data_received(KEEPALIVE) == [StartTimer(Timer.HOLD, 30)]


def test_open_and_keepalive_in_one_segment() -> None:
    s = opensent()
    a = s.data_received(peer_open() + KEEPALIVE + update_bytes())
    assert s.state is State.ESTABLISHED
    assert [type(x) for x in a if isinstance(x, SessionUp | Received)] == [SessionUp, Received]


def test_passive_start_goes_to_active_and_waits() -> None:
    s = Session(config(passive=True))
    assert shape(s.start()) == [("state", State.IDLE, State.ACTIVE)]
    assert s.timer_expired(Timer.CONNECT_RETRY) == []
    a = s.connection_made()
    assert ("state", State.ACTIVE, State.OPENSENT) in shape(a)
    assert of(a, Send)


def test_start_when_not_idle_does_nothing() -> None:
    s = opensent()
    assert s.start() == []
    assert s.state is State.OPENSENT


def test_connection_made_in_the_wrong_state_is_refused() -> None:
    assert Session(config()).connection_made() == [Disconnect()]
    assert established().connection_made() == [Disconnect()]


def test_data_is_ignored_outside_a_connection() -> None:
    s = Session(config())
    assert s.data_received(peer_open()) == []
    s.start()
    assert s.data_received(peer_open()) == []


# ---------------------------------------------------------------- hold time negotiation


@pytest.mark.parametrize(
    ("mine", "theirs", "hold", "keepalive"),
    [(90, 30, 30, 10.0), (20, 90, 20, 20 / 3), (180, 180, 180, 60.0), (3, 3, 3, 1.0), (90, 65535, 90, 30.0)],
)
def test_hold_time_is_the_smaller_offer_and_keepalive_a_third(
    mine: int, theirs: int, hold: int, keepalive: float
) -> None:
    s = opensent(config(hold_time=mine))
    a = s.data_received(peer_open(hold=theirs))
    assert s.negotiated is not None
    assert s.negotiated.hold_time == hold
    assert s.negotiated.keepalive == pytest.approx(keepalive)
    assert StartTimer(Timer.HOLD, hold) in a
    assert StartTimer(Timer.KEEPALIVE, s.negotiated.keepalive) in a


@pytest.mark.parametrize(("configured", "expected"), [(5, 5.0), (100, 10.0)])
def test_configured_keepalive_never_exceeds_a_third_of_hold(configured: int, expected: float) -> None:
    s = openconfirm(config(keepalive=configured), hold=30)
    assert s.negotiated is not None and s.negotiated.keepalive == expected


@pytest.mark.parametrize(("mine", "theirs"), [(90, 0), (0, 90), (0, 0)])
def test_hold_time_zero_means_no_keepalive_and_no_hold_timer(mine: int, theirs: int) -> None:
    s = opensent(config(hold_time=mine))
    a = s.data_received(peer_open(hold=theirs))
    assert s.negotiated is not None and s.negotiated.hold_time == 0 and s.negotiated.keepalive == 0.0
    assert StopTimer(Timer.HOLD) in a and StopTimer(Timer.KEEPALIVE) in a
    assert not [x for x in of(a, StartTimer) if x.timer in (Timer.HOLD, Timer.KEEPALIVE)]
    a = s.data_received(KEEPALIVE)
    assert s.state is State.ESTABLISHED
    assert not [x for x in of(a, StartTimer) if x.timer in (Timer.HOLD, Timer.KEEPALIVE)]
    assert [type(x) for x in s.data_received(update_bytes())] == [Received]
    assert s.data_received(KEEPALIVE) == []


@pytest.mark.parametrize(("theirs", "minimum"), [(1, 3), (2, 3), (5, 10), (9, 10)])
def test_unacceptable_hold_time_is_2_6(theirs: int, minimum: int) -> None:
    s = opensent(config(min_hold_time=minimum))
    a = s.data_received(peer_open(hold=theirs))
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (2, 6, b"")
    assert_went_idle(a, State.OPENSENT, 1.0, down=False)


def test_an_open_with_no_family_in_common_is_refused_2_7_naming_ours() -> None:
    """FRR refuses the same; accepted, the session would stay up carrying nothing."""
    s = opensent(config(families=((1, 1),)))
    a = s.data_received(peer_open(families=((2, 1),)))
    note = sent_notification(a)
    # RFC 5492 section 5: the data is the capability we needed: code 1, length 4, AFI 1, reserved, SAFI 1
    assert (note.code, note.subcode, note.data) == (2, 7, bytes([1, 4, 0, 1, 0, 1]))
    assert_went_idle(a, State.OPENSENT, 1.0, down=False)


def test_an_open_sharing_one_family_is_accepted_with_that_one() -> None:
    s = openconfirm(config(families=((1, 1), (2, 1))), families=((2, 1),))
    assert s.negotiated is not None and s.negotiated.families == {(2, 1)}


def test_hold_time_at_the_minimum_is_accepted() -> None:
    s = openconfirm(config(min_hold_time=10), hold=10)
    assert s.negotiated is not None and s.negotiated.hold_time == 10


# ---------------------------------------------------------------- OPEN checks


def test_wrong_peer_as_is_2_2_with_the_my_as_field() -> None:
    s = opensent()
    a = s.data_received(peer_open(asn=65002))
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (2, 2, (65002).to_bytes(2, "big"))
    assert s.state is State.IDLE


def test_wrong_four_octet_peer_as_is_2_2_with_as_trans() -> None:
    s = opensent()
    note = sent_notification(s.data_received(peer_open(asn=4_200_000_000)))
    assert (note.code, note.subcode, note.data) == (2, 2, AS_TRANS.to_bytes(2, "big"))


def test_four_octet_peer_as_is_matched_against_the_capability() -> None:
    s = openconfirm(config(peer_asn=4_200_000_000), asn=4_200_000_000)
    assert s.negotiated is not None and s.negotiated.peer_open.asn == 4_200_000_000


def test_any_peer_as_when_none_is_configured() -> None:
    s = openconfirm(config(peer_asn=None), asn=64999)
    assert s.negotiated is not None and s.negotiated.codec.ebgp


def test_router_id_zero_is_2_3() -> None:
    s = opensent()
    note = sent_notification(s.data_received(peer_open(router_id="0.0.0.0")))
    assert (note.code, note.subcode) == (2, 3)


def test_ibgp_peer_with_our_router_id_is_2_3() -> None:
    s = opensent(config(peer_asn=LOCAL_AS))
    note = sent_notification(s.data_received(peer_open(asn=LOCAL_AS, router_id=LOCAL_ID)))
    assert (note.code, note.subcode) == (2, 3)


def test_ebgp_peer_may_share_our_router_id() -> None:
    """RFC 6286: identifiers need only be unique within an AS."""
    s = openconfirm(router_id=LOCAL_ID)
    assert s.state is State.OPENCONFIRM


def test_ibgp_session_is_not_ebgp() -> None:
    s = openconfirm(config(peer_asn=LOCAL_AS), asn=LOCAL_AS)
    assert s.negotiated is not None and not s.negotiated.codec.ebgp


def test_families_are_the_intersection() -> None:
    s = openconfirm(families=((2, 1), (1, 128)))
    assert s.negotiated is not None and s.negotiated.families == frozenset({(2, 1)})


def test_peer_without_four_octet_capability_gives_a_two_octet_codec() -> None:
    s = openconfirm(four_octet=False)
    assert s.negotiated is not None and not s.negotiated.codec.four_octet_as


def test_malformed_open_is_answered_with_its_open_error() -> None:
    s = opensent()
    body = bytes([4]) + (PEER_AS).to_bytes(2, "big") + (90).to_bytes(2, "big") + bytes([10, 0, 0, 2]) + b"\xff"
    note = sent_notification(s.data_received(frame(1, body)))
    assert (note.code, note.subcode) == (2, 0)
    assert s.state is State.IDLE


def test_open_version_3_is_2_1() -> None:
    s = opensent()
    raw = bytearray(peer_open())
    raw[19] = 3
    note = sent_notification(s.data_received(bytes(raw)))
    assert (note.code, note.subcode, note.data) == (2, 1, b"\x00\x04")


# ---------------------------------------------------------------- unexpected messages (RFC 6608)


@pytest.mark.parametrize(
    ("state", "message", "subcode"),
    [
        ("opensent", "update", 1),
        ("opensent", "keepalive", 1),
        ("opensent", "route-refresh", 1),
        ("openconfirm", "update", 2),
        ("openconfirm", "open", 2),
        ("openconfirm", "route-refresh", 2),
        ("established", "open", 3),
    ],
)
def test_unexpected_message_is_an_fsm_error(state: str, message: str, subcode: int) -> None:
    s = {"opensent": opensent, "openconfirm": openconfirm, "established": established}[state]()
    old = s.state
    raw = {
        "update": update_bytes(),
        "keepalive": KEEPALIVE,
        "open": peer_open(),
        "route-refresh": encode_route_refresh(RouteRefresh(1, 1)),
    }[message]
    a = s.data_received(raw)
    note = sent_notification(a)
    assert (note.code, note.subcode) == (5, subcode)
    assert_went_idle(a, old, 1.0, down=old is State.ESTABLISHED)


def test_header_error_is_sent_back() -> None:
    s = established()
    a = s.data_received(b"\xff" * 16 + b"\x00\x13\x09")
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (1, 3, b"\x09")
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)


def test_messages_before_a_header_error_are_still_delivered() -> None:
    s = established()
    a = s.data_received(update_bytes() + b"\x00" * 19)
    assert isinstance(a[0], Received)
    assert (sent_notification(a).code, sent_notification(a).subcode) == (1, 1)


def test_extended_message_only_when_negotiated() -> None:
    big = encode_update(
        Update(
            attributes=PathAttributes(origin=0, as_path=((2, (PEER_AS,)),), next_hop="192.0.2.2"),
            nlri=[key(f"10.{i >> 8}.{i & 0xFF}.0/24") for i in range(1500)],
        ),
        CodecContext(),
    )
    assert len(big) > 4096
    s = established()
    assert of(s.data_received(big), Received)
    s = established(extended=False)
    note = sent_notification(s.data_received(big))
    assert (note.code, note.subcode, note.data) == (1, 2, len(big).to_bytes(2, "big"))


# ---------------------------------------------------------------- timers


def test_hold_timer_expiry_when_established_is_4_0_and_session_down() -> None:
    s = established()
    a = s.timer_expired(Timer.HOLD)
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (4, 0, b"")
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)
    assert s.negotiated is None


@pytest.mark.parametrize("make", [opensent, openconfirm])
def test_hold_timer_expiry_before_established_is_4_0_without_session_down(make) -> None:  # type: ignore[no-untyped-def]
    s = make()
    old = s.state
    a = s.timer_expired(Timer.HOLD)
    assert (sent_notification(a).code, sent_notification(a).subcode) == (4, 0)
    assert_went_idle(a, old, 1.0, down=False)


def test_stale_timers_are_ignored() -> None:
    s = Session(config())
    for t in Timer:
        if t is not Timer.IDLE_HOLD:
            assert s.timer_expired(t) == []
    assert s.state is State.IDLE
    s.start()
    assert s.timer_expired(Timer.HOLD) == []
    assert s.timer_expired(Timer.KEEPALIVE) == []
    assert s.timer_expired(Timer.SEND_HOLD) == []


def test_notification_received_goes_idle_with_session_down() -> None:
    s = established()
    note = Notification(6, 2, b"\x04bye!")
    a = s.data_received(encode_notification(note))
    assert a[0] == NotificationReceived(note)
    assert not of(a, Send)
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)
    assert "bye!" in of(a, SessionDown)[0].reason


def test_notification_stops_processing_of_the_rest_of_the_segment() -> None:
    s = established()
    a = s.data_received(encode_notification(Notification(6, 4)) + update_bytes())
    assert not of(a, Received)
    assert s.state is State.IDLE


def test_idle_hold_doubles_on_repeated_failures_is_capped_and_reset_by_stable() -> None:
    s = Session(config(idle_hold=1.0, idle_hold_max=10.0))
    delays = []
    for attempt in range(6):
        a = s.start() if attempt == 0 else s.timer_expired(Timer.IDLE_HOLD)
        assert Connect() in a
        s.connection_made()
        s.data_received(peer_open())
        s.data_received(KEEPALIVE)
        assert s.state is State.ESTABLISHED
        a = s.data_received(encode_notification(Notification(6, 4)))
        delays += [x.seconds for x in of(a, StartTimer) if x.timer is Timer.IDLE_HOLD]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    # a session that stays up for the STABLE time forgives the past
    s.timer_expired(Timer.IDLE_HOLD)
    s.connection_made()
    s.data_received(peer_open())
    a = s.data_received(KEEPALIVE)
    stable = [x for x in of(a, StartTimer) if x.timer is Timer.STABLE]
    assert stable == [StartTimer(Timer.STABLE, 180.0)]  # max(60, 2 x hold 90)
    assert s.timer_expired(Timer.STABLE) == []
    a = s.timer_expired(Timer.HOLD)
    assert [x.seconds for x in of(a, StartTimer) if x.timer is Timer.IDLE_HOLD] == [1.0]


def test_idle_hold_expiry_restarts_the_session() -> None:
    s = established()
    s.timer_expired(Timer.HOLD)
    a = s.timer_expired(Timer.IDLE_HOLD)
    assert shape(a) == [Connect(), StartTimer(Timer.CONNECT_RETRY, 5.0), ("state", State.IDLE, State.CONNECT)]


def test_connect_retry_backs_off_and_is_capped() -> None:
    s = Session(config(connect_retry=5.0, connect_retry_max=30.0))
    a = s.start()
    assert StartTimer(Timer.CONNECT_RETRY, 5.0) in a
    waits = []
    for _ in range(5):
        a = s.connection_failed()
        assert s.state is State.ACTIVE
        assert ("state", State.CONNECT, State.ACTIVE) in shape(a)
        assert not of(a, Disconnect) and not of(a, Send)
        waits += [x.seconds for x in of(a, StartTimer)]
        a = s.timer_expired(Timer.CONNECT_RETRY)
        assert Connect() in a and s.state is State.CONNECT
    assert waits == [5.0, 10.0, 20.0, 30.0, 30.0]  # the configured time first, then doubling
    s.timer_expired(Timer.STABLE)  # a stable session resets the backoff
    assert shape(s.connection_failed()) == [
        StartTimer(Timer.CONNECT_RETRY, 5.0),
        ("state", State.CONNECT, State.ACTIVE),
    ]


def test_connect_retry_expiry_in_connect_reconnects() -> None:
    s = Session(config())
    s.start()
    assert s.timer_expired(Timer.CONNECT_RETRY) == [Disconnect(), Connect(), StartTimer(Timer.CONNECT_RETRY, 5.0)]
    assert s.state is State.CONNECT


def test_connection_failed_in_connect_goes_active_with_a_retry_timer() -> None:
    s = Session(config())
    s.start()
    a = s.connection_failed("refused")
    assert shape(a) == [StartTimer(Timer.CONNECT_RETRY, 5.0), ("state", State.CONNECT, State.ACTIVE)]
    assert of(a, StateChanged)[0].reason == "refused"


def test_connection_lost_in_opensent_goes_active() -> None:
    s = opensent()
    a = s.connection_failed()
    assert shape(a) == [
        Disconnect(),
        StopTimer(Timer.HOLD),
        StartTimer(Timer.CONNECT_RETRY, 5.0),
        ("state", State.OPENSENT, State.ACTIVE),
    ]


def test_connection_lost_when_established_goes_idle_with_session_down() -> None:
    s = established()
    a = s.connection_failed("reset by peer")
    assert not of(a, Send)
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)


def test_connection_failed_when_idle_or_active_does_nothing() -> None:
    s = Session(config())
    assert s.connection_failed() == []
    s = Session(config(passive=True))
    s.start()
    assert s.connection_failed() == []


# ---------------------------------------------------------------- stop, send hold, collisions


def test_manual_stop_sends_cease_2_and_does_not_restart() -> None:
    s = established()
    a = s.stop()
    assert a[0] == StopTimer(Timer.IDLE_HOLD)
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (6, 2, b"")
    assert_went_idle(a, State.ESTABLISHED, None, down=True)
    assert s.timer_expired(Timer.IDLE_HOLD) == []
    assert s.state is State.IDLE
    assert of(s.start(), Connect)


def test_manual_stop_with_a_shutdown_communication() -> None:
    from bgplab.bgp.wire.messages import shutdown_data

    s = established()
    note = sent_notification(s.stop(data=shutdown_data("maintenance")))
    assert note.shutdown_message == "maintenance"


def test_manual_stop_before_a_connection_sends_nothing() -> None:
    s = Session(config())
    s.start()
    a = s.stop()
    assert not of(a, Send)
    assert Disconnect() in a and s.state is State.IDLE


@pytest.mark.parametrize(("hold", "expected"), [(90, 480.0), (300, 600.0), (0, 480.0)])
def test_send_hold_timer_default(hold: int, expected: float) -> None:
    s = established(config(hold_time=hold), hold=hold or 90)
    assert s.negotiated is not None and s.negotiated.hold_time == hold
    assert s.send_blocked() == [StartTimer(Timer.SEND_HOLD, expected)]
    assert s.send_unblocked() == [StopTimer(Timer.SEND_HOLD)]


def test_send_hold_timer_configured_and_before_established() -> None:
    assert established(config(send_hold_time=30.0)).send_blocked() == [StartTimer(Timer.SEND_HOLD, 30.0)]
    assert opensent().send_blocked() == [StartTimer(Timer.SEND_HOLD, 480.0)]
    assert Session(config()).send_blocked() == []


def test_send_hold_expiry_closes_without_a_notification() -> None:
    """RFC 9687: a NOTIFICATION would queue behind the data the peer is not reading."""
    s = established()
    s.send_blocked()
    a = s.timer_expired(Timer.SEND_HOLD)
    assert not of(a, Send) and not of(a, NotificationSent)
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)
    assert "send hold" in of(a, SessionDown)[0].reason


@pytest.mark.parametrize(
    ("local", "remote", "loser"),
    [
        ("10.0.0.1", "10.0.0.2", "local"),
        ("10.0.0.2", "10.0.0.1", "remote"),
        ("9.0.0.1", "10.0.0.1", "local"),  # numeric, not text, comparison
        ("192.168.0.1", "20.0.0.1", "remote"),
        ("255.255.255.255", "0.0.0.1", "remote"),
    ],
)
def test_collision_loser(local: str, remote: str, loser: str) -> None:
    """RFC 4271 section 6.8: the connection opened by the higher BGP Identifier survives."""
    assert collision_loser(local, remote) == loser


def test_close_collision_sends_cease_7_and_stays_idle() -> None:
    s = openconfirm()
    a = s.close_collision()
    note = sent_notification(a)
    assert (note.code, note.subcode) == (6, 7)
    assert_went_idle(a, State.OPENCONFIRM, None, down=False)
    assert s.timer_expired(Timer.IDLE_HOLD) == []


def test_fail_sends_the_chosen_notification() -> None:
    s = established()
    a = s.fail(6, 1, b"\x00\x01\x01\x00\x00\x0f\xa0", "max prefix")
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (6, 1, b"\x00\x01\x01\x00\x00\x0f\xa0")
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)


# ---------------------------------------------------------------- bytes in any split


def _script() -> bytes:
    return (
        peer_open(hold=30)
        + KEEPALIVE
        + update_bytes()
        + update_bytes(nlri=("198.51.100.0/24", "192.0.2.0/25"), med=7)
        + encode_route_refresh(RouteRefresh(2, 1))
        + KEEPALIVE
        + update_bytes(first_as=65099)
    )


def _meaningful(actions: list) -> list:  # type: ignore[type-arg]
    """Everything but the per-batch hold timer re-arm, which depends on how bytes were batched."""
    return [a for a in shape(actions) if not (isinstance(a, StartTimer) and a.timer is Timer.HOLD)]


def test_data_split_byte_by_byte_gives_the_same_result() -> None:
    data = _script()
    whole = opensent()
    expected = _meaningful(whole.data_received(data))
    assert [type(a) for a in expected if isinstance(a, Received | RefreshRequested | UpdateErrors)] == [
        Received,
        Received,
        RefreshRequested,
        UpdateErrors,
        Received,
    ]
    split = opensent()
    got: list = []
    for i in range(len(data)):
        got += split.data_received(data[i : i + 1])
    assert _meaningful(got) == expected
    assert split.state is whole.state is State.ESTABLISHED


@pytest.mark.parametrize("cut", [1, 18, 19, 20, 50, 100])
def test_data_split_in_two_at_various_offsets(cut: int) -> None:
    data = _script()
    whole = _meaningful(opensent().data_received(data))
    s = opensent()
    assert _meaningful(s.data_received(data[:cut]) + s.data_received(data[cut:])) == whole


# ---------------------------------------------------------------- UPDATE handling


def test_treat_as_withdraw_update_yields_errors_then_received() -> None:
    s = established()
    attrs = b"\x40\x01\x01\x00" + b"\x40\x02\x06\x02\x01" + PEER_AS.to_bytes(4, "big")  # no NEXT_HOP
    body = b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + bytes([24, 203, 0, 113])
    a = s.data_received(frame(2, body))
    assert [type(x) for x in a] == [UpdateErrors, Received, StartTimer]
    errors = a[0].errors
    assert [e.action for e in errors] == [UpdateAction.TREAT_AS_WITHDRAW]
    update = a[1].update
    assert update.withdrawn == [key("203.0.113.0/24")] and update.nlri == [] and update.attributes is None
    assert tuple(update.errors) == errors
    assert s.state is State.ESTABLISHED


def test_update_reset_error_is_sent_as_notification() -> None:
    s = established()
    body = b"\x00\x00\x00\x04\x40\x01\x01\x00" + bytes([33, 1, 2, 3, 4, 5])
    a = s.data_received(frame(2, body))
    assert (sent_notification(a).code, sent_notification(a).subcode) == (3, 10)
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)


def test_enforce_first_as_withdraws_a_path_not_starting_with_the_peer() -> None:
    s = established()
    a = s.data_received(update_bytes(first_as=65099))
    assert [type(x) for x in a][:2] == [UpdateErrors, Received]
    (error,) = a[0].errors
    assert error.action is UpdateAction.TREAT_AS_WITHDRAW and error.attr_type == 2
    update = a[1].update
    assert update.withdrawn == [key("203.0.113.0/24")] and update.nlri == [] and update.attributes is None


def test_enforce_first_as_on_an_empty_path_and_on_mp_nlri() -> None:
    s = established()
    ipv6 = Update(
        attributes=PathAttributes(origin=0, as_path=()),
        mp_reach=MpReach(2, 1, ("2001:db8::1",), [key("2001:db8::/32")]),
    )
    a = s.data_received(encode_update(ipv6, CodecContext()))
    update = of(a, Received)[0].update
    assert update.mp_reach is None and update.mp_unreach[0].withdrawn == [key("2001:db8::/32")]
    assert of(a, UpdateErrors)


def test_enforce_first_as_passes_the_right_path_and_withdrawals() -> None:
    s = established()
    a = s.data_received(update_bytes())
    assert [type(x) for x in a] == [Received, StartTimer]
    withdraw_only = encode_update(Update(withdrawn=[key("203.0.113.0/24")]), CodecContext())
    a = s.data_received(withdraw_only)
    assert [type(x) for x in a] == [Received, StartTimer]


def test_enforce_first_as_can_be_disabled_and_is_ebgp_only() -> None:
    s = established(config(enforce_first_as=False))
    assert [type(x) for x in s.data_received(update_bytes(first_as=65099))] == [Received, StartTimer]
    s = established(config(peer_asn=LOCAL_AS), asn=LOCAL_AS)
    assert [type(x) for x in s.data_received(update_bytes(first_as=65099))] == [Received, StartTimer]


def test_attribute_cache_does_not_leak_a_withdrawal() -> None:
    """The same attribute bytes twice: the second (cached) decode must still be checked and intact."""
    s = established()
    first = of(s.data_received(update_bytes(first_as=65099)), Received)[0].update
    second = of(s.data_received(update_bytes(first_as=65099)), Received)[0].update
    assert first.attributes is None and second.attributes is None
    good1 = of(s.data_received(update_bytes()), Received)[0].update
    good2 = of(s.data_received(update_bytes()), Received)[0].update
    assert good1.attributes is not None and good1.attributes == good2.attributes and good2.nlri


def test_route_refresh_for_a_negotiated_family_and_unknown_ones() -> None:
    s = established(families=((1, 1),))
    a = s.data_received(encode_route_refresh(RouteRefresh(1, 1)))
    assert a[0] == RefreshRequested(RouteRefresh(1, 1))
    assert s.data_received(encode_route_refresh(RouteRefresh(2, 1))) == [StartTimer(Timer.HOLD, 90)]
    assert s.data_received(encode_route_refresh(RouteRefresh(999, 77))) == [StartTimer(Timer.HOLD, 90)]
    assert s.state is State.ESTABLISHED


def test_route_refresh_of_bad_length_is_7_1() -> None:
    s = established()
    a = s.data_received(frame(5, b"\x00\x01\x00\x01\x00"))
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (7, 1, frame(5, b"\x00\x01\x00\x01\x00"))  # whole message


# ---------------------------------------------------------------- decoder bugs never escape (B.5 case 20)


@pytest.mark.parametrize(
    ("name", "exc", "raw", "code", "subcode"),
    [
        ("decode_update", IndexError("boom"), "update", 3, 1),
        ("decode_update", KeyError("boom"), "update", 3, 1),
        ("decode_route_refresh", ValueError("boom"), "refresh", 7, 1),
        ("decode_notification", UnicodeDecodeError("utf-8", b"", 0, 1, "x"), "notification", 6, 0),
    ],
)
def test_a_decoder_exception_becomes_a_notification(
    monkeypatch: pytest.MonkeyPatch, name: str, exc: Exception, raw: str, code: int, subcode: int
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise exc

    s = established()
    monkeypatch.setattr(fsm, name, explode)
    data = {
        "update": update_bytes(),
        "refresh": encode_route_refresh(RouteRefresh(1, 1)),
        "notification": encode_notification(Notification(6, 2)),
    }[raw]
    a = s.data_received(data)
    note = sent_notification(a)
    assert (note.code, note.subcode, note.data) == (code, subcode, b"")
    assert_went_idle(a, State.ESTABLISHED, 1.0, down=True)
    assert "internal error" in of(a, SessionDown)[0].reason


def test_an_open_decoder_exception_becomes_2_0(monkeypatch: pytest.MonkeyPatch) -> None:
    import struct

    def explode(_body: bytes) -> None:
        raise struct.error("unpack requires a buffer of 4 bytes")

    s = opensent()
    monkeypatch.setattr(fsm, "decode_open", explode)
    a = s.data_received(peer_open())
    assert (sent_notification(a).code, sent_notification(a).subcode) == (2, 0)
    assert s.state is State.IDLE


# ---------------------------------------------------------------- bugs found (strict xfail: remove when fixed)


def test_stable_timer_runs_even_with_hold_time_zero() -> None:
    s = openconfirm(hold=0)
    a = s.data_received(KEEPALIVE)
    assert [x for x in of(a, StartTimer) if x.timer is Timer.STABLE]


def test_peer_as_zero_is_2_2_even_without_a_configured_peer_as() -> None:
    s = opensent(config(peer_asn=None))
    note = sent_notification(s.data_received(peer_open(asn=0)))
    assert (note.code, note.subcode) == (2, 2)
