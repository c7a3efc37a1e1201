"""What a send would deliver for one day: the messages, the skipped subscribers, the renditions.

Subscribers are grouped by their Filter; each distinct filter is one rendition, rendered and
inlined once and turned into a MessageTemplate once. ``Plan.message_bytes`` then produces any
subscriber's final message from it cheaply, one at a time, so a plan for 100,000 subscribers holds
50 renditions, not 100,000 messages. Building a plan reads the store and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime

from newsletter import links, render
from newsletter.clock import Clock, utc_now
from newsletter.config import Settings
from newsletter.dispatch import mail
from newsletter.errors import UsageError
from newsletter.models import Paper, PlannedMessage, SkippedRecipient, Subscriber
from newsletter.selection import Filter
from newsletter.store import Store


@dataclass
class Rendition:
    """One (day, filter) combination, rendered once and shared by every subscriber with that filter."""

    key: str
    filter: Filter
    papers: tuple[str, ...]
    """arXiv ids in the order the email lists them."""
    subject: str
    rendered: render.RenderedDigest
    template: mail.MessageTemplate
    preview_values: dict[str, str]
    placeholders: mail.Placeholders
    layout: render.Layout
    """How much of each paper it shows: [email] summary, or more compact to stay under Gmail's clip."""

    def preview_html(self) -> str:
        """The HTML part with example personal values, for the dry run's index.html."""
        return self.placeholders.fill(self.rendered.html, self.preview_values, for_html=True)


@dataclass
class Plan:
    settings: Settings
    date: dt.date
    messages: list[PlannedMessage] = field(default_factory=list)
    skipped: list[SkippedRecipient] = field(default_factory=list)
    renditions: dict[str, Rendition] = field(default_factory=dict)
    """Rendition key -> rendition, in the order they were first needed."""
    warnings: list[str] = field(default_factory=list)
    clock: Clock = utc_now
    """Stamps each message's Date header when its bytes are produced."""
    _date_second: int = field(default=-1, init=False, repr=False)
    _date_text: str = field(default="", init=False, repr=False)

    def message_bytes(self, planned: PlannedMessage) -> bytes:
        """The final message for one subscriber: RFC 5322, CRLF line ends, ready for SMTP."""
        rendition = self.renditions[planned.rendition_key]
        return rendition.template.message_bytes(self.settings, planned.subscriber, planned.message_id,
                                                self._date_header())

    def _date_header(self) -> str:
        # Formatting a date costs more than the rest of a header block; do it once per second.
        now = self.clock()
        second = int(now.timestamp())
        if second != self._date_second:
            self._date_second, self._date_text = second, format_datetime(now.replace(microsecond=0))
        return self._date_text

    def recipients_per_rendition(self) -> Counter[str]:
        """Rendition key -> how many planned messages use it."""
        return Counter(m.rendition_key for m in self.messages)

    def rendition_number(self, key: str) -> int:
        return list(self.renditions).index(key) + 1


def build_plan(settings: Settings, store: Store, date: dt.date | None = None, *,
               subscribers: list[Subscriber] | None = None, clock: Clock = utc_now) -> Plan:
    """Plan the email for ``date`` (default: the newest ingested day) to every active subscriber.

    ``subscribers`` replaces the store's active subscribers (the benchmark passes them in memory).
    """
    if date is None:
        date = store.latest_date()
        if date is None:
            raise UsageError("nothing has been ingested yet, so there is no day to send",
                             "run `newsletter ingest` first")
    day = store.get_day(date)
    if day is None:
        latest = store.latest_date()
        hint = f"the newest ingested day is {latest.isoformat()}" if latest else "run `newsletter ingest` first"
        raise UsageError(f"no digest for {date.isoformat()} in the store", hint)
    recipients = store.subscribers(status="active") if subscribers is None else subscribers
    return plan_day(settings, date, day.papers, recipients, clock=clock, note=day.note)


