"""One BFD session in asynchronous mode (RFC 5880 sections 6.2 and 6.8), sans-IO.

A `Session` is fed events (a Control packet arrived, a timer fired, the operator changed
something) and answers each with actions (send these bytes, arm or stop a timer, the state
changed). It never reads a clock, never draws a random number of its own (the jitter source
is a parameter) and never touches a socket, so the whole protocol, timing included, is tested
with a fake clock; the asyncio edge (`endpoint.py`) only carries actions out.

Two timers: TX (the next periodic Control packet) and DETECT (the Detection Time since the
last valid packet). Intervals are microseconds inside, as on the wire; timer actions carry
seconds, which is what the event loop wants.

Choices where the RFC leaves room:
- a packet goes out at once on every state change (and the periodic schedule restarts from
  it), so a handshake or a Down does not wait for the slow 1 s timer (FRR's bfdd does too);
- LocalDiag is cleared when the session comes Up (as FRR);
- in AdminDown we keep sending AdminDown at the slow rate, where FRR sends one packet and
  falls silent: a peer that missed that one packet, or restarted, still learns that the
  session is down on purpose and not by failure (RFC 5882 section 3.2).
A Poll Sequence rides on the periodic packets only (section 6.5: "additional packets MUST NOT
be sent"); the packet sent on entering Up is the one exception, as it restarts the schedule.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from bgplab.bgp.bfd.packet import MAX_U32, ControlPacket, Diag, State, encode

SLOW_TX_US = 1_000_000
"""Section 6.8.3: bfd.DesiredMinTxInterval while the session is not Up."""
INITIAL_REMOTE_MIN_RX_US = 1
"""Section 6.8.1: the initial bfd.RemoteMinRxInterval."""


class Timer(Enum):
    TX = "tx"
    DETECT = "detect"


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)arm `timer` to fire `seconds` from now, replacing any pending expiry."""

    timer: Timer
    seconds: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class StateChanged:
    """bfd.SessionState changed; `diag` is the new bfd.LocalDiag.

    `remote_state` is what the peer last told us, so a client can tell a peer's AdminDown
    (RFC 5882 section 3.2: not a path failure, do not tear the client protocol down) from a
    failure.
    """

    old: State
    new: State
    diag: int
    remote_state: State
    remote_diag: int


Action = Send | StartTimer | StopTimer | StateChanged


def _check_interval(name: str, value: int, minimum: int) -> None:
    if not minimum <= value <= MAX_U32:
        raise ValueError(f"{name} {value} us: must be {minimum}..{MAX_U32}")


