"""A real aiosmtpd server that records what it accepted, with scripted faults, and small plans to send.

The plan factory builds its messages with the stdlib email package so that the delivery tests do
not depend on the renderer; they exercise the delivery log and the transport, not the content.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from aiosmtpd.controller import Controller

from newsletter.config import SmtpSettings
from newsletter.models import PlannedMessage, Subscriber
from newsletter.store import Store

SENDER = "papers@example.org"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

Fault = Callable[[str, int], str | None]
"""(recipient, how many times this stage was reached for them before) -> a reply to answer instead, or
"drop" to close the connection, or None to go on."""


@dataclass
class Recorder:
    """aiosmtpd handler: counts, per recipient, the messages it accepted with a 250 and their Message-IDs."""

    rcpt_fault: Fault | None = None
    data_fault: Fault | None = None
    accepted: list[tuple[str, str]] = field(default_factory=list)
    rcpt_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    data_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.lock:
            seen = self.rcpt_seen[address]
            self.rcpt_seen[address] += 1
        answer = self.rcpt_fault(address, seen) if self.rcpt_fault else None
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        (recipient,) = envelope.rcpt_tos
        with self.lock:
            seen = self.data_seen[recipient]
            self.data_seen[recipient] += 1
        answer = self.data_fault(recipient, seen) if self.data_fault else None
        if answer == "drop":  # the message arrived but the connection dies before the reply
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if answer is not None:
            return answer
        match = _MESSAGE_ID.search(envelope.content)
        with self.lock:
            self.accepted.append((recipient, match.group(1).decode() if match else ""))
        return "250 2.0.0 Ok: queued"

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def per_recipient(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(r for r, _ in self.accepted)

    def message_ids(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = collections.defaultdict(set)
        with self.lock:
            for recipient, message_id in self.accepted:
                found[recipient].add(message_id)
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(handler: Any, **kwargs: Any) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def smtp_settings(port: int, **overrides: Any) -> SmtpSettings:
    """Settings for a test server: short delays so that retries take milliseconds."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "timeout": 5.0, "retry_delay": 0.02,
                              "lease_seconds": 30.0}
    values.update(overrides)
    return SmtpSettings(**values)


def add_subscribers(store: Store, count: int, domain: str = "example.com") -> list[Subscriber]:
    stored = store.upsert_subscribers([Subscriber(email=f"reader{i:05d}@{domain}") for i in range(count)])
    return [sub for sub, _changed in stored]


@dataclass
class TestPlan:
    """What ``DeliveryRun`` needs from a plan, with one small stdlib-built message per subscriber."""

    date: dt.date
    messages: list[PlannedMessage]
    body_size: int = 200

    __test__ = False  # not a pytest class

    def message_bytes(self, planned: PlannedMessage) -> bytes:
        msg = EmailMessage()
        msg["From"] = f"Daily AI Papers <{SENDER}>"
        msg["To"] = planned.subscriber.email
        msg["Subject"] = f"AI papers for {planned.date}"
        msg["Message-ID"] = planned.message_id
        msg.set_content(("Papers of the day. " * (self.body_size // 19 + 1))[: self.body_size])
        return msg.as_bytes(policy=SMTP)


def plan_for(store: Store, date: dt.date, body_size: int = 200) -> TestPlan:
    """A plan for every active subscriber, with a Message-ID fixed per (day, subscriber) as the real planner's."""
    return TestPlan(date, [
        PlannedMessage(date=date, subscriber=sub, papers=(), rendition_key="all",
                       message_id=f"<{date.isoformat()}.{sub.id}@test.example.org>")
        for sub in store.subscribers(status="active")
    ], body_size)
