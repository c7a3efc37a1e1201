"""A real aiosmtpd server that records what it accepted, with scripted faults, and a real store
with a tiny digest so that tests send the real planner's messages (``DeliveryProject.plan``)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from newsletter.config import EmailSettings, Settings, SmtpSettings, StoreSettings
from newsletter.dispatch.delivery import DeliveryRun
from newsletter.dispatch.plan import Plan, build_plan
from newsletter.ingest import ingest_files
from newsletter.models import Subscriber
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
    reply_delay: float = 0.0
    """Seconds to wait, after taking a message, before answering the final dot: a server slower
    than the client's timeout keeps a message whose sender never hears so."""
    hold_at: int | None = None
    """The ``hold_at``-th message is kept but its reply held back until ``release`` is set: a sender
    killed then has exactly one message in flight that the server already queued."""
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    accepted: list[tuple[str, str]] = field(default_factory=list)
    rcpt_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    data_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.lock:
            seen = self.rcpt_seen[address]
            self.rcpt_seen[address] += 1
        answer = self.rcpt_fault(address, seen) if self.rcpt_fault else None
        if answer == "drop":  # the connection dies before any content was sent
            server.transport.close()
            return "421 4.4.2 connection dropped"
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
            hold = len(self.accepted) == self.hold_at
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        if hold:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.005)
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


TINY_DIGEST = (
    "## Papers for {date}\n\n"
    "| Title | Authors | Summary |\n"
    "|-------|---------|---------|\n"
    "| Leases That Outlive Their Holders (Read more on [arXiv](https://arxiv.org/abs/2503.01001) or "
    "[HuggingFace](https://huggingface.co/papers/2503.01001))| Test Author | A short paper written for the "
    "delivery tests: one row, one rendition, a small message. |\n"
)
"""Our own one-paper digest: every subscriber without filters shares one rendition, so plans are cheap."""


@dataclass
class DeliveryProject:
    """A real store with a tiny digest ingested; ``plan`` is the real planner's plan for a day."""

    settings: Settings
    store: Store

    def plan(self, date: dt.date, subscribers: list[Subscriber] | None = None) -> Plan:
        return build_plan(self.settings, self.store, date, subscribers=subscribers)


@contextmanager
def delivery_project(folder: Path, date: dt.date, store_url: str | None = None) -> Iterator[DeliveryProject]:
    """``store_url``: the store (a PostgreSQL database, say); by default an SQLite file in ``folder``."""
    digest = folder / f"{date.isoformat()}.md"
    digest.write_text(TINY_DIGEST.format(date=date.isoformat()), encoding="utf-8")
    url = store_url or f"sqlite:///{folder / 'test.db'}"
    settings = Settings(path=folder / "config.toml", store=StoreSettings(url=url),
                        email=EmailSettings(sender=f"Test Papers <{SENDER}>"))
    with Store.from_settings(settings) as store:
        report = ingest_files(settings, store, [digest])
        assert not report.warnings, report.warnings
        yield DeliveryProject(settings, store)


def deliver(project: DeliveryProject, date: dt.date, port: int, **smtp: Any) -> DeliveryRun:
    """One real delivery run of ``date``'s plan to 127.0.0.1:``port``; the run (with its report) when done."""
    run = DeliveryRun(project.store, project.plan(date), smtp_settings(port, **smtp), SENDER)
    run.prepare()
    run.run()
    return run