class Session:
    """The state variables of RFC 5880 section 6.8.1 and the procedures around them.

    `desired_min_tx` and `required_min_rx` are the configured values in microseconds; what is
    advertised and used may differ (slow rate while not Up, old values during a Poll
    Sequence): see `advertised_min_tx`, `tx_interval` and `detection_time`.
    `rng` returns floats in [0, 1) and drives the transmit jitter.
    """

    def __init__(
        self,
        local_discriminator: int,
        *,
        desired_min_tx: int = SLOW_TX_US,
        required_min_rx: int = SLOW_TX_US,
        detect_mult: int = 3,
        passive: bool = False,
        admin_down: bool = False,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < local_discriminator <= MAX_U32:
            raise ValueError("the local discriminator must be a nonzero 32-bit value")
        _check_interval("desired min TX", desired_min_tx, 1)
        _check_interval("required min RX", required_min_rx, 0)
        if not 1 <= detect_mult <= 255:
            raise ValueError(f"detect multiplier {detect_mult}: must be 1..255")
        self.local_discriminator = local_discriminator
        self.desired_min_tx = desired_min_tx
        self.required_min_rx = required_min_rx
        self.detect_mult = detect_mult
        self.passive = passive
        self.rng = rng
        self.state = State.ADMIN_DOWN if admin_down else State.DOWN
        self.local_diag: int = Diag.ADMINISTRATIVELY_DOWN if admin_down else Diag.NONE
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_diag = 0
        self.remote_min_rx = INITIAL_REMOTE_MIN_RX_US
        self.remote_desired_min_tx = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        # What the TX interval and the Detection Time are computed from; they trail the
        # configured values during a Poll Sequence (section 6.8.3).
        self._tx_in_use = self.advertised_min_tx
        self._rx_in_use = required_min_rx
        self._polling = False
        self._poll_sent = False
        self._tx_running = False
        self._tx_armed_us = 0
        self._started = False

    # ---- derived values

    @property
    def advertised_min_tx(self) -> int:
        """Desired Min TX as sent: never under one second while not Up (section 6.8.3)."""
        if self.state is State.UP:
            return self.desired_min_tx
        return max(self.desired_min_tx, SLOW_TX_US)

    @property
    def tx_interval(self) -> int:
        """The negotiated transmit interval before jitter (section 6.8.7), microseconds."""
        return max(self._tx_in_use, self.remote_min_rx)

    @property
    def detection_time(self) -> int:
        """Remote DetectMult x max(our RequiredMinRx, remote DesiredMinTx) (section 6.8.4); 0 before any packet."""
        return self.remote_detect_mult * max(self._rx_in_use, self.remote_desired_min_tx)

    @property
    def polling(self) -> bool:
        return self._polling

    @property
    def up(self) -> bool:
        return self.state is State.UP

    def jittered(self, interval_us: int) -> float:
        """Seconds to the next periodic packet: 75-100% of the interval, 75-90% with DetectMult 1."""
        spread = 0.15 if self.detect_mult == 1 else 0.25
        return interval_us * (0.75 + spread * self.rng()) / 1e6

    # ---- events

    def start(self) -> list[Action]:
        """Begin transmitting (unless passive: then only once the peer has been heard)."""
        if self._started:
            return []
        self._started = True
        return self._send_now()

    def stop(self) -> list[Action]:
        """Forget the session's timers; what to tell the peer first is the caller's choice."""
        self._started = False
        self._tx_running = False
        return [StopTimer(Timer.TX), StopTimer(Timer.DETECT)]

    def receive(self, packet: ControlPacket) -> list[Action]:
        """A Control packet that passed `packet.decode` and was demultiplexed to this session.

        Section 6.8.6 from "Set bfd.RemoteDiscr" on.
        """
        if not self._started:
            return []
        actions: list[Action] = []
        self.remote_discriminator = packet.my_discriminator
        self.remote_state = packet.state
        self.remote_diag = packet.diag
        self.remote_demand = packet.demand
        self.remote_min_rx = packet.required_min_rx
        self.remote_desired_min_tx = packet.desired_min_tx
        self.remote_detect_mult = packet.detect_mult
        if packet.final and self._polling and self._poll_sent:
            self._end_poll()
        if self.state is State.ADMIN_DOWN:
            return self._schedule_tx(actions)
        old = self.state
        if packet.state is State.ADMIN_DOWN:
            if old is not State.DOWN:
                actions += self._transition(State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN)
        elif old is State.DOWN:
            if packet.state is State.DOWN:
                actions += self._transition(State.INIT, Diag.NONE)
            elif packet.state is State.INIT:
                actions += self._transition(State.UP, Diag.NONE)
        elif old is State.INIT:
            if packet.state in (State.INIT, State.UP):
                actions += self._transition(State.UP, Diag.NONE)
        elif packet.state is State.DOWN:  # we are Up
            actions += self._transition(State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN)
        actions.append(StartTimer(Timer.DETECT, self.detection_time / 1e6))
        if packet.poll:
            # Section 6.8.7: a Final at once, whatever the schedule; it also carries a new state.
            actions.append(Send(self._packet(final=True)))
            if self.state is not old:
                actions += self._restart_tx()
        elif self.state is not old:
            actions += self._send_now()
        return self._schedule_tx(actions)

    def timer_expired(self, timer: Timer) -> list[Action]:
        if not self._started or (timer is Timer.DETECT and self.state is State.ADMIN_DOWN):
            return []
        if timer is Timer.TX:
            self._tx_running = False
            if not self._may_transmit():
                return []
            return self._send_now()
        # Detection Time passed without a valid packet (section 6.8.4; 6.8.1 on RemoteDiscr).
        actions: list[Action] = []
        if self.state in (State.INIT, State.UP):
            actions += self._transition(State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED)
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_min_rx = INITIAL_REMOTE_MIN_RX_US
        self.remote_desired_min_tx = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        if actions:
            actions += self._send_now()
        return self._schedule_tx(actions)

    def admin_down(self, diag: int = Diag.ADMINISTRATIVELY_DOWN) -> list[Action]:
        """Section 6.8.16: AdminDown, told to the peer at once and then at the slow rate."""
        if self.state is State.ADMIN_DOWN:
            return []
        actions = self._transition(State.ADMIN_DOWN, diag)
        actions.append(StopTimer(Timer.DETECT))
        if self._started:
            actions += self._send_now()
        return actions

    def admin_up(self) -> list[Action]:
        """Leave AdminDown for Down; the handshake then runs as for a new session."""
        if self.state is not State.ADMIN_DOWN:
            return []
        actions = self._transition(State.DOWN, self.local_diag)
        if self._started:
            actions += self._send_now()
        return actions

    def set_params(
        self,
        desired_min_tx: int | None = None,
        required_min_rx: int | None = None,
        detect_mult: int | None = None,
    ) -> list[Action]:
        """Change the configured intervals (microseconds) or the multiplier.

        While Up an interval change starts a Poll Sequence (section 6.8.3), and until the
        peer's Final a slower TX interval and a shorter RX requirement are not used yet: the
        peer must have heard of them first, or its detection (or ours) could fire falsely.
        The multiplier takes effect at once: the peer recomputes from every packet.
        """
        if desired_min_tx is not None:
            _check_interval("desired min TX", desired_min_tx, 1)
            self.desired_min_tx = desired_min_tx
        if required_min_rx is not None:
            _check_interval("required min RX", required_min_rx, 0)
            self.required_min_rx = required_min_rx
        if detect_mult is not None:
            if not 1 <= detect_mult <= 255:
                raise ValueError(f"detect multiplier {detect_mult}: must be 1..255")
            self.detect_mult = detect_mult
        self._apply_params()
        return self._schedule_tx([])

    # ---- internals

    def _apply_params(self) -> None:
        """Bring the in-use values towards the configured ones, as far as is safe now."""
        tx, rx = self.advertised_min_tx, self.required_min_rx
        if self.state is not State.UP:
            self._tx_in_use, self._rx_in_use = tx, rx
            self._polling = False
            return
        if (tx, rx) == (self._tx_in_use, self._rx_in_use) and not self._polling:
            return
        # Faster TX and a longer RX requirement are safe at once; the rest waits for Final.
        self._tx_in_use = min(self._tx_in_use, tx)
        self._rx_in_use = max(self._rx_in_use, rx)
        self._polling = True
        self._poll_sent = False

    def _end_poll(self) -> None:
        self._polling = False
        self._poll_sent = False
        self._tx_in_use = self.advertised_min_tx
        self._rx_in_use = self.required_min_rx

    def _transition(self, new: State, diag: int) -> list[Action]:
        old = self.state
        self.state = new
        self.local_diag = diag
        # Entering Up leaves the slow rate, an interval change, hence a Poll Sequence; leaving
        # Up ends any poll and returns to the slow rate at once.
        self._apply_params()
        return [StateChanged(old, new, diag, self.remote_state, self.remote_diag)]

    def _may_transmit(self) -> bool:
        """Section 6.8.7: never as a passive side that has not heard the peer; no periodic
        packets to a peer that asks for none (RequiredMinRx 0) or runs Demand mode with us Up."""
        if self.passive and self.remote_discriminator == 0:
            return False
        if self.remote_min_rx == 0:
            return False
        return not (self.remote_demand and self.state is State.UP and self.remote_state is State.UP)

    def _send_now(self) -> list[Action]:
        if not self._may_transmit():
            return []
        poll = self._polling
        if poll:
            self._poll_sent = True
        return [Send(self._packet(poll=poll)), *self._restart_tx()]

    def _restart_tx(self) -> list[Action]:
        if not self._may_transmit():
            return []
        self._tx_running = True
        self._tx_armed_us = self.tx_interval
        return [StartTimer(Timer.TX, self.jittered(self._tx_armed_us))]

    def _schedule_tx(self, actions: list[Action]) -> list[Action]:
        """Keep the periodic schedule in line with what may be sent and how often.

        A shorter interval re-arms the timer at once (section 6.8.3: the peer's lower
        RequiredMinRx must be honoured immediately); a longer one waits for the next expiry.
        """
        if not self._started:
            return actions
        allowed = self._may_transmit()
        if self._tx_running and not allowed:
            self._tx_running = False
            actions.append(StopTimer(Timer.TX))
        elif allowed and not self._tx_running:
            actions += self._send_now()  # a passive side heard the peer, or the peer asks again
        elif allowed and self.tx_interval < self._tx_armed_us:
            actions += self._restart_tx()
        return actions

    def _packet(self, *, poll: bool = False, final: bool = False) -> bytes:
        return encode(
            ControlPacket(
                state=self.state,
                diag=self.local_diag,
                detect_mult=self.detect_mult,
                my_discriminator=self.local_discriminator,
                your_discriminator=self.remote_discriminator,
                desired_min_tx=self.advertised_min_tx,
                required_min_rx=self.required_min_rx,
                required_min_echo_rx=0,
                poll=poll,
                final=final,
            )
        )