def plan_day(settings: Settings, date: dt.date, papers: list[Paper], recipients: list[Subscriber], *,
             clock: Clock = utc_now, note: str = "") -> Plan:
    plan = Plan(settings=settings, date=date, clock=clock)
    domain = links.sender_domain(settings)
    placeholders = mail.Placeholders()
    # Each rendition is sized for the widest personal values among its subscribers, so they are
    # grouped by filter before any rendition is built.
    filters: list[Filter | str] = []  # each recipient's filter, or why they are skipped
    members: dict[Filter, list[Subscriber]] = {}
    for subscriber in recipients:
        if not papers:
            filters.append(f"no papers on {date.isoformat()}")
        elif not subscriber.token:
            filters.append("no link token, so no unsubscribe link; re-add the subscriber")
        else:
            filt = Filter.of(subscriber)
            filters.append(filt)
            members.setdefault(filt, []).append(subscriber)
    renditions = {filt: _rendition(settings, plan, date, papers, filt, group, placeholders, note)
                  for filt, group in members.items()}
    for subscriber, chosen in zip(recipients, filters, strict=True):
        rendition = renditions[chosen] if isinstance(chosen, Filter) else None
        if rendition is None:
            reason = chosen if isinstance(chosen, str) else f"no papers match {chosen.describe()}"
            plan.skipped.append(SkippedRecipient(subscriber.email, reason))
            continue
        plan.messages.append(PlannedMessage(
            date=date, subscriber=subscriber, papers=rendition.papers, rendition_key=rendition.key,
            message_id=links.message_id(date, subscriber, domain),
        ))
    return plan


def _rendition(settings: Settings, plan: Plan, date: dt.date, papers: list[Paper], filt: Filter,
               subscribers: list[Subscriber], placeholders: mail.Placeholders, note: str = "") -> Rendition | None:
    selected = filt.select(papers)
    if not selected:
        return None
    widest = mail.widest_html_values(settings, subscribers)
    limit = settings.email.gmail_clip_kb * 1024
    requested = render.Layout(summary="full" if settings.email.summary == "full" else "short")

    def build(layout: render.Layout) -> Rendition:
        return _build_rendition(settings, date, selected, filt, placeholders, layout, fitted=layout != requested,
                                note=note)

    rendition = build(requested)
    if rendition.template.html_part_bytes_for(widest) > limit:
        rendition = _fit(build, widest, limit, requested, len(selected))
    size = rendition.template.html_part_bytes_for(widest)
    kb = settings.email.gmail_clip_kb
    if size > limit:
        plan.warnings.append(
            f"rendition {filt.key}: the HTML part is {size / 1024:.0f} KB even with every paper listed by title "
            f"only, past the {kb} KB at which Gmail clips a message; readers will see \"[Message clipped]\" and "
            "must click through for the rest"
        )
    elif rendition.layout != requested:
        title_only = len(selected) - (rendition.layout.detailed if rendition.layout.detailed is not None
                                      else len(selected))
        plan.warnings.append(
            f"rendition {filt.key}: {len(selected)} papers would pass the {kb} KB at which Gmail clips a "
            f"message, so the email shortens the summaries and lists {title_only} papers by title only "
            "(it says so, and links to the archive)"
        )
    plan.renditions[rendition.key] = rendition
    return rendition


def _fit(build: Callable[[render.Layout], Rendition], widest: dict[str, int], limit: int,
         requested: render.Layout, count: int) -> Rendition:
    """The most detailed layout under ``limit``: shorter summaries first, then the fewest papers by
    title only (a binary search over how many keep their summary); if none fits, all by title only."""
    def fits(rendition: Rendition) -> bool:
        return rendition.template.html_part_bytes_for(widest) <= limit

    for summary in render.COMPACTER[requested.summary]:
        rendition = build(render.Layout(summary=summary))
        if fits(rendition):
            return rendition
    best = None
    low, high = 0, count - 1
    while low <= high:
        middle = (low + high) // 2
        rendition = build(render.Layout(summary="brief", detailed=middle))
        if fits(rendition):
            best, low = rendition, middle + 1
        else:
            high = middle - 1
    return best if best is not None else build(render.Layout(summary="brief", detailed=0))


def _build_rendition(settings: Settings, date: dt.date, selected: list[Paper], filt: Filter,
                     placeholders: mail.Placeholders, layout: render.Layout, fitted: bool,
                     note: str = "") -> Rendition:
    context, ordered = render.digest_context(
        site_title=settings.site.title,
        sender=settings.email.sender,
        date=date,
        papers=selected,
        filt=filt,
        category_order=settings.categories.names,
        archive_url=links.archive_url(settings, date),
        postal_address=settings.email.postal_address,
        personal=placeholders.values,
        layout=layout,
        fitted=fitted,
        note=note,
    )
    rendered = render.render_digest(context, ordered)
    subject = mail.subject_for(settings, date, len(ordered))
    template = mail.MessageTemplate.build(settings, rendered, subject, placeholders, f"{date}|{filt.key}")
    return Rendition(
        key=filt.key, filter=filt, papers=ordered, subject=subject, rendered=rendered, template=template,
        preview_values=mail.personal_values(settings, Subscriber(email="subscriber@example.org", token="TOKEN")),
        placeholders=placeholders, layout=layout,
    )
