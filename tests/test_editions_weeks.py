"""Four weeks of editions, simulated day by day: real SQLite, real aiosmtpd, the publish pipeline on a fake
clock, and one send killed with SIGKILL in the middle of a Monday's weekly editions.

Readers: daily; weekly on Monday; weekly on Thursday; following an author only (alerts); daily and
following the author (marked, no alert); weekly and following the author (alert, then left out of the
weekly); and one who switches from daily to weekly on a Wednesday. A paper is listed on three days
(twice on the first, by two sources) and the followed author's paper on two.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import re
import signal
from collections import Counter
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import row, run, write_day
from newsletter.config import Settings
from newsletter.publish import Publisher
from newsletter.store import Store
from newsletter.store.schema import deliveries
from schedule_helpers import make_site, newsletter_process
from smtp_helpers import Recorder, smtp_server

pytestmark = pytest.mark.usefixtures("store_backend")

START = dt.date(2026, 11, 2)  # a Monday
DAYS = 28
REPEATED = "2611.99001"  # listed on days 3, 4 and 5, and by two sources on day 3
BY_JANE = "2611.99002"  # by the followed author, listed on days 9 and 10
SWITCH_AFTER = 17  # the switcher becomes a weekly (Monday) reader after day 17's send, a Wednesday
KILLED_ON = 22  # a Monday: the send of that day is killed in the middle


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def own(n: int) -> set[str]:
    """The papers first listed on day n (plus the repeated and the followed author's, on their first day)."""
    return {f"2611.{n:02d}001", f"2611.{n:02d}002"} | ({REPEATED} if n == 3 else set()) | (
        {BY_JANE} if n == 9 else set())


def days(first: int, last: int) -> set[str]:
    return set().union(*(own(n) for n in range(first, last + 1)))


class Keeper(Recorder):
    """Also keeps each message it takes (it refuses none), to read its papers: kept before the reply, as a
    server queues a message before answering, so one whose sender died waiting for the reply counts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return await super().handle_DATA(server, session, envelope)


def write_digests(settings: Settings, n: int) -> None:
    folder = settings.resolve("digests")
    rows = [row(f"2611.{n:02d}00{i}", f"Paper {i} of day {n}", f"Study number {i} of day {n}.") for i in (1, 2)]
    if n in (3, 4, 5):
        rows.append(row(REPEATED, "A paper listed three days", "It keeps coming back."))
    if n in (9, 10):
        rows.append(row(BY_JANE, "Jane's paper", "Work by a followed author.",
                        authors="Jane Doe, C. Author" if n == 9 else "Jane Doé, C. Author"))
    write_day(folder, f"{day(n)}.md", day(n).isoformat(), rows)
    if n == 3:  # a second source lists the repeated paper the same day
        write_day(folder, f"{day(n)}-other.md", day(n).isoformat(),
                  [row(REPEATED, "A paper listed three days", "It keeps coming back.")])


def add_readers(settings: Settings) -> None:
    config = settings.path
    for address, *options in (
        ("daily@example.com",),
        ("mon@example.com", "--cadence", "weekly", "--weekday", "mon"),
        ("thu@example.com", "--cadence", "weekly", "--weekday", "thu"),
        ("follower@example.com", "--keyword", "zzzz", "--author", "Doe, Jane"),
        ("fan@example.com", "--author", "jane doe"),
        ("weekfan@example.com", "--cadence", "weekly", "--author", "JANE DOE"),
        ("switcher@example.com",),
    ):
        result = run(config, "subscribers", "add", address, *options)
        assert result.exit_code == 0, result.output


def expected() -> dict[tuple[str, str], set[str]]:
    """(reader, edition key) -> the papers of that message, worked out by hand from the rules."""
    want: dict[tuple[str, str], set[str]] = {}
    for n in range(1, DAYS + 1):
        daily = f"daily/{day(n)}"
        want["daily@example.com", daily] = want["fan@example.com", daily] = own(n)
        if n <= SWITCH_AFTER:
            want["switcher@example.com", daily] = own(n)
    # A new weekly reader's first edition covers the last seven days: only day 1 was listed by then.
    first_week = f"weekly/{day(1) - dt.timedelta(days=6)}..{day(1)}"
    want["mon@example.com", first_week] = want["weekfan@example.com", first_week] = days(1, 1)
    for first, last in ((2, 8), (9, 15), (16, 22)):
        want["mon@example.com", f"weekly/{day(first)}..{day(last)}"] = days(first, last)
    for first, last in ((2, 8), (9, 15), (16, 22)):
        want["weekfan@example.com", f"weekly/{day(first)}..{day(last)}"] = days(first, last) - {BY_JANE}
    want["weekfan@example.com", f"alert/{BY_JANE}"] = {BY_JANE}
    want["follower@example.com", f"alert/{BY_JANE}"] = {BY_JANE}
    want["thu@example.com", f"weekly/{day(4) - dt.timedelta(days=6)}..{day(4)}"] = days(1, 4)
    for first, last in ((5, 11), (12, 18), (19, 25)):
        want["thu@example.com", f"weekly/{day(first)}..{day(last)}"] = days(first, last)
    want["switcher@example.com", f"weekly/{day(SWITCH_AFTER + 1)}..{day(KILLED_ON)}"] = days(SWITCH_AFTER + 1,
                                                                                             KILLED_ON)
    return want


def text_of(message: Message) -> str:
    text = next(part for part in message.walk() if part.get_content_type() == "text/plain")
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def papers_in(message: Message) -> list[str]:
    return list(dict.fromkeys(re.findall(r"arxiv\.org/abs/([0-9.]+)", text_of(message))))


def test_four_weeks_of_daily_weekly_and_alert_editions(tmp_path: Path) -> None:
    handler = Keeper()
    with smtp_server(handler) as server:
        # One category: a weekly email groups papers by category, and the order within one is what is checked.
        settings = make_site(tmp_path, server.port, subscribers=0, schedule='timezone = "UTC"',
                             sections='[categories]\nfallback = "Papers"\n[categories.taxonomy]\nPapers = ["paper"]')
        add_readers(settings)
        now = [dt.datetime.combine(START, dt.time(8), dt.UTC)]
        publisher = Publisher(settings, clock=lambda: now[0])
        for n in range(1, DAYS + 1):
            now[0] = dt.datetime.combine(day(n), dt.time(8), dt.UTC)
            write_digests(settings, n)
            if n == KILLED_ON:
                kill_the_send_in_flight(settings, publisher, handler, n)
            result = publisher.publish(day(n), stages=("ingest", "send"))
            assert result.ok, (n, result.summary())
            if n == SWITCH_AFTER:
                switched = run(settings.path, "subscribers", "update", "switcher@example.com", "--cadence", "weekly")
                assert "now weekly on mon" in switched.output
        with Store.from_settings(settings) as store, store.engine.connect() as conn:
            edition_of = dict(conn.execute(select(deliveries.c.message_id, deliveries.c.edition)).all())
            states = Counter(conn.execute(select(deliveries.c.state)).scalars())
    assert states == {"sent": len(expected())}

    received: Counter[tuple[str, str]] = Counter()
    for message in handler.messages:
        key = (message["To"].split("<")[-1].rstrip(">"), edition_of[message["Message-ID"]])
        received[key] += 1
        assert set(papers_in(message)) == expected()[key], key
        if key[1].startswith("alert/"):
            assert "Jane" in message["Subject"] and "Jane's paper" in message["Subject"]
            footer = "You get papers in your categories, and this alert because you follow Jane Doe."
            assert footer in " ".join(text_of(message).split())
        if key == ("mon@example.com", f"weekly/{day(2)}..{day(8)}"):
            assert papers_in(message)[0] == REPEATED  # listed four times: the most-listed comes first
        if key == ("fan@example.com", f"daily/{day(9)}"):
            number = papers_in(message).index(BY_JANE) + 1
            assert f"You follow Jane Doe, who wrote no. {number} below, “Jane's paper”." in text_of(message)
        elif key[0] == "fan@example.com":
            assert "You follow" not in text_of(message)
    assert set(received) == set(expected())
    repeats = {key: n for key, n in received.items() if n > 1}
    # The killed send repeats only the message that was in flight (the server had queued it), a weekly
    # edition, under the same Message-ID (its key is read from the Message-ID).
    assert list(repeats.values()) == [2] and next(iter(repeats))[1].startswith("weekly/"), repeats


def kill_the_send_in_flight(settings: Settings, publisher: Publisher, handler: Keeper, n: int) -> None:
    """Ingest day n, start its send as a process and kill it (SIGKILL) while the server holds the reply to
    its fourth message (weekfan's weekly edition), which it has queued: the next send finds that row
    leased by a dead process."""
    assert publisher.publish(day(n), stages=("ingest",)).ok
    before = handler.count()
    handler.hold_at = before + 4
    process = newsletter_process(settings, "send", "--date", day(n).isoformat())
    try:
        assert handler.held.wait(60), process.communicate(timeout=5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        handler.release.set()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_weekday_without_a_digest_sends_its_weekly_editions_at_the_deadline(tmp_path: Path) -> None:
    handler = Keeper()
    with smtp_server(handler) as server:
        settings = make_site(tmp_path, server.port, subscribers=0,
                             schedule='timezone = "UTC"\npublish = "0 8 * * *"\ndeadline = "14:00"')
        add_readers(settings)
        now = [dt.datetime.combine(day(2), dt.time(8), dt.UTC)]
        publisher = Publisher(settings, clock=lambda: now[0])
        for n in (2, 3):  # a Tuesday and a Wednesday; nothing on Monday day 8
            now[0] = dt.datetime.combine(day(n), dt.time(8), dt.UTC)
            write_digests(settings, n)
            assert publisher.publish(day(n), stages=("ingest", "send")).ok
        sent_before = handler.count()
        now[0] = dt.datetime.combine(day(8), dt.time(8), dt.UTC)
        waiting = publisher.publish(day(8), stages=("ingest", "send"))
        assert waiting.outcome == "waiting" and handler.count() == sent_before
        now[0] = dt.datetime.combine(day(8), dt.time(14), dt.UTC)
        late = publisher.publish(day(8), stages=("ingest", "send"))
        assert late.outcome == "sent", late.summary()
        status = run(settings.path, "status", "--date", day(8).isoformat())
    weekly = {message["To"]: set(papers_in(message)) for message in handler.messages[sent_before:]}
    # Monday readers new to digests get the last seven days: days 2 and 3 here; nobody gets a daily edition.
    assert weekly == {"mon@example.com": days(2, 3), "weekfan@example.com": days(2, 3)}
    assert f"weekly/{day(2)}..{day(8)}  2 sent" in status.output
    assert "no issue" not in status.output


def test_switching_to_weekly_on_the_weekday_after_the_daily_went_out_repeats_nothing(tmp_path: Path) -> None:
    handler = Keeper()
    with smtp_server(handler) as server:
        # One category: a weekly email groups papers by category, and the order within one is what is checked.
        settings = make_site(tmp_path, server.port, subscribers=0, schedule='timezone = "UTC"',
                             sections='[categories]\nfallback = "Papers"\n[categories.taxonomy]\nPapers = ["paper"]')
        assert run(settings.path, "subscribers", "add", "switcher@example.com").exit_code == 0
        now = [dt.datetime.combine(day(1), dt.time(8), dt.UTC)]
        publisher = Publisher(settings, clock=lambda: now[0])
        write_digests(settings, 1)
        assert publisher.publish(day(1), stages=("ingest", "send")).ok
        assert run(settings.path, "subscribers", "update", "switcher@example.com", "--cadence", "weekly").exit_code == 0
        again = publisher.publish(day(1), stages=("ingest", "send"))  # a recheck of the same Monday
        assert again.ok, again.summary()
        dry = run(settings.path, "send", "--dry-run", "--date", day(1).isoformat())
        for n in range(2, 9):
            now[0] = dt.datetime.combine(day(n), dt.time(8), dt.UTC)
            write_digests(settings, n)
            assert publisher.publish(day(n), stages=("ingest", "send")).ok
    assert "switched to weekly after today's daily edition went out" in dry.output
    got = [set(papers_in(message)) for message in handler.messages]
    assert got == [own(1), days(2, 8)]  # Monday's daily, then the next Monday's weekly from Tuesday on
