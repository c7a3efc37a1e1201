"""Deliver a day's plan exactly once per edition and subscriber, through crashes, reruns and a moody server.

The delivery log (store/deliveries.py) holds one row per (edition, subscriber), each referencing its
rendition's message template, stored once (``StoredMessages`` builds any row's message from these).
A send of a day (``DeliveryRun``) and a sender worker (dispatch/worker.py, any day's rows) run the
same loop (``DeliveryLoop``). A send:

1. stores the plan's renditions and adds the rows the plan needs (idempotent);
2. takes over every row whose lease ran out, whoever held it (a send killed in another pid
   namespace, on another host or before a reboot cannot be checked, only outlived), and at once
   the rows of a send that died on this machine (same boot and pid namespace, its pid is gone);
   then cancels unsent rows whose subscriber left the plan;
3. claims small batches with a lease (fresh rows first, due retries last), sends each message,
   and records the outcome: a refusal at once, "sent" only after the 250 and before the next
   message's content goes out (while the server reads the next MAIL FROM). A crash can therefore
   repeat at most one message per connection, the one in flight or just accepted, under the same
   Message-ID;
4. sorts refusals: 4xx -> retry with backoff and jitter (``max_attempts`` in this run, the rest next
   run); 5.1.x on the recipient -> the subscriber is marked bounced, unless such replies come in a
   wave over many domains (a relay's broken recipient table), which pauses instead; 5.7.x at RCPT
   TO -> that recipient failed; other 5xx -> failed, the run goes on; 5.7.x elsewhere, a refused
   sender or login, no connection at all, or ``pause_after_failures`` refusals in a row that are
   about the server rather than one mailbox -> the run pauses with a DeliveryError, and nobody is
   unsubscribed for it;
5. a message the server took without answering (a timeout after the final dot) is sent once more,
   later; if that one goes unanswered too, its row is left "unknown" for the operator.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from newsletter.clock import utc_now
from newsletter.config import Settings, SmtpSettings
from newsletter.dispatch import mail
from newsletter.dispatch.plan import Plan
from newsletter.dispatch.relay_limits import RelayLimits
from newsletter.dispatch.transport import (
    ConnectError,
    ConnectionLost,
    OutcomeUnknown,
    Reply,
    SmtpReplyError,
    SmtpStage,
    SmtpTransport,
    Transport,
    smtp_password,
)
from newsletter.errors import DeliveryError
from newsletter.models import Subscriber
from newsletter.store import SentMark, Store
from newsletter.store.deliveries import Claimed, OpenWork

CLAIM_BATCH = 20
"""Rows leased per claim at most: few enough that a crash strands little, enough to keep claims cheap."""
BATCH_SECONDS = 0.5
"""How long a connection's batch should last: against a slow server (a distant provider answers in a
tenth of a second) fewer rows than CLAIM_BATCH, so that when the due rows run out no connection is
left with seconds of messages while the others idle (bench/scale.py), and a crash strands fewer."""
BOUNCE_WAVE_DOMAINS = 3
"""``pause_after_failures`` unknown-user replies in a row spanning this many domains are taken for a
relay whose recipient table broke, not for that many dead mailboxes."""


@dataclass
class DeliveryReport:
    date: dt.date
    planned: int = 0
    due: int = 0
    """Rows this run set out to send (pending, due retries, and rows taken over from dead sends)."""
    already_sent: int = 0
    sent: int = 0
    retried: int = 0
    """Temporary refusals (4xx, dropped connections) that were retried."""
    deferred: int = 0
    """Messages still refused after ``max_attempts`` in this run; the next run tries them again."""
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    unknown: int = 0
    """Messages the server took twice without answering: they may have arrived; not sent again."""
    leased_elsewhere: int = 0
    """Rows another send holds; it delivers them, or the first send after its lease runs out does."""
    expired_elsewhere: int = 0
    """Of those, rows whose lease had run out when this run ended: their send may be gone."""
    leased_until: dt.datetime | None = None
    lease_holders: tuple[str, ...] = ()
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(address, reply) for each failed, bounced, deferred or unknown message."""
    paused: DeliveryError | None = None

    @property
    def ok(self) -> bool:
        return (self.paused is None and not self.failed and not self.deferred and not self.unknown
                and not self.expired_elsewhere)

    def note_leases(self, work: OpenWork) -> None:
        self.leased_elsewhere, self.expired_elsewhere = work.leased_elsewhere, work.expired_elsewhere
        self.leased_until, self.lease_holders = work.leased_until, work.lease_owners

    def as_dict(self) -> dict[str, object]:
        """What `newsletter send --json` prints."""
        return {
            "date": self.date.isoformat(), "ok": self.ok, "planned": self.planned, "due": self.due,
            "already_sent": self.already_sent, "sent": self.sent, "retried": self.retried,
            "deferred": self.deferred, "failed": self.failed, "bounced": self.bounced,
            "cancelled": self.cancelled, "unknown": self.unknown, "leased_elsewhere": self.leased_elsewhere,
            "expired_elsewhere": self.expired_elsewhere,
            "leased_until": self.leased_until.isoformat() if self.leased_until else None,
            "problems": [{"email": e, "reply": r} for e, r in self.problems],
            "paused": str(self.paused) if self.paused else None,
        }


