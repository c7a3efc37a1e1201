"""The site's own emails (confirmations, "already subscribed" notes), sent one at a time by a
background thread of `newsletter serve`, with retries."""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from newsletter import render
from newsletter.config import Settings
from newsletter.dispatch.mail import site_message
from newsletter.dispatch.transport import SmtpTransport, smtp_password
from newsletter.links import envelope_sender
from newsletter.selection import Filter

log = logging.getLogger("newsletter.web")  # the name `serve` has always logged under


class _Stop:
    """What the mailer thread's queue hands out when it is closing and empty."""


_STOP = _Stop()
Compose = Callable[[], "tuple[str, bytes] | None"]
"""Work for the mailer thread: build an email (reading and writing the store as needed) and return
its recipient and bytes, or None when there is nothing to send."""


@dataclass
class _Email:
    """An email ready to send, and how many times it was tried."""

    recipient: str
    message: bytes
    attempt: int


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    work: Compose | _Email = field(compare=False)


class Mailer:
    """Does the site's email work (confirmations) one job at a time on a background thread.

    A job starts JOB_DELAY after it was queued, and the subscribe page queues it only once its
    response is handed to the server, so the response takes the same time whatever the job is (a
    new address costs a write to the store, a known one only a read). An email the SMTP server did
    not take is tried again after each of RETRY_DELAYS (about three quarters of an hour in all);
    ``failing`` tells the pages to say so. ``housekeeping`` (removing stale pending subscribers)
    runs at start and every HOUSEKEEPING_SECONDS.
    """

    DRAIN_SECONDS = 20.0
    """How long ``close`` waits for the queued emails, well within systemd's default stop timeout (90 s)."""
    JOB_DELAY = 0.025
    """Long enough for the response to leave before its job competes with it for the interpreter."""
    RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0, 1800.0)
    MAX_QUEUED = 10_000
    """Beyond this many jobs waiting, new requests are refused (try later) rather than held in memory."""
    HOUSEKEEPING_SECONDS = 3600.0

    def __init__(self, settings: Settings, housekeeping: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self._housekeeping = housekeeping
        self._queue: list[_Queued] = []  # a heap, by due time
        self._seq = 0
        self._outstanding = 0  # submitted, not yet delivered or given up
        self._abandoned_at_close = 0
        self._closing = False
        self._failing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="newsletter-mailer", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        """Whether the last email tried was not taken by the SMTP server."""
        return self._failing

    def has_room(self) -> bool:
        return not self._closing and self._outstanding < self.MAX_QUEUED

    def submit(self, recipient: str, message: bytes) -> bool:
        """Queue a ready email; False when the queue is full."""
        return self.submit_job(lambda: (recipient, message), delay=0.0)

    def submit_job(self, compose: Compose, delay: float = JOB_DELAY) -> bool:
        """Queue ``compose`` to run on the mailer thread in ``delay`` seconds; False when the queue is full."""
        with self._wake:
            if not self.has_room():
                return False
            self._outstanding += 1
            self._push(compose, delay)
        return True

    def _push(self, work: Compose | _Email, delay: float) -> None:
        """Called with ``_wake`` held."""
        self._seq += 1
        heapq.heappush(self._queue, _Queued(time.monotonic() + delay, self._seq, work))
        self._wake.notify()

    def _run(self) -> None:
        next_housekeeping = time.monotonic() if self._housekeeping is not None else math.inf
        while True:
            if time.monotonic() >= next_housekeeping and not self._closing:
                assert self._housekeeping is not None
                self._safely(self._housekeeping, "housekeeping")
                next_housekeeping = time.monotonic() + self.HOUSEKEEPING_SECONDS
            work = self._next(next_housekeeping)
            if isinstance(work, _Stop):
                return
            if isinstance(work, _Email):
                self._attempt(work)
            elif work is not None:
                composed = self._safely(work, "preparing a site email")
                if composed is None:
                    self._finish()
                else:
                    recipient, message = composed
                    self._attempt(_Email(recipient, message, attempt=0))

    def _next(self, wake_at: float) -> Compose | _Email | _Stop | None:
        """The next work that is due (all of it at once when closing); None when it is time for
        housekeeping; _STOP when closing and nothing is left."""
        with self._wake:
            while True:
                now = time.monotonic()
                if self._queue and (self._closing or self._queue[0].due <= now):
                    return heapq.heappop(self._queue).work
                if self._closing:
                    return _STOP
                if now >= wake_at:
                    return None
                until = min(wake_at, self._queue[0].due if self._queue else math.inf)
                self._wake.wait(None if until == math.inf else until - now)

    def _attempt(self, email: _Email) -> None:
        transport = None
        try:
            transport = SmtpTransport(self.settings.smtp, smtp_password(self.settings.smtp))
            transport.send(envelope_sender(self.settings), email.recipient, email.message)
        except Exception as exc:  # one failed email must not stop the thread that sends the next
            self._failing = True
            self._retry_later(email, exc)
            return
        finally:
            if transport is not None:
                transport.close()
        self._failing = False
        self._finish()

    def _retry_later(self, email: _Email, error: Exception) -> None:
        with self._wake:
            if self._closing or email.attempt >= len(self.RETRY_DELAYS):
                log.error("could not send the site email to %s (attempt %d, giving up): %s", email.recipient,
                          email.attempt + 1, error)
                if self._closing:
                    self._abandoned_at_close += 1
                self._outstanding -= 1
                return
            delay = self.RETRY_DELAYS[email.attempt]
            log.warning("could not send the site email to %s (attempt %d): %s; trying again in %.0f s",
                        email.recipient, email.attempt + 1, error, delay)
            self._push(replace(email, attempt=email.attempt + 1), delay)

    def _finish(self) -> None:
        with self._wake:
            self._outstanding -= 1

    @staticmethod
    def _safely(work: Callable[[], Any], what: str) -> Any:
        try:
            return work()
        except Exception:  # logged on one line; the thread goes on with the next job
            log.exception("%s failed", what)
            return None

    def close(self, timeout: float = DRAIN_SECONDS) -> int:
        """Send what is queued (retries at once, one last time), waiting at most ``timeout`` seconds;
        returns how many emails were left unsent."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        with self._wake:
            unsent = self._outstanding + self._abandoned_at_close
        if unsent:
            log.warning("stopped with %d confirmation email(s) unsent; those subscribers can use the form again",
                        unsent)
        return unsent


def confirmation_email(settings: Settings, recipient: str, link: str, wanted: Filter, sent_at: dt.datetime) -> bytes:
    """The email that asks a new reader to confirm, by ``link``, that they want ``wanted``."""
    title = settings.site.title
    body = render.render_page("web/confirm_email.txt", site_title=title, link=link,
                              filter_description=wanted.describe())
    return site_message(settings, recipient, f"Confirm your subscription to {title}", body, sent_at)


def already_subscribed_email(settings: Settings, recipient: str, link: str, sent_at: dt.datetime) -> bytes:
    """The note to an active subscriber who asked again: their preferences ``link`` instead of a confirmation."""
    title = settings.site.title
    body = render.render_page("web/already_subscribed_email.txt", site_title=title, link=link)
    return site_message(settings, recipient, f"You are already subscribed to {title}", body, sent_at)
