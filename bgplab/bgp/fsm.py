"""The BGP session state machine of RFC 4271 section 8, sans-IO.

A `Session` owns one BGP connection at a time. It is fed events (connection up or lost,
bytes received, a timer fired, the application asks to start or stop) and answers each with a
list of actions (send these bytes, connect, disconnect, arm or cancel a timer, here is an
UPDATE). It never reads a clock or touches a socket, so every transition is unit-testable and
the asyncio edge (`connection.Link`) stays a thin loop that carries actions out.

Two deliberate departures from the letter of the RFC, both common practice:
- the hold timer is re-armed once per batch of received bytes rather than per message, which
  is equivalent for expiry purposes and spares one timer operation per UPDATE;
- connection collisions (section 6.8) are detected across two `Session` objects by the
  owner of both (the speaker), using `collision_loser` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bgplab.bgp.wire.capabilities import (
    Capability,
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefresh,
    encode_capability,
)
from bgplab.bgp.wire.constants import (
    AS_TRANS,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    MessageType,
    OpenSubcode,
)
from bgplab.bgp.wire.errors import NotificationError, UpdateAction, UpdateError
from bgplab.bgp.wire.framing import Framer
from bgplab.bgp.wire.messages import (
    KEEPALIVE,
    Notification,
    Open,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_notification,
    encode_open,
)
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, CodecContext, Family, Update, treat_as_withdraw
from bgplab.bgp.wire.update_decoder import DecodeCache, decode_update

LARGE_HOLD_TIME = 240.0  # RFC 4271 section 8.2.2: hold timer while waiting for the peer's OPEN


class State(Enum):
    IDLE = "idle"
    CONNECT = "connect"
    ACTIVE = "active"
    OPENSENT = "opensent"
    OPENCONFIRM = "openconfirm"
    ESTABLISHED = "established"


class Timer(Enum):
    CONNECT_RETRY = "connect-retry"
    HOLD = "hold"
    KEEPALIVE = "keepalive"
    SEND_HOLD = "send-hold"
    IDLE_HOLD = "idle-hold"
    STABLE = "stable"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """One peer's session parameters; times in seconds."""

    local_asn: int
    router_id: str
    peer_asn: int | None = None
    """None accepts any AS (a collector); otherwise a mismatch is refused with 2/2."""
    hold_time: int = 90
    keepalive: int | None = None
    """None means hold_time / 3, as RFC 4271 section 10 suggests."""
    min_hold_time: int = 3
    passive: bool = False
    connect_retry: float = 5.0
    connect_retry_max: float = 120.0
    idle_hold: float = 1.0
    idle_hold_max: float = 60.0
    send_hold_time: float | None = None
    """None means RFC 9687's default, max(8 minutes, 2 x negotiated hold time)."""
    families: tuple[Family, ...] = (IPV4_UNICAST, IPV6_UNICAST)
    extended_message: bool = True
    graceful_restart_time: int | None = None
    """Advertise the graceful restart capability with this restart time; None leaves it out."""
    enforce_first_as: bool = True

    def __post_init__(self) -> None:
        if self.hold_time in (1, 2) or not 0 <= self.hold_time <= 65535:
            raise ValueError(f"hold time {self.hold_time}: must be 0 or 3..65535 (RFC 4271)")
        if self.keepalive is not None and self.keepalive < 1:
            raise ValueError(f"keepalive {self.keepalive}: must be at least 1 second")
        for name in ("connect_retry", "idle_hold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both OPENs settled, valid for the life of one established session."""

    local_open: Open
    peer_open: Open
    hold_time: int
    keepalive: float
    families: frozenset[Family]
    route_refresh: bool
    enhanced_route_refresh: bool
    extended_message: bool
    codec: CodecContext

    @property
    def max_message_length(self) -> int:
        return MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Connect:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class SessionUp:
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class SessionDown:
    """An established session ended: everything learned from the peer is gone."""

    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    update: Update


@dataclass(frozen=True, slots=True)
class RefreshRequested:
    request: RouteRefreshMessage


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    notification: Notification


@dataclass(frozen=True, slots=True)
class NotificationSent:
    notification: Notification


@dataclass(frozen=True, slots=True)
class UpdateErrors:
    """RFC 7606 section 6: errors handled without a reset must still be logged."""

    errors: tuple[UpdateError, ...]


Action = (
    Send
    | Connect
    | Disconnect
    | StartTimer
    | StopTimer
    | StateChanged
    | SessionUp
    | SessionDown
    | Received
    | RefreshRequested
    | NotificationReceived
    | NotificationSent
    | UpdateErrors
)


# ---------------------------------------------------------------- pure helpers


def local_open(config: SessionConfig) -> Open:
    caps: list[Capability] = [Multiprotocol(afi, safi) for afi, safi in config.families]
    caps += [RouteRefresh(), EnhancedRouteRefresh(), FourOctetAs(config.local_asn)]
    if config.extended_message:
        caps.append(ExtendedMessage())
    if config.graceful_restart_time is not None:
        caps.append(GracefulRestart(config.graceful_restart_time))
    return Open(config.local_asn, config.hold_time, config.router_id, tuple(caps))


def validate_open(config: SessionConfig, peer: Open) -> None:
    """The checks of RFC 4271 section 6.2 that need our configuration; raises the 2/x to send."""
    if peer.asn == 0 or (config.peer_asn is not None and peer.asn != config.peer_asn):
        field_as = peer.my_as_field if peer.my_as_field is not None else AS_TRANS
        raise NotificationError(
            ErrorCode.OPEN_MESSAGE,
            OpenSubcode.BAD_PEER_AS,
            field_as.to_bytes(2, "big"),
            f"peer says AS {peer.asn}, configured {config.peer_asn}",
        )
    if peer.hold_time in (1, 2) or (peer.hold_time and peer.hold_time < config.min_hold_time):
        raise NotificationError(
            ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME, b"", f"hold time {peer.hold_time}"
        )
    if peer.router_id == "0.0.0.0":
        raise NotificationError(ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER, b"", "BGP identifier 0")
    if peer.asn == config.local_asn and peer.router_id == config.router_id:
        raise NotificationError(
            ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER, b"", "internal peer uses our BGP identifier"
        )


def negotiate(config: SessionConfig, mine: Open, peer: Open) -> Negotiated:
    hold = min(mine.hold_time, peer.hold_time)
    keepalive = float(config.keepalive) if config.keepalive is not None else hold / 3
    keepalive = min(keepalive, hold / 3) if hold else 0.0
    families = mine.families() & peer.families()
    four = mine.four_octet_as and peer.four_octet_as
    return Negotiated(
        local_open=mine,
        peer_open=peer,
        hold_time=hold,
        keepalive=keepalive,
        families=families,
        route_refresh=peer.capability(RouteRefresh) is not None,
        enhanced_route_refresh=peer.capability(EnhancedRouteRefresh) is not None,
        extended_message=mine.extended_message and peer.extended_message,
        codec=CodecContext(four_octet_as=four, ebgp=peer.asn != config.local_asn, families=families),
    )


def _router_id_int(router_id: str) -> int:
    a, b, c, d = (int(x) for x in router_id.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def collision_loser(local_router_id: str, remote_router_id: str, local_asn: int = 0, remote_asn: int = 0) -> str:
    """Which connection to close when two exist to one peer (RFC 4271 section 6.8).

    Returns "local" (close the connection we initiated) or "remote" (close the one the peer
    initiated): the connection initiated by the speaker with the higher BGP Identifier wins;
    with equal identifiers (legal on eBGP), the one with the higher AS number (RFC 6286 2.3).
    """
    local, remote = _router_id_int(local_router_id), _router_id_int(remote_router_id)
    if local == remote:
        local, remote = local_asn, remote_asn
    return "local" if local < remote else "remote"


# ---------------------------------------------------------------- the machine

# What to send if decoding a message raised something unforeseen (perf-robustness.md B.5 case 20).
_BUG_ANSWER: dict[int, tuple[int, int]] = {
    MessageType.UPDATE: (ErrorCode.UPDATE_MESSAGE, 1),
    MessageType.OPEN: (ErrorCode.OPEN_MESSAGE, 0),
    MessageType.ROUTE_REFRESH: (ErrorCode.ROUTE_REFRESH_MESSAGE, 1),
}


@dataclass
class Session:
    """One peer's state machine; see the module docstring."""

    config: SessionConfig
    state: State = State.IDLE
    negotiated: Negotiated | None = None
    connect_retry_count: int = 0
    idle_hold_count: int = 0
    auto_restart: bool = True
    """False for a manual stop: only `start()` leaves Idle then."""
    _framer: Framer = field(default_factory=Framer)
    _local_open: Open | None = None
    _peer_open: Open | None = None
    _cache: DecodeCache = field(default_factory=DecodeCache)
    _first_as_checked: bool = False

    # ---- application events

    def start(self) -> list[Action]:
        """ManualStart (RFC 4271 event 1, or 4/5 when passive)."""
        self.auto_restart = True
        if self.state is not State.IDLE:
            return []
        return self._leave_idle("start")

    def stop(self, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, data: bytes = b"") -> list[Action]:
        """ManualStop: a Cease to the peer if we have a connection, then Idle for good."""
        self.auto_restart = False
        actions: list[Action] = [StopTimer(Timer.IDLE_HOLD)]
        if self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            actions += self._send_notification(Notification(ErrorCode.CEASE, subcode, data))
        return actions + self._to_idle("stopped by the operator", restart=False)

    # ---- connection events

    def connection_made(self) -> list[Action]:
        """The TCP connection is up, whichever side opened it (events 16/17)."""
        if self.state not in (State.CONNECT, State.ACTIVE):
            return [Disconnect()]
        self._framer = Framer()
        self._cache = DecodeCache()
        self._local_open = local_open(self.config)
        actions: list[Action] = [
            StopTimer(Timer.CONNECT_RETRY),
            Send(encode_open(self._local_open)),
            StartTimer(Timer.HOLD, LARGE_HOLD_TIME),
        ]
        return actions + self._set_state(State.OPENSENT, "connection established")

    def connection_failed(self, reason: str = "connection failed") -> list[Action]:
        """The TCP connection could not be made or was lost (event 18)."""
        if self.state is State.CONNECT:
            self.connect_retry_count += 1
            return [StartTimer(Timer.CONNECT_RETRY, self._connect_retry_time())] + self._set_state(State.ACTIVE, reason)
        if self.state in (State.IDLE, State.ACTIVE):
            return []
        if self.state is State.OPENSENT:
            # RFC 4271: OpenSent on a lost connection goes back to Active and retries.
            actions: list[Action] = [
                Disconnect(),
                StopTimer(Timer.HOLD),
                StartTimer(Timer.CONNECT_RETRY, self._connect_retry_time()),
            ]
            return actions + self._set_state(State.ACTIVE, reason)
        return self._error_to_idle(reason)

    def send_blocked(self) -> list[Action]:
        """The peer stopped reading: arm the RFC 9687 send hold timer."""
        if self.state not in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            return []
        return [StartTimer(Timer.SEND_HOLD, self._send_hold_time())]

    def send_unblocked(self) -> list[Action]:
        return [StopTimer(Timer.SEND_HOLD)]

    # ---- timers

    def timer_expired(self, timer: Timer) -> list[Action]:
        if timer is Timer.IDLE_HOLD:
            if self.state is State.IDLE and self.auto_restart:
                return self._leave_idle("idle hold time over")
            return []
        if timer is Timer.CONNECT_RETRY:
            if self.state is State.CONNECT:
                self.connect_retry_count += 1
                return [Disconnect(), Connect(), StartTimer(Timer.CONNECT_RETRY, self._connect_retry_time())]
            if self.state is State.ACTIVE and not self.config.passive:
                return self._connect("connect retry")
            return []
        if timer is Timer.KEEPALIVE:
            if self.state in (State.OPENCONFIRM, State.ESTABLISHED) and self.negotiated is not None:
                return [Send(KEEPALIVE), StartTimer(Timer.KEEPALIVE, self.negotiated.keepalive)]
            return []
        if timer is Timer.HOLD:
            if self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
                return self._fail(NotificationError(ErrorCode.HOLD_TIMER_EXPIRED, 0, b"", "hold timer expired"))
            return []
        if timer is Timer.SEND_HOLD:
            if self.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
                # RFC 9687: close at once; a NOTIFICATION would only queue behind the stuck data.
                return self._error_to_idle("send hold timer expired (error code 8): the peer stopped reading")
            return []
        if timer is Timer.STABLE:
            self.idle_hold_count = 0
            self.connect_retry_count = 0
        return []

    # ---- bytes from the peer

    def data_received(self, data: bytes) -> list[Action]:
        if self.state not in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            return []
        messages, error = self._framer.feed(data)
        actions: list[Action] = []
        heard = False
        for msg_type, body in messages:
            try:
                more = self._message(msg_type, body)
            except NotificationError as exc:
                return actions + self._fail(exc)
            except Exception as exc:  # a decoder bug must end in a NOTIFICATION, never a dead reader task
                code, subcode = _BUG_ANSWER.get(msg_type, (ErrorCode.CEASE, 0))
                return actions + self._fail(NotificationError(code, subcode, b"", f"internal error: {exc!r}"))
            if more:
                actions += more
            if self.idle:
                return actions
            heard = True
        if error is not None:
            return actions + self._fail(error)
        if heard and self.negotiated is not None and self.negotiated.hold_time:
            actions.append(StartTimer(Timer.HOLD, self.negotiated.hold_time))
        return actions

    def _message(self, msg_type: int, body: bytes) -> list[Action]:
        state = self.state
        if msg_type == MessageType.UPDATE:
            if state is not State.ESTABLISHED:
                raise self._unexpected("UPDATE")
            assert self.negotiated is not None
            update = decode_update(body, self.negotiated.codec, self._cache)
            if self.config.enforce_first_as and self.negotiated.codec.ebgp and update.attributes is not None:
                self._check_first_as(update)
            if update.errors:
                return [UpdateErrors(tuple(update.errors)), Received(update)]
            return [Received(update)]
        if msg_type == MessageType.KEEPALIVE:
            if state is State.OPENCONFIRM:
                assert self.negotiated is not None
                actions: list[Action] = [StopTimer(Timer.IDLE_HOLD)]
                actions.append(StartTimer(Timer.STABLE, max(60.0, 2.0 * self.negotiated.hold_time)))
                actions += self._set_state(State.ESTABLISHED, "keepalive received")
                return actions + [SessionUp(self.negotiated)]
            if state is State.OPENSENT:
                raise self._unexpected("KEEPALIVE")
            return []
        if msg_type == MessageType.NOTIFICATION:
            note = decode_notification(body)
            return [NotificationReceived(note)] + self._error_to_idle(f"peer sent NOTIFICATION {note.describe()}")
        if msg_type == MessageType.OPEN:
            if state is not State.OPENSENT:
                raise self._unexpected("OPEN")
            return self._open_received(decode_open(body))
        if msg_type == MessageType.ROUTE_REFRESH:
            if state is not State.ESTABLISHED:
                raise self._unexpected("ROUTE-REFRESH")
            assert self.negotiated is not None
            request = decode_route_refresh(body)
            if (request.afi, request.safi) not in self.negotiated.families or request.subtype > 2:
                return []  # RFC 2918 section 4 / RFC 7313 section 5: ignore
            return [RefreshRequested(request)]
        return []

    def _check_first_as(self, update: Update) -> None:
        """RFC 4271 section 6.3: an external peer's path must start with its own AS; else withdraw."""
        assert self.negotiated is not None and update.attributes is not None
        path = update.attributes.as_path
        first = path[0][1][0] if path and path[0][1] else None
        if (update.nlri or update.mp_reach) and first != self.negotiated.peer_open.asn:
            update.errors.append(
                UpdateError(UpdateAction.TREAT_AS_WITHDRAW, 2, f"AS_PATH does not start with the peer's AS ({first})")
            )
            treat_as_withdraw(update)

    def _open_received(self, peer: Open) -> list[Action]:
        validate_open(self.config, peer)
        assert self._local_open is not None
        self._peer_open = peer
        self.negotiated = negotiate(self.config, self._local_open, peer)
        if not self.negotiated.families:
            # A session that can carry nothing is refused, as FRR refuses it (RFC 5492 section 5:
            # the data names the capabilities we needed). Accepting it would hold a session up with
            # no routes in either direction, e.g. toward a router still being configured, until
            # some unrelated reset.
            ours = [c for c in self._local_open.capabilities if isinstance(c, Multiprotocol)]
            raise NotificationError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_CAPABILITY,
                                    b"".join(map(encode_capability, ours)), "no address family in common")
        self._framer.max_length = self.negotiated.max_message_length
        actions: list[Action] = [Send(KEEPALIVE)]
        if self.negotiated.hold_time:
            actions += [
                StartTimer(Timer.HOLD, self.negotiated.hold_time),
                StartTimer(Timer.KEEPALIVE, self.negotiated.keepalive),
            ]
        else:
            actions += [StopTimer(Timer.HOLD), StopTimer(Timer.KEEPALIVE)]
        return actions + self._set_state(State.OPENCONFIRM, "OPEN received")

    @property
    def idle(self) -> bool:
        return self.state is State.IDLE

    @property
    def peer_router_id(self) -> str | None:
        return self._peer_open.router_id if self._peer_open is not None else None

    def _unexpected(self, what: str) -> NotificationError:
        subcode = {
            State.OPENSENT: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT,
            State.OPENCONFIRM: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
            State.ESTABLISHED: FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
        }.get(self.state, FsmSubcode.UNSPECIFIED)
        return NotificationError(ErrorCode.FSM, subcode, b"", f"{what} in {self.state.value}")

    # ---- transitions

    def close_collision(self) -> list[Action]:
        """This connection lost collision resolution: Cease/7 and close, no automatic restart."""
        self.auto_restart = False
        actions = self._send_notification(Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION))
        return actions + self._to_idle("connection collision resolution", restart=False)

    def fail(
        self, code: int, subcode: int, data: bytes = b"", reason: str = "", restart_after: float | None = -1.0
    ) -> list[Action]:
        """Tear the session down with a NOTIFICATION of our choosing (max-prefix, BFD down, fault injection).

        `restart_after`: -1 restarts after the usual idle hold backoff; None not at all (until
        `start()`); a number after exactly that many seconds (RFC 4486's restart timer).
        """
        if restart_after is None:
            self.auto_restart = False
        actions = self._fail(NotificationError(code, subcode, data, reason))
        if restart_after is not None and restart_after >= 0:
            actions = [a for a in actions if not (isinstance(a, StartTimer) and a.timer is Timer.IDLE_HOLD)]
            actions.append(StartTimer(Timer.IDLE_HOLD, restart_after))
        return actions

    def _fail(self, error: NotificationError) -> list[Action]:
        actions = self._send_notification(Notification(error.code, error.subcode, error.data))
        return actions + self._error_to_idle(f"sent NOTIFICATION: {error}")

    def _send_notification(self, note: Notification) -> list[Action]:
        if self.state in (State.IDLE, State.CONNECT, State.ACTIVE):
            return []
        return [Send(encode_notification(note)), NotificationSent(note)]

    def _error_to_idle(self, reason: str) -> list[Action]:
        """Error exits to Idle wait an idle hold time that doubles while the peer keeps failing."""
        return self._to_idle(reason, restart=self.auto_restart)

    def _to_idle(self, reason: str, restart: bool) -> list[Action]:
        was_established = self.state is State.ESTABLISHED
        actions: list[Action] = [Disconnect()] if self.state is not State.IDLE else []
        actions += [StopTimer(t) for t in (Timer.CONNECT_RETRY, Timer.HOLD, Timer.KEEPALIVE, Timer.SEND_HOLD)]
        actions.append(StopTimer(Timer.STABLE))
        if restart:
            delay = min(self.config.idle_hold * (1 << min(self.idle_hold_count, 16)), self.config.idle_hold_max)
            self.idle_hold_count += 1
            actions.append(StartTimer(Timer.IDLE_HOLD, delay))
        actions += self._set_state(State.IDLE, reason)
        if was_established:
            actions.append(SessionDown(reason))
        self.negotiated = None
        self._peer_open = None
        self._cache = DecodeCache()
        return actions

    def _leave_idle(self, reason: str) -> list[Action]:
        if self.config.passive:
            return self._set_state(State.ACTIVE, reason)
        return self._connect(reason)

    def _connect(self, reason: str) -> list[Action]:
        actions: list[Action] = [Connect(), StartTimer(Timer.CONNECT_RETRY, self._connect_retry_time())]
        return actions + self._set_state(State.CONNECT, reason)

    def _set_state(self, new: State, reason: str) -> list[Action]:
        old, self.state = self.state, new
        return [StateChanged(old, new, reason)] if old is not new else []

    def _connect_retry_time(self) -> float:
        """The configured time after the first failure, doubling with each further one, capped."""
        exp = min(max(self.connect_retry_count - 1, 0), 16)
        return min(self.config.connect_retry * (1 << exp), self.config.connect_retry_max)

    def _send_hold_time(self) -> float:
        if self.config.send_hold_time is not None:
            return self.config.send_hold_time
        hold = self.negotiated.hold_time if self.negotiated is not None else self.config.hold_time
        return max(480.0, 2.0 * hold)