def _read_id(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def machine_identity() -> str:
    """What makes a pid on this machine mean one process: the kernel's boot id (a pid of an earlier
    boot is not the same process) and the pid namespace (a container's pids are its own), else the
    machine id. Host names are not enough: two machines or containers may share one. Empty when
    none can be read; owners then never count as local and wait for their lease to run out."""
    machine = _read_id("/proc/sys/kernel/random/boot_id") or _read_id("/etc/machine-id") \
        or _read_id("/var/lib/dbus/machine-id")
    if not machine:
        return ""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return machine
    return f"{machine}:{namespace.removeprefix('pid:[').removesuffix(']')}"


LOCAL_MACHINE = machine_identity()


@dataclass(frozen=True)
class Owner:
    """Who holds a lease, as written to lease_owner: ``host/machine/pid/random``. The host name is
    there for people reading `status`; ``machine`` (see machine_identity) decides whether the pid
    can be checked here."""

    host: str
    machine: str
    pid: int
    nonce: str

    @classmethod
    def here(cls) -> Owner:
        return cls(socket.gethostname()[:100], LOCAL_MACHINE, os.getpid(), secrets.token_hex(4))

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """None for anything not in our format (e.g. written by an older version)."""
        parts = text.split("/")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def __str__(self) -> str:
        return f"{self.host}/{self.machine}/{self.pid}/{self.nonce}"


def describe_owner(owner: str) -> str:
    """A lease owner as people know it: ``host, pid N``."""
    parsed = Owner.parse(owner)
    return f"{parsed.host}, pid {parsed.pid}" if parsed else owner


def make_owner() -> str:
    """Identifies this send in lease_owner; see Owner."""
    return str(Owner.here())


def owner_is_dead(owner: str, local_machine: str = LOCAL_MACHINE) -> bool:
    """True only when ``owner`` is a send on this very machine (same boot and pid namespace) whose
    process no longer exists. Anything else keeps its lease until the lease runs out."""
    parsed = Owner.parse(owner)
    if parsed is None or not local_machine or parsed.machine != local_machine or parsed.pid == os.getpid():
        return False
    try:
        os.kill(parsed.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


Action = Literal["retry", "bounce", "fail", "pause"]
"""A refusal's verdict: retry this message later, mark the address bounced, give up on this message, or
pause the run (the fault is ours or the server's, so the next message would meet it too)."""
RefusalStage = SmtpStage | Literal["CONNECT"]
"""Where a message was refused: an SMTP command, or the connection before any."""
MessageOutcome = Literal["sent", "deferred", "failed", "bounced", "unknown"]
"""How this run finished with one message (see DeliveryReport for the counts)."""


@dataclass(frozen=True)
class Verdict:
    action: Action
    hint: str = ""


_POLICY_HINT = ("the server refused on policy grounds (5.7.x): check that your account may send as [email] from "
                "and relay to outside addresses, the sending domain's SPF/DKIM/DMARC records, and whether the "
                "provider has blocked or rate-limited the account. No subscriber was unsubscribed.")
_AUTH_HINT = "check smtp.username, the password in the variable smtp.password_env names, and smtp.security"
_SENDER_HINT = "the server refuses the sender address: check [email] from and smtp.envelope_from"
_CONNECT_HINT = ("check smtp.host, smtp.port and smtp.security, and that the server is up and reachable from here; "
                 "then run `newsletter send` again: it continues where this run stopped")
_RELAY = re.compile(r"\brelay", re.IGNORECASE)
"""A 5.7.x at RCPT TO about relaying ("Relay access denied") refuses our account, not one recipient."""


def classify(reply: Reply, stage: SmtpStage) -> Verdict:
    """What a refusal means for this message and for the run."""
    code, enhanced = reply.code, reply.enhanced or ""
    if 400 <= code < 500:
        return Verdict("retry")
    if code in (530, 534, 535, 538):
        return Verdict("pause", _AUTH_HINT)
    if enhanced.startswith("5.7."):
        if stage == "RCPT TO" and not _RELAY.search(reply.text):
            return Verdict("fail")  # this recipient refused on policy ("Recipient address rejected")
        return Verdict("pause", _POLICY_HINT)
    if stage == "MAIL FROM" or enhanced in ("5.1.7", "5.1.8"):
        return Verdict("pause", _SENDER_HINT)
    if enhanced.startswith("5.1."):
        return Verdict("bounce")
    return Verdict("fail")


def about_the_server(reply: Reply, stage: SmtpStage) -> bool:
    """Whether a temporary or unclassified refusal would meet the next message too (the connection,
    the server or the sender), so that a run of them should pause the run. A reply at RCPT TO is
    about that mailbox (full, greylisted, ...) unless it closes the connection (421) or its enhanced
    code speaks of the mail system, the network or the protocol (x.3, x.4, x.5); 451 without one is
    "local error in processing"."""
    if stage != "RCPT TO" or reply.code == 421:
        return True
    if reply.enhanced:
        return reply.enhanced.split(".")[1] in ("3", "4", "5")
    return reply.code == 451


_jitter = random.Random()
MAX_JITTER_SECONDS = 1.0


def retry_delay(smtp: SmtpSettings, attempt: int) -> float:
    """Seconds before retrying after the ``attempt``-th refusal in this run: exponential backoff plus
    a random part (up to half of it, at most MAX_JITTER_SECONDS), so that messages refused together
    come back spread out among the others rather than all at one instant."""
    delay = smtp.retry_delay * smtp.retry_backoff ** (attempt - 1)
    return delay + _jitter.uniform(0.0, min(delay / 2, MAX_JITTER_SECONDS))


class _SentMarks:
    """Holds the "sent" mark of the last accepted message until the transport has sent the next
    MAIL FROM, then commits it while the server reads that command: the commit costs no round trip
    and needs no thread. It is committed before any content of the next message goes out, so at
    most one accepted message per connection is ever unrecorded: the one just accepted. A look at
    the relay's limits before the next message takes it along (``lent``) in the same round trip, as
    does taking a rate-limit slot (so its lease cannot lapse during the wait); a reconnect commits
    it at once. The thread's own connection (``connection``, in autocommit) serves them all."""

    def __init__(self, store: Store) -> None:
        self._pending: SentMark | None = None
        self.connection = store.sender_connection()

    def add(self, delivery_id: int, reply: str, now: dt.datetime) -> None:
        self.commit()
        self._pending = SentMark(delivery_id, reply, now)

    @contextmanager
    def lent(self) -> Iterator[Callable[[], SentMark | None]]:
        """``take`` for a statement that may commit the mark along with its own work: it hands over the
        mark still to commit, if any. Should the block fail, that mark is pending again, as after a
        failed ``commit``, and tried again at ``close``."""
        taken: list[SentMark] = []

        def take() -> SentMark | None:
            pending, self._pending = self._pending, None
            taken.extend([pending] if pending is not None else [])
            return pending

        try:
            yield take
        except BaseException:
            self._pending = self._pending or (taken[0] if taken else None)
            raise

    def commit(self) -> None:
        if self._pending is not None:
            self.connection.mark_sent(self._pending)
            self._pending = None

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.connection.close()


class _PausedElsewhere(Exception):
    """Another send paused the relay: raised out of Transport.send's ``meanwhile``, before any content."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(error.message)
        self.error = error


def _domains(rows: Sequence[tuple[Claimed, str]]) -> set[str]:
    return {claimed.email.rpartition("@")[2].lower() for claimed, _ in rows}


class _HeldBounces:
    """Unknown-user replies (5.1.x at RCPT TO) held back, their rows still leased, until a later
    message is accepted: one dead mailbox is a bounce, but a run of them over many domains is a relay
    whose recipient table broke, and must not mark everyone bounced."""

    def __init__(self, wave: int) -> None:
        self._wave = wave
        self._held: list[tuple[Claimed, str]] = []
        self._lock = threading.Lock()

    def add(self, claimed: Claimed, reply: str) -> list[tuple[Claimed, str]]:
        """Hold one; returns (and lets go of) everything held when that now makes a wave."""
        with self._lock:
            self._held.append((claimed, reply))
            if len(self._held) < self._wave or len(_domains(self._held)) < BOUNCE_WAVE_DOMAINS:
                return []
            wave, self._held = self._held, []
        return wave

    def take(self) -> list[tuple[Claimed, str]]:
        with self._lock:
            held, self._held = self._held, []
        return held

    def ids(self) -> list[int]:
        with self._lock:
            return [c.id for c, _ in self._held]


@dataclass
class _Batch:
    """The rows one connection holds, leased until ``lease_until``, and their subscribers."""

    lease_until: dt.datetime
    rows: list[Claimed] = field(default_factory=list)
    subscribers: dict[int, Subscriber] = field(default_factory=dict)
    claimed: int = 0
    claimed_at: float = 0.0
    """How many rows the last claim leased, and when (time.monotonic)."""

    def next_size(self) -> int:
        """Rows to claim next: as many as the connection went through in BATCH_SECONDS last time."""
        spent = time.monotonic() - self.claimed_at
        if not self.claimed or spent <= 0:
            return CLAIM_BATCH
        return max(1, min(CLAIM_BATCH, int(BATCH_SECONDS * self.claimed / spent)))

    def hold(self, rows: list[Claimed], subscribers: dict[int, Subscriber], lease_until: dt.datetime) -> None:
        self.rows, self.subscribers, self.lease_until = rows, subscribers, lease_until
        self.claimed, self.claimed_at = len(rows), time.monotonic()


RENDITION_CACHE = 64
"""Templates a sender keeps in memory (at most Gmail's clip size, 102 KB, each): an edition has a few
hundred renditions at most, and a worker goes through the due rows in id order, which plans wrote
one edition after another."""


class StoredMessages:
    """Builds any delivery's message from the database: its stored rendition (see store_renditions),
    its subscriber as stored now, its Message-ID and followed-authors note. What `send` and `worker`
    share, so that a message is the same whichever process sends it."""

    def __init__(self, store: Store, settings: Settings, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.store = store
        self.settings = settings
        self._date_header = mail.DateHeader(clock)
        self._templates: OrderedDict[int, mail.MessageTemplate] = OrderedDict()
        self._lock = threading.Lock()

    def seed(self, templates: dict[int, mail.MessageTemplate]) -> None:
        """Templates the caller has already (a send's own plan), so that it need not read them back."""
        with self._lock:
            for rendition_id, template in list(templates.items())[-RENDITION_CACHE:]:
                self._templates[rendition_id] = template

    def subscribers(self, batch: Sequence[Claimed]) -> dict[int, Subscriber]:
        return self.store.subscribers_by_id({c.subscriber_id for c in batch})

    def build(self, claimed: Claimed, subscribers: dict[int, Subscriber]) -> bytes | str | None:
        """The message; a reason to cancel the row when its subscriber left (unsubscribed, bounced,
        removed) after it was planned; None when it has no stored rendition."""
        if claimed.rendition_id is None:
            return None
        subscriber = subscribers.get(claimed.subscriber_id)
        if subscriber is None or subscriber.status != "active":
            state = "removed" if subscriber is None else subscriber.status
            return f"the subscriber is {state} since the edition was planned"
        template = self._template(claimed.rendition_id)
        if template is None:
            return None
        return template.message_bytes(self.settings, subscriber, claimed.message_id, self._date_header(),
                                      claimed.followed_note)

    def _template(self, rendition_id: int) -> mail.MessageTemplate | None:
        with self._lock:
            template = self._templates.get(rendition_id)
            if template is not None:
                self._templates.move_to_end(rendition_id)
                return template
        stored = self.store.rendition_template(rendition_id)
        if stored is None:
            return None
        template = mail.MessageTemplate.from_json(stored)
        with self._lock:
            self._templates[rendition_id] = template
            while len(self._templates) > RENDITION_CACHE:
                self._templates.popitem(last=False)
        return template


class DeliveryLoop:
    """Claims due rows, sends each message and records its outcome, on ``smtp.connections``
    connections: the one delivery loop, which a day's send (DeliveryRun) and a worker share.
    ``day``: the rows of that day only; None: any day's rows with a stored rendition (a worker)."""

    def __init__(self, store: Store, smtp: SmtpSettings, envelope_from: str, messages: StoredMessages,
                 day: dt.date | None, report: DeliveryReport,
                 transport_factory: Callable[[], Transport] | None = None,
                 clock: Callable[[], dt.datetime] = utc_now, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.smtp = smtp
        self.envelope_from = envelope_from
        self.messages = messages
        self.day = day
        if transport_factory is None:
            password = smtp_password(smtp)
            transport_factory = lambda: SmtpTransport(smtp, password)  # noqa: E731
        self.transport_factory = transport_factory
        self.clock = clock
        self.owner = make_owner()
        self.report = report
        self._lease = dt.timedelta(seconds=smtp.lease_seconds)
        self._relay = RelayLimits(store, smtp, clock, sleep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._run_attempts: dict[int, int] = {}
        self._excluded: set[int] = set()
        """Rows this run will not claim again: retries exhausted here, or not buildable by this run."""
        self._held = _HeldBounces(smtp.pause_after_failures)
        self._on_message: Callable[[MessageOutcome], None] = lambda _outcome: None

    def take_over_dead(self, now: dt.datetime) -> None:
        """Give back the rows whose lease ran out, whoever held them, and at once those of a send that
        died on this machine."""
        self.store.release_expired(self.day, now)
        for owner in self.store.lease_owners(self.day):
            if owner_is_dead(owner):
                self.store.release_deliveries(owner, now, date=self.day)

    def run(self, on_message: Callable[[MessageOutcome], None] | None = None) -> DeliveryReport:
        """Send until nothing is due. ``on_message(outcome)`` is called once per message this run
        finishes with (sent, failed, bounced, deferred), from one thread at a time."""
        if on_message is not None:
            self._on_message = on_message
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                self._work()
            except BaseException as exc:  # re-raised in the calling thread
                errors.append(exc)
                self._stop.set()

        try:
            if self.smtp.connections == 1:
                self._work()
            else:
                threads = [threading.Thread(target=worker, name=f"smtp-{i}", daemon=True)
                           for i in range(self.smtp.connections)]
                for thread in threads:
                    thread.start()
                try:
                    for thread in threads:
                        while thread.is_alive():
                            thread.join(0.2)
                except BaseException:
                    self._stop.set()
                    for thread in threads:
                        thread.join()
                    raise
        finally:
            # Held unknown-user replies stand when the run went through; after a pause or a stop
            # they are asked again by the next run rather than bouncing anyone on doubtful grounds.
            self._settle_bounces(confirmed=not self._stop.is_set() and not errors)
            self.store.release_deliveries(self.owner, self.clock(), date=self.day)
        if errors:
            raise errors[0]
        self.report.note_leases(self.store.open_work(self.day, self.owner, now=self.clock()))
        return self.report

    def stop(self) -> None:
        """Finish the messages in flight and return from ``run``; what is unsent stays due for the next run.
        Safe to call from another thread (a scheduler shutting down)."""
        self._stop.set()

    # -- one connection's loop --------------------------------------------------------------

    def _work(self) -> None:
        transport = self.transport_factory()
        marks = _SentMarks(self.store)
        batch = _Batch(lease_until=self.clock())
        try:
            while not self._stop.is_set():
                if not batch.rows:
                    marks.commit()  # what follows reads the log
                    if not self._claim(batch) and not self._wait_for_retries():
                        return
                    continue
                now = self.clock()
                if batch.lease_until - now < self._lease / 2:  # renew before a slow server lets it lapse
                    batch.lease_until = now + self._lease
                    held = self.store.renew_leases(self.owner, [c.id for c in batch.rows] + self._held.ids(), now,
                                                   batch.lease_until)
                    batch.rows = [c for c in batch.rows if c.id in held]
                    continue
                claimed = batch.rows.pop(0)
                # Built here, not ahead on another thread: a message takes a tenth of a millisecond to
                # build, less than handing it between threads cost (bench/send.py measured both).
                message = self._build(claimed, batch.subscribers)
                if isinstance(message, str):
                    self._cancel(claimed, message)
                elif message is None:  # planned before renditions were stored, by a plan not ours
                    with self._lock:
                        self._excluded.add(claimed.id)
                    self.store.release_deliveries(self.owner, self.clock(), ids=[claimed.id])
                else:
                    claim_ahead = None if batch.rows else lambda: self._claim_ahead(batch)
                    self._deliver(transport, marks, claimed, message, claim_ahead)
        finally:
            marks.close()
            if batch.rows:
                self.store.release_deliveries(self.owner, self.clock(), ids=[c.id for c in batch.rows])
            transport.close()

    def _claim(self, batch: _Batch) -> bool:
        """Lease the next rows into ``batch`` (left as it was should this fail); False when none is due."""
        now = self.clock()
        lease_until = now + self._lease
        with self._lock:
            excluded = set(self._excluded)
        rows = self.store.claim_deliveries(self.day, self.owner, now, lease_until, batch.next_size(), excluded)
        batch.hold(rows, self.messages.subscribers(rows), lease_until)
        return bool(rows)

    def _claim_ahead(self, batch: _Batch) -> None:
        """Claim the next rows while the server answers the batch's last message: a distant server's
        answer takes a tenth of a second, longer than the claim. It must not raise (the reply is yet
        to be read): should the claim fail, the loop claims again before the next message, and that
        failure stops it. Rows leased by a claim that failed halfway go back when the run ends."""
        try:
            self._claim(batch)
        except Exception:  # the batch stays empty: the loop claims again, and reports what fails
            return

    def _build(self, claimed: Claimed, subscribers: dict[int, Subscriber]) -> bytes | str | None:
        return self.messages.build(claimed, subscribers)

    def _cancel(self, claimed: Claimed, reason: str) -> None:
        if self.store.cancel_claimed(claimed.id, self.owner, reason, self.clock()):
            with self._lock:
                self.report.cancelled += 1
                self._excluded.add(claimed.id)

    def _wait_for_retries(self) -> bool:
        """Sleep until the earliest retry this run may still make; False when there is none."""
        with self._lock:
            excluded = set(self._excluded)
        next_retry = self.store.open_work(self.day, self.owner, excluded).next_retry_at
        if next_retry is None:
            return False
        self._stop.wait(max(0.0, (next_retry - self.clock()).total_seconds()))
        return True

    def _deliver(self, transport: Transport, marks: _SentMarks, claimed: Claimed, message: bytes,
                 awaiting: Callable[[], None] | None = None) -> None:
        """Send one message and record its outcome; ``awaiting``: see Transport.send."""
        if self._relay.interval:  # the slot first: waiting for it after MAIL FROM would keep the server waiting
            with marks.lent() as take_mark:
                paused_elsewhere = self._relay.before_send(marks.connection, take_mark)
            if paused_elsewhere is not None:
                self._pause(claimed, paused_elsewhere, record=False)
                return
        try:
            reply = self._send(transport, marks, claimed, message, awaiting)
        except _PausedElsewhere as exc:
            marks.commit()
            self._pause(claimed, exc.error, record=False)
            return
        except SmtpReplyError as exc:
            marks.commit()
            self._refused(claimed, exc.reply, exc.stage)
            return
        except OutcomeUnknown as exc:
            marks.commit()
            self._unknown(claimed, str(exc))
            return
        except ConnectionLost as exc:
            marks.commit()
            self._refused(claimed, Reply(0, str(exc)), "CONNECT")
            return
        except ConnectError as exc:  # nothing will go out until the server can be reached
            marks.commit()
            server = exc.server or "the SMTP server"
            self._pause(claimed, DeliveryError(f"sending paused: could not connect to {server}: {exc.reason}",
                                               _CONNECT_HINT))
            return
        except DeliveryError as exc:  # the login was refused: nothing will go out until fixed
            marks.commit()
            self._pause(claimed, exc)
            return
        marks.add(claimed.id, str(reply), self.clock())
        self._settle_bounces(confirmed=True)  # the server delivers to others: those mailboxes are dead
        self._relay.sent()
        with self._lock:
            self.report.sent += 1
            self._on_message("sent")

    def _send(self, transport: Transport, marks: _SentMarks, claimed: Claimed, message: bytes,
              awaiting: Callable[[], None] | None) -> Reply:
        def before_content() -> None:
            self._before_content(marks)

        try:
            return transport.send(self.envelope_from, claimed.email, message, meanwhile=before_content,
                                  awaiting=awaiting)
        except OutcomeUnknown:
            raise  # the server may have kept it: see _unknown
        except ConnectionLost:
            # The server never had the whole message, so it kept none: reconnect and send it again.
            with self._lock:
                self.report.retried += 1
            return transport.send(self.envelope_from, claimed.email, message, meanwhile=before_content,
                                  awaiting=awaiting)

    def _before_content(self, marks: _SentMarks) -> None:
        """Runs once MAIL FROM is out, while the server reads it (see Transport.send): commits the last
        message's mark, together with the look at the relay's pause when one is due (no rate limit:
        the slot was taken before), in one round trip. Raises _PausedElsewhere to stop this message
        before its content goes out."""
        if not self._relay.interval:
            with marks.lent() as take_mark:
                paused_elsewhere = self._relay.before_send(marks.connection, take_mark)
            if paused_elsewhere is not None:
                raise _PausedElsewhere(paused_elsewhere)
        marks.commit()

    def _refused(self, claimed: Claimed, reply: Reply, stage: RefusalStage) -> None:
        verdict = Verdict("retry") if stage == "CONNECT" else classify(reply, stage)
        text = f"{stage}: {reply}" if stage != "CONNECT" else str(reply.text)
        if verdict.action == "pause":
            self._pause(claimed, DeliveryError(f"sending paused: the server answered {text} for {claimed.email}",
                                               verdict.hint))
            return
        if verdict.action == "bounce":
            self._hold_bounce(claimed, text)
            return
        if verdict.action == "retry":
            self._retry(claimed, text)
        else:
            self._record_final(claimed, "failed", text)
        if stage == "CONNECT" or about_the_server(reply, stage):
            self._count_in_a_row(text)

    def _unknown(self, claimed: Claimed, text: str) -> None:
        """The server took the message and never answered. Once, it is sent again later (the first
        copy may well be lost); the second time the row is left "unknown": never a third copy."""
        if claimed.unknown_outcomes:
            self._record_final(claimed, "unknown", text, outcome_unknown=True)
        else:
            self._retry(claimed, text, outcome_unknown=True)
        self._count_in_a_row(text)

    def _retry(self, claimed: Claimed, text: str, outcome_unknown: bool = False) -> None:
        now = self.clock()
        with self._lock:
            attempts = self._run_attempts[claimed.id] = self._run_attempts.get(claimed.id, 0) + 1
        later = now + dt.timedelta(seconds=retry_delay(self.smtp, attempts))
        if not self.store.mark_unsent(claimed.id, self.owner, "retry", text, now, later, outcome_unknown):
            return  # our lease lapsed and another send took the row over; it reports it
        if attempts >= self.smtp.max_attempts:
            self._count(claimed, "deferred", text)
            return
        with self._lock:
            self.report.retried += 1

    def _record_final(self, claimed: Claimed, outcome: Literal["failed", "bounced", "unknown"], text: str,
                      outcome_unknown: bool = False) -> None:
        if not self.store.mark_unsent(claimed.id, self.owner, outcome, text, self.clock(),
                                      outcome_unknown=outcome_unknown):
            return
        if outcome == "bounced":
            self.store.set_subscriber_status(claimed.subscriber_id, "bounced")
        self._count(claimed, outcome, text)

    def _count(self, claimed: Claimed, outcome: Literal["deferred", "failed", "bounced", "unknown"],
               text: str) -> None:
        with self._lock:
            self._excluded.add(claimed.id)
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            self.report.problems.append((claimed.email, text))
            self._on_message(outcome)

    def _count_in_a_row(self, text: str) -> None:
        in_a_row = self._relay.refused()  # about the server or the sender (see about_the_server), by any send
        if in_a_row >= self.smtp.pause_after_failures:
            self._stop_with(DeliveryError(
                f"sending paused: {in_a_row} messages in a row were not accepted (last: {text})",
                "check the server's logs, limits and smtp settings, then run `newsletter send` again; "
                "it continues where this run stopped. No subscriber was unsubscribed."))

    def _hold_bounce(self, claimed: Claimed, text: str) -> None:
        wave = self._held.add(claimed, text)
        if not wave:
            return
        now = self.clock()
        for held, reply in wave:  # asked again by the next run
            self.store.mark_unsent(held.id, self.owner, "retry", reply, now, now)
        self._stop_with(DeliveryError(
            f"sending paused: {len(wave)} addresses in a row on {len(_domains(wave))} domains were refused as unknown "
            f"(last: {text}); that looks like the server's recipient checks failing, not dead mailboxes, "
            "so nobody was marked bounced",
            "check the relay's recipient table and logs; the next `newsletter send` asks for these addresses "
            "again. `newsletter subscribers update EMAIL --reactivate` undoes a bounce recorded wrongly."))

    def _settle_bounces(self, confirmed: bool) -> None:
        held = self._held.take()
        if not held:
            return
        now = self.clock()
        for claimed, text in held:
            if confirmed:
                self._record_final(claimed, "bounced", text)
            else:
                self.store.mark_unsent(claimed.id, self.owner, "retry", text, now, now)

    def _pause(self, claimed: Claimed, error: DeliveryError, record: bool = True) -> None:
        # The message itself is not at fault: give it back untouched for the next run.
        self.store.release_deliveries(self.owner, self.clock(), ids=[claimed.id])
        self._stop_with(error, record)

    def _stop_with(self, error: DeliveryError, record: bool = True) -> None:
        """Pause this run; ``record``: and the other sends to this relay (not when they paused first)."""
        with self._lock:
            first = self.report.paused is None
            if first:
                self.report.paused = error
        self._stop.set()
        if first and record:
            self._relay.paused(error)



class DeliveryRun(DeliveryLoop):
    """One send of one day's plan. ``prepare()`` stores its renditions, writes the rows and returns how
    many are due; ``run()`` sends them and returns the report (``report.paused`` set when it had to stop)."""

    def __init__(self, store: Store, plan: Plan, smtp: SmtpSettings, envelope_from: str,
                 transport_factory: Callable[[], Transport] | None = None,
                 clock: Callable[[], dt.datetime] = utc_now, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(store, smtp, envelope_from, StoredMessages(store, plan.settings, clock), plan.date,
                         DeliveryReport(plan.date, planned=len(plan.messages)), transport_factory, clock, sleep)
        self.plan = plan
        self._planned = {(m.edition.key, m.subscriber.id): m for m in plan.messages}

    def prepare(self) -> int:
        date, now = self.plan.date, self.clock()
        renditions = self.plan.renditions
        ids = self.store.store_renditions(date, {key: r.template.to_json() for key, r in renditions.items()}, now)
        self.messages.seed({ids[key]: r.template for key, r in renditions.items()})
        self.store.create_deliveries(self.plan.messages, now, ids,
                                     lambda m: renditions[m.rendition_key].followed_note(m.followed))
        # Release before cancelling: a dead send's row is "sending", which cancelling skips, so a
        # reader who left the plan since the crash would otherwise come back as a pending row that
        # no run sends and no run cancels. Expired leases go back whoever held them, also when
        # nothing else is due.
        self.take_over_dead(now)
        in_plan = {(key, sid) for key, sid in self._planned if sid is not None}
        self.report.cancelled = self.store.cancel_deliveries(
            date, in_plan, "not in the day's plan any more (unsubscribed, bounced or nothing selected)", now)
        counts = self.store.delivery_counts([date]).get(date, {})
        self.report.already_sent = counts.get("sent", 0)
        self.report.due = counts.get("pending", 0) + counts.get("retry", 0)
        self.report.note_leases(self.store.open_work(date, self.owner, now=now))
        return self.report.due


    def _build(self, claimed: Claimed, subscribers: dict[int, Subscriber]) -> bytes | str | None:
        if claimed.rendition_id is None:  # a row from before renditions were stored: from the plan
            planned = self._planned.get((claimed.edition, claimed.subscriber_id))
            return None if planned is None else self.plan.message_bytes(planned)
        return super()._build(claimed, subscribers)


def summary_line(report: DeliveryReport, dated: bool = True) -> str:
    """``DATE: sent N, retried N, failed N, bounced N`` and what else happened; a run that found
    nothing due says so (``nothing to send, 5 sent by earlier runs``) rather than ``sent 0, ...``."""
    parts = [f"sent {report.sent}", f"retried {report.retried}", f"failed {report.failed}",
             f"bounced {report.bounced}"]
    extra: Sequence[tuple[int, str]] = (
        (report.deferred, "left for the next run"), (report.unknown, "with an unknown outcome (not sent again)"),
        (report.cancelled, "cancelled"), (report.already_sent, "sent by earlier runs"),
    )
    if not report.due and not report.sent:
        parts = ["nothing to send"]
    held = leases_statement(report)
    return (f"{report.date}: " if dated else "") + ", ".join(parts + [f"{n} {label}" for n, label in extra if n]) \
        + (f"; {held}" if held else "")


def leases_statement(report: DeliveryReport) -> str:
    """What became of the rows another send holds, and what to do about them; empty when none."""
    if not report.leased_elsewhere:
        return ""
    holders = "; ".join(describe_owner(owner) for owner in report.lease_holders[:3])
    held = f"{report.leased_elsewhere} are held by another send ({holders})"
    if report.expired_elsewhere:
        return (f"{held}, {report.expired_elsewhere} of them past their lease: that send may have died; "
                "run `newsletter send` again to take them over")
    until = f"{report.leased_until:%Y-%m-%d %H:%M:%S} UTC" if report.leased_until else "its lease runs out"
    return f"{held} until {until}; if it has stopped, the first `newsletter send` after that takes them over"
