"""A sender worker: delivers the due messages of every open edition, on as many machines as you like.

Each pass takes over the rows of dead senders (expired leases, and at once those of a process on this
machine that is gone), then runs the one delivery loop (delivery.DeliveryLoop) over any day's rows that
have a stored rendition: small leased batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), each message
built from its rendition, marked sent after the 250, refusals handled as for `newsletter send`. A
worker holds no plan and at most ``CLAIM_BATCH`` rows and ``RENDITION_CACHE`` templates per
connection, so its memory does not grow with the number of subscribers.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from newsletter.clock import utc_now
from newsletter.config import Settings
from newsletter.dispatch.delivery import DeliveryLoop, DeliveryReport, MessageOutcome, StoredMessages
from newsletter.dispatch.transport import Transport
from newsletter.errors import DeliveryError
from newsletter.links import envelope_sender
from newsletter.store import Store

IDLE_POLL_SECONDS = 5.0
"""How often an idle worker looks for newly planned editions."""
PAUSED_RETRY_SECONDS = 60.0
"""How long a worker waits after a pause (its own or another sender's) before it tries the relay again."""


class Worker:
    """``run()`` until ``stop()`` (from any thread: it finishes the message in flight), or, with
    ``exit_when_idle``, until a pass sends nothing (nothing is due, or what is due was refused
    ``max_attempts`` times in it) or pauses."""

    def __init__(self, settings: Settings, store: Store, exit_when_idle: bool = False,
                 transport_factory: Callable[[], Transport] | None = None,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.settings = settings
        self.store = store
        self.exit_when_idle = exit_when_idle
        self.transport_factory = transport_factory
        self.clock = clock
        self.messages = StoredMessages(store, settings, clock)
        self.total = DeliveryReport(clock().date())
        self._stopped = threading.Event()
        self._loop: DeliveryLoop | None = None
        self._lock = threading.Lock()

    def run(self, on_message: Callable[[MessageOutcome], None] | None = None) -> DeliveryReport:
        """Deliver until stopped; the counts over every pass (``paused``: the last pause, with
        ``exit_when_idle``)."""
        while not self._stopped.is_set():
            report = self._pass(on_message)
            self._add(report)
            if report.paused is not None:
                if self.exit_when_idle:
                    self.total.paused = report.paused
                    break
                self._stopped.wait(PAUSED_RETRY_SECONDS)
            elif self.exit_when_idle and not report.sent:
                break
            elif not report.due:
                self._stopped.wait(IDLE_POLL_SECONDS)
        return self.total

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            loop = self._loop
        if loop is not None:
            loop.stop()

    def _pass(self, on_message: Callable[[MessageOutcome], None] | None) -> DeliveryReport:
        """One run of the delivery loop over what is due now; ``due`` counts the rows it claimed."""
        report = DeliveryReport(self.clock().date())
        loop = DeliveryLoop(self.store, self.settings.smtp, envelope_sender(self.settings), self.messages, None,
                            report, self.transport_factory, self.clock)
        loop.take_over_dead(self.clock())
        with self._lock:
            self._loop = loop
        if self._stopped.is_set():
            return report
        try:
            loop.run(on_message=on_message)
        except DeliveryError as exc:  # the SMTP password's variable is unset, and the like
            report.paused = exc
        finally:
            with self._lock:
                self._loop = None
        report.due = report.sent + report.failed + report.bounced + report.unknown + report.retried \
            + report.deferred + report.cancelled
        return report

    def _add(self, report: DeliveryReport) -> None:
        for name in ("due", "sent", "retried", "deferred", "failed", "bounced", "cancelled", "unknown"):
            setattr(self.total, name, getattr(self.total, name) + getattr(report, name))
        self.total.problems.extend(report.problems[-100:])
        del self.total.problems[:-100]  # a worker runs for months: keep the last problems only

