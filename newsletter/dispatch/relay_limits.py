"""A send's view of the limits it shares with every other send to the same relay (store/limits.py).

``[smtp] rate_limit`` holds across all processes and machines: each message takes the next send slot
from the store and waits for it. Refusals in a row are counted in the store, so ``pause_after_failures``
counts them whichever send met them; and when one send pauses (a 5.7.x reply, a refused login, no
connection, too many refusals in a row), the sends that were running then stop before their next
message (without a rate limit, within ``CHECK_EVERY``: reading the store before every message
would cost a fifth of the throughput, bench/send.py). A send started after the pause tries again, as a
rerun of a paused send always has.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from newsletter.clock import Clock
from newsletter.config import SmtpSettings
from newsletter.errors import DeliveryError
from newsletter.store import SenderConnection, SentMark, Store

CHECK_EVERY = 0.05
"""Seconds between looks at the relay's pause and refusal count when no rate limit makes one per message."""


class RelayLimits:
    def __init__(self, store: Store, smtp: SmtpSettings, clock: Clock,
                 sleep: Callable[[float], None] = time.sleep, wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.relay = smtp.relay
        self.interval = 1.0 / smtp.rate_limit if smtp.rate_limit > 0 else 0.0
        self.clock = clock
        self.started_at = clock()
        self._sleep = sleep
        self._wall = wall
        self._refusals_seen = 0
        self._checked_at = float("-inf")
        self._earlier_pause = False
        """Whether the relay's last look showed a pause from before this send started: its first
        accepted message ends it."""

    def before_send(self, connection: SenderConnection | None = None,
                    take_mark: Callable[[], SentMark | None] = lambda: None) -> DeliveryError | None:
        """Wait for this message's send slot. The pause another send recorded since this one started, if any.
        ``connection``: the sending thread's own, else one from the pool. ``take_mark`` hands over the
        "sent" mark of the message before, if still to commit, when this goes to the store: it is
        committed in the same round trip, and before any wait for the slot."""
        now = self._wall()
        store = connection or self.store
        if self.interval:
            state = store.take_send_slot(self.relay, self.interval, now, sent=take_mark())
        elif now - self._checked_at < CHECK_EVERY:
            return None
        else:
            state = store.relay_state(self.relay, now, sent=take_mark())
        self._checked_at = now
        self._refusals_seen = state.refused_in_a_row
        self._earlier_pause = state.paused_at is not None and state.paused_at < self.started_at
        if state.paused_at is not None and state.paused_at >= self.started_at:
            return DeliveryError(
                f"sending paused: another send to {self.relay} paused at {state.paused_at:%H:%M:%S} UTC: "
                f"{state.pause_reason}",
                "see that send's message (its log, or `newsletter status`); once fixed, run `newsletter send` "
                "again: it continues where the sends stopped")
        wait = state.slot_at - self._wall()
        if wait > 0:
            self._sleep(wait)
        return None

    def sent(self) -> None:
        if self._earlier_pause:
            self.store.end_relay_pause(self.relay, self.started_at)
            self._earlier_pause = False
        if self._refusals_seen:
            self.store.reset_refusals(self.relay)
            self._refusals_seen = 0

    def refused(self) -> int:
        """Count a refusal about the server; the refusals in a row now, counted over every send."""
        # Noted here too, so that the next success starts the count again even before the next look.
        self._refusals_seen = self.store.count_refusal(self.relay)
        return self._refusals_seen

    def paused(self, error: DeliveryError) -> None:
        self.store.pause_relay(self.relay, self.clock(), error.message.removeprefix("sending paused: "))
