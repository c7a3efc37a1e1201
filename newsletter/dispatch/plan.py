"""What a send would deliver on one day: every edition due that day, its messages, the renditions.

On day D a daily reader gets D's daily edition; a weekly reader whose weekday D is gets a weekly
edition of the days since the last digest edition they were sent (each paper once, the most-listed
first); a reader following an author gets an alert for that author's new paper, unless the paper is
already in the digest edition they get that day, where it is marked instead.

Never twice: a paper listed again on a later day is left out for readers whose earlier editions
covered its first listing (which is also why a daily reader switching to weekly does not get last
week's papers again), and a weekly edition leaves out the papers its reader was alerted to.

Readers are grouped by what they get -- the edition, their topic filter, the papers left out for
them and the papers marked for them -- and each group is one rendition, rendered and inlined once
and turned into a MessageTemplate once. What is left out depends on a reader's history only through
the days their editions covered, so readers with the same history share it. ``Plan.message_bytes``
then produces any subscriber's final message from a rendition cheaply, one at a time. Building a
plan reads the store and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from newsletter import links, render
from newsletter.clock import Clock, utc_now
from newsletter.config import Settings
from newsletter.dispatch import mail
from newsletter.errors import NewsletterError, UsageError
from newsletter.models import (
    WEEKDAYS,
    Day,
    Edition,
    EditionKind,
    Paper,
    PlannedMessage,
    SkippedRecipient,
    Subscriber,
    plural,
)
from newsletter.selection import Filter, author_key
from newsletter.store import Store

Marks = tuple[tuple[str, tuple[str, ...]], ...]
"""(arXiv id, the followed authors who wrote it, as the paper spells them) for the papers of one message."""
HISTORY_DAYS = 90
"""How far back a plan reads the editions sent: a paper listed again after that may be mailed again,
and the log is never read whole."""
NEW_WEEKLY_DAYS = 7
"""A weekly reader's first edition covers the last week."""
LONGEST_WEEKLY_DAYS = 28
"""A weekly edition after a long pause covers at most four weeks."""


@dataclass(frozen=True)
class Selection:
    """What a rendition lists: the edition, the topic filter, and the selected papers already mailed to its
    readers (left out). Which of its papers a reader's followed authors wrote is said per message."""

    edition: Edition
    filter: Filter
    excluded: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        parts = [self.edition.key, self.filter.key]
        if self.excluded:
            parts.append("seen=" + _short_hash(sorted(self.excluded)))
        return "|".join(parts)


def _short_hash(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:10]


@dataclass
class Rendition:
    """One selection (edition, filter, ...), rendered once and shared by every subscriber who gets it."""

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
    edition: Edition
    reasons: dict[str, list[str]]
    """arXiv id -> why the paper is in it ("category Computer Vision", ...), for plan.json."""
    titles: dict[str, str]

    def describe(self) -> str:
        """What it selects, for the dry run's summary and preview. An alert is one paper, chosen for its
        followed authors whatever the reader's topics, so its filter's topics ("all categories") are left out."""
        if self.edition.kind == "alert":
            return f"alert: {self.edition.paper} by {' and '.join(self.filter.authors)}"
        label = self.filter.describe()
        return label if self.edition.kind == "daily" else f"{self.edition.kind}: {label}"

    def followed_note(self, followed: Marks) -> str:
        """The sentence that marks, for one reader, the papers in it by authors they follow."""
        if not followed:
            return ""
        return mail.followed_note((self.papers.index(i) + 1, self.titles[i], names) for i, names in followed)

    def reasons_for(self, planned: PlannedMessage) -> dict[str, list[str]]:
        """``reasons``, plus the reader's followed authors."""
        if not planned.followed:
            return self.reasons
        followed = dict(planned.followed)
        return {i: reasons + [f"author {name}" for name in followed.get(i, ())] for i, reasons in self.reasons.items()}

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
    editions: dict[str, Edition] = field(default_factory=dict)
    """Edition key -> edition, for every planned message, in the order first planned."""
    warnings: list[str] = field(default_factory=list)
    clock: Clock = utc_now
    """Stamps each message's Date header when its bytes are produced."""
    _date_header: mail.DateHeader = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._date_header = mail.DateHeader(self.clock)

    def message_bytes(self, planned: PlannedMessage) -> bytes:
        """The final message for one subscriber: RFC 5322, CRLF line ends, ready for SMTP."""
        rendition = self.renditions[planned.rendition_key]
        return rendition.template.message_bytes(self.settings, planned.subscriber, planned.message_id,
                                                self._date_header(), rendition.followed_note(planned.followed))

    def recipients_per_rendition(self) -> Counter[str]:
        """Rendition key -> how many planned messages use it."""
        return Counter(m.rendition_key for m in self.messages)

    def rendition_number(self, key: str) -> int:
        return list(self.renditions).index(key) + 1


@dataclass
class History:
    """What a plan for day D reads besides the subscribers: the digest days its editions may cover
    (D and the weekly periods), every listing date of their papers, and per subscriber the digest
    days covered by earlier editions and the papers they were alerted to (before D)."""

    days: dict[dt.date, Day]
    listings: dict[str, list[dt.date]]
    """arXiv id -> dates it was listed on, oldest first, once per listing (a day's two sources: twice)."""
    coverage: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    alerted: dict[int, set[str]] = field(default_factory=dict)
    digests_out: dict[int, set[str]] = field(default_factory=dict)
    """Per subscriber, the kinds of D's own digest editions already out: a reader who switched cadence
    since gets no digest edition of the other kind that day, which would repeat D's papers."""

    @classmethod
    def of_days(cls, days: Iterable[Day]) -> History:
        """From days in memory, with no earlier editions (the benchmark, and a plan without a store)."""
        known = {day.date: day for day in days}
        listings: dict[str, list[dt.date]] = {}
        for date in sorted(known):
            for paper in known[date].papers:
                listings.setdefault(paper.arxiv_id, []).append(date)
        return cls(known, listings)


def build_plan(settings: Settings, store: Store, date: dt.date | None = None, *,
               subscribers: list[Subscriber] | None = None, clock: Clock = utc_now,
               without_digest: bool = False) -> Plan:
    """Plan every edition due on ``date`` (default: the newest ingested day) to every active subscriber.

    ``subscribers`` replaces the store's active subscribers (the benchmark passes them in memory).
    A day with no digest plans only its weekly editions, from the days before: the publish pipeline
    passes ``without_digest`` once the day's deadline has passed (it may return an empty plan); an
    operator who names such a day gets them too, and is refused when none is due.
    """
    if date is None:
        date = store.latest_date()
        if date is None:
            # A state of the store, not a wrong command line: exit 1, not 2.
            raise NewsletterError("nothing has been ingested yet, so there is no day to send",
                                  "run `newsletter ingest` first")
    day = store.get_day(date)
    recipients = store.subscribers(status="active") if subscribers is None else subscribers
    if day is None and not without_digest and not any(weekly_due(s, date) for s in recipients):
        latest = store.latest_date()
        hint = f"the newest ingested day is {latest.isoformat()}" if latest else "run `newsletter ingest` first"
        raise UsageError(f"no digest for {date.isoformat()} in the store, and no weekly edition is due that day",
                         hint)
    coverage = store.coverage_before(date, since=date - dt.timedelta(days=HISTORY_DAYS))
    firsts = [weekly_first_day(date, coverage.get(s.id) if s.id is not None else None)
              for s in recipients if weekly_due(s, date)]
    days = {d.date: d for d in store.days_between(min(firsts), date)} if firsts else {}
    if day is not None:
        days[date] = day
    ids = {p.arxiv_id for d in days.values() for p in d.papers}
    history = History(days, store.appearances_of(sorted(ids)), coverage,
                      store.alerted_before(date, sorted(ids)) if any(s.authors for s in recipients) else {},
                      store.digests_out(date))
    return plan_editions(settings, date, recipients, history, clock=clock)


def plan_day(settings: Settings, date: dt.date, papers: list[Paper], recipients: list[Subscriber], *,
             clock: Clock = utc_now, note: str = "") -> Plan:
    """The plan for one day's papers in memory, for readers with no earlier editions."""
    return plan_editions(settings, date, recipients, History.of_days([Day(date, papers, "", note=note)]), clock=clock)


def weekly_due(subscriber: Subscriber, date: dt.date) -> bool:
    return subscriber.cadence == "weekly" and WEEKDAYS[date.weekday()] == subscriber.weekday


def weekly_first_day(date: dt.date, covered: tuple[dt.date, dt.date] | None) -> dt.date:
    """A weekly edition on ``date`` covers the days after the last one an earlier digest edition covered
    (at most LONGEST_WEEKLY_DAYS); a reader new to digests gets the last NEW_WEEKLY_DAYS days."""
    if covered is None:
        return date - dt.timedelta(days=NEW_WEEKLY_DAYS - 1)
    first = max(covered[1] + dt.timedelta(days=1), date - dt.timedelta(days=LONGEST_WEEKLY_DAYS - 1))
    return min(first, date)


def plan_editions(settings: Settings, date: dt.date, recipients: Sequence[Subscriber], history: History, *,
                  clock: Clock = utc_now) -> Plan:
    plan = Plan(settings=settings, date=date, clock=clock)
    planner = _Planner(date, history)
    choices = [planner.choose(subscriber) for subscriber in recipients]
    placeholders = mail.Placeholders()
    renditions = {selection: _rendition(settings, plan, planner.papers_of(selection), selection, group,
                                        placeholders, planner.note_of(selection.edition),
                                        planner.followed_of.get(selection, []), planner.listed_on(selection.edition))
                  for selection, group in planner.members.items()}
    domain = links.sender_domain(settings)
    for subscriber, chosen in zip(recipients, choices, strict=True):
        if isinstance(chosen, str):
            plan.skipped.append(SkippedRecipient(subscriber.email, chosen))
            continue
        for selection, followed in chosen:
            rendition = renditions[selection]
            edition = plan.editions.setdefault(selection.edition.key, selection.edition)
            plan.messages.append(PlannedMessage(
                date=date, subscriber=subscriber, papers=rendition.papers, rendition_key=rendition.key,
                message_id=links.edition_message_id(edition, subscriber, domain), edition=edition,
                followed=followed,
            ))
    return plan


class _Planner:
    """Decides each reader's selections for day ``date``, sharing every piece of work that readers with the
    same filter, edition and history have in common."""

    def __init__(self, date: dt.date, history: History) -> None:
        self.date = date
        self.history = history
        today = history.days.get(date)
        self.today = today.papers if today is not None else []
        self.members: dict[Selection, list[Subscriber]] = {}
        self.followed_of: dict[Selection, list[Marks]] = {}
        """The readers' marks, for the renditions that have any: each is sized for the longest note."""
        self._filters: dict[Filter, Filter] = {}
        self._decisions: dict[object, list[tuple[Selection, Marks]] | str] = {}
        self._selected: dict[tuple[Edition, Filter], list[Paper]] = {}
        self._period: dict[Edition, list[Paper]] = {}
        self._listed_on: dict[Edition, dict[str, dt.date]] = {}
        self._seen: dict[tuple[tuple[dt.date, dt.date] | None, dt.date], frozenset[str]] = {}
        self._daily = Edition.daily(date)
        self._by_author: dict[str, list[Paper]] = {}
        for paper in self.today:
            for name in paper.authors:
                self._by_author.setdefault(author_key(name), []).append(paper)

    def choose(self, subscriber: Subscriber) -> list[tuple[Selection, Marks]] | str:
        """The reader's selections on this day, with the papers in each by authors they follow; or why
        there are none. Decided once per distinct (profile, history): most readers share theirs."""
        if not subscriber.token:
            return "no link token, so no unsubscribe link; re-add the subscriber"
        sid = subscriber.id
        covered = self.history.coverage.get(sid) if sid is not None else None
        alerted = self.history.alerted.get(sid, set()) if sid is not None else set()
        out_today = frozenset(self.history.digests_out.get(sid, ())) if sid is not None else frozenset()
        profile = (subscriber.cadence, subscriber.weekday, tuple(subscriber.categories), tuple(subscriber.keywords),
                   tuple(subscriber.excluded_keywords), tuple(subscriber.authors))
        key = (profile, covered, frozenset(alerted), out_today)
        decided = self._decisions.get(key)
        if decided is None:
            decided = self._decisions[key] = self._decide(subscriber, covered, alerted, out_today)
        if isinstance(decided, str):
            return decided
        for selection, marks in decided:
            self.members.setdefault(selection, []).append(subscriber)
            if marks:
                self.followed_of.setdefault(selection, []).append(marks)
        return decided

    def _decide(self, subscriber: Subscriber, covered: tuple[dt.date, dt.date] | None,
                alerted: set[str], out_today: frozenset[str]) -> list[tuple[Selection, Marks]] | str:
        full = self._intern(Filter.of(subscriber))
        topic = self._intern(Filter(full.categories, full.keywords, full.excluded)) if full.authors else full
        followed = self._followed(full) if full.authors else {}
        chosen: list[tuple[Selection, Marks]] = []
        in_digest: set[str] = set()
        edition = self._digest_edition(subscriber, covered)
        if edition is not None and out_today - {edition.kind}:  # switched cadence after today's edition went out
            return f"switched to {subscriber.cadence} after today's {min(out_today)} edition went out"
        if edition is not None:
            selected = self._selected_for(edition, topic)
            seen = self._seen_before(covered, edition.first_day) | alerted
            excluded = frozenset(p.arxiv_id for p in selected if p.arxiv_id in seen)
            in_digest = {p.arxiv_id for p in selected} - excluded
            marks = tuple((arxiv_id, names) for arxiv_id, names in followed.items() if arxiv_id in in_digest)
            if in_digest:
                chosen.append((Selection(edition, topic, excluded), marks))
        mailed_before = self._seen_before(covered, self.date)
        for arxiv_id, names in followed.items():
            if arxiv_id in in_digest or arxiv_id in alerted or arxiv_id in mailed_before:
                continue
            alert = Edition("alert", self.date, self.date, paper=arxiv_id)
            chosen.append((Selection(alert, self._intern(Filter(authors=names))), ((arxiv_id, names),)))
        return chosen or self._why_nothing(subscriber, topic, full, edition)

    def _why_nothing(self, subscriber: Subscriber, topic: Filter, full: Filter, edition: Edition | None) -> str:
        if edition is None:
            return f"weekly on {subscriber.weekday}: no edition due on {self.date.isoformat()}"
        if edition.kind == "daily" and self.date not in self.history.days:
            return f"no digest for {self.date.isoformat()}"
        if edition.kind == "daily" and not self.today:
            return f"no papers on {self.date.isoformat()}"
        if self._selected_for(edition, topic):
            return f"every paper matching {full.describe()} was mailed before"
        return f"no papers match {full.describe()}"

    def _intern(self, filt: Filter) -> Filter:
        """One Filter object per distinct filter, so that its compiled patterns are built once."""
        return self._filters.setdefault(filt, filt)

    def _digest_edition(self, subscriber: Subscriber,
                        covered: tuple[dt.date, dt.date] | None) -> Edition | None:
        if subscriber.cadence == "daily":
            return self._daily
        if not weekly_due(subscriber, self.date):
            return None
        return Edition("weekly", weekly_first_day(self.date, covered), self.date)

    def _followed(self, full: Filter) -> dict[str, tuple[str, ...]]:
        """Today's papers by authors the filter follows: arXiv id -> their names as the paper spells them."""
        found: dict[str, tuple[str, ...]] = {}
        for key in sorted(full.author_keys):
            for paper in self._by_author.get(key, ()):
                if paper.arxiv_id not in found:
                    found[paper.arxiv_id] = tuple(full.followed_in(paper))
        return found

    def papers_of(self, selection: Selection) -> list[Paper]:
        if selection.edition.kind == "alert":
            return [p for p in self.today if p.arxiv_id == selection.edition.paper][:1]
        return [p for p in self._selected_for(selection.edition, selection.filter)
                if p.arxiv_id not in selection.excluded]

    def listed_on(self, edition: Edition) -> dict[str, dt.date] | None:
        """For a weekly edition, the day each of its papers was listed on (the last, whose version it shows);
        None for an edition of one day."""
        return self._listed_on[edition] if edition.kind == "weekly" else None

    def note_of(self, edition: Edition) -> str:
        today = self.history.days.get(self.date)
        return today.note if today is not None and edition.kind == "daily" else ""

    def _selected_for(self, edition: Edition, topic: Filter) -> list[Paper]:
        key = (edition, topic)
        if key not in self._selected:
            self._selected[key] = topic.select(self._period_papers(edition))
        return self._selected[key]

    def _period_papers(self, edition: Edition) -> list[Paper]:
        """A daily edition: the day's papers in digest order. A weekly one: each paper of its days once,
        the most-listed first, then in the order they were first listed."""
        if edition.kind == "daily":
            return self.today
        if edition not in self._period:
            first, last = edition.first_day, edition.last_day
            first_seen: dict[str, int] = {}
            newest: dict[str, Paper] = {}
            listed_on = self._listed_on[edition] = {}
            for date in sorted(d for d in self.history.days if first <= d <= last):
                for paper in self.history.days[date].papers:
                    first_seen.setdefault(paper.arxiv_id, len(first_seen))
                    newest[paper.arxiv_id] = paper
                    listed_on[paper.arxiv_id] = date

            def listed(arxiv_id: str) -> int:
                return sum(first <= d <= last for d in self.history.listings.get(arxiv_id, ()))

            self._period[edition] = [newest[i] for i in sorted(first_seen, key=lambda i: (-listed(i), first_seen[i]))]
        return self._period[edition]

    def _seen_before(self, covered: tuple[dt.date, dt.date] | None, before: dt.date) -> frozenset[str]:
        """Papers listed on or after ``before`` that were also listed earlier, on a day an earlier edition
        of the reader covered: they had them already, if their filter selected them."""
        if covered is None:
            return frozenset()
        key = (covered, before)
        if key not in self._seen:
            first, last = covered
            self._seen[key] = frozenset(
                arxiv_id for arxiv_id, dates in self.history.listings.items()
                if any(first <= d <= last and d < before for d in dates) and any(d >= before for d in dates))
        return self._seen[key]


def _rendition(settings: Settings, plan: Plan, selected: list[Paper], selection: Selection,
               subscribers: list[Subscriber], placeholders: mail.Placeholders, note: str,
               followed: list[Marks], listed_on: Mapping[str, dt.date] | None) -> Rendition:
    titles = {p.arxiv_id: p.title for p in selected}
    # Numbered as the last paper, the widest a note can be.
    notes = {mail.followed_note((len(selected), titles[i], names) for i, names in marks) for marks in followed}
    widest = mail.widest_html_values(settings, subscribers, notes)
    limit = settings.email.gmail_clip_kb * 1024
    requested = render.Layout(summary="full" if settings.email.summary == "full" else "short")

    def build(layout: render.Layout) -> Rendition:
        return _build_rendition(settings, selection, selected, placeholders, layout, fitted=layout != requested,
                                note=note, listed_on=listed_on)

    rendition = build(requested)
    if rendition.template.html_part_bytes_for(widest) > limit:
        rendition = _fit(build, widest, limit, rendition, len(selected))
    size = rendition.template.html_part_bytes_for(widest)
    kb = settings.email.gmail_clip_kb
    filt = selection.filter
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
            f"message, so the email shortens the summaries and lists {plural(title_only, 'paper')} by title only "
            "(it says so, and links to the archive)"
        )
    plan.renditions[rendition.key] = rendition
    return rendition


def _fit(build: Callable[[render.Layout], Rendition], widest: dict[str, int], limit: int,
         too_long: Rendition, count: int) -> Rendition:
    """The most detailed layout under ``limit``: shorter summaries first, then the fewest papers by
    title only; if none fits, all by title only. ``too_long``: the requested layout, built.

    How many papers keep their summary is searched between the most known to fit and the fewest known
    not to, each guess interpolated from their sizes: a size grows about linearly with them, so a
    long weekly edition takes three or four renders rather than the eight of a bisection."""
    def size(rendition: Rendition) -> int:
        return rendition.template.html_part_bytes_for(widest)

    for summary in render.COMPACTER[too_long.layout.summary]:
        too_long = build(render.Layout(summary=summary))
        if size(too_long) <= limit:
            return too_long
    best = build(render.Layout(summary="brief", detailed=0))
    low, low_size, high, high_size = 0, size(best), count, size(too_long)
    if low_size > limit:
        return best
    guesses = 0
    while high - low > 1:
        guesses += 1
        step = (limit - low_size) * (high - low) // max(high_size - low_size, 1) if guesses <= 3 else (high - low) // 2
        middle = min(max(low + step, low + 1), high - 1)
        rendition = build(render.Layout(summary="brief", detailed=middle))
        if size(rendition) <= limit:
            best, low, low_size = rendition, middle, size(rendition)
        else:
            high, high_size = middle, size(rendition)
    return best


def _build_rendition(settings: Settings, selection: Selection, selected: list[Paper],
                     placeholders: mail.Placeholders, layout: render.Layout, fitted: bool,
                     note: str = "", listed_on: Mapping[str, dt.date] | None = None) -> Rendition:
    edition, filt = selection.edition, selection.filter
    date = edition.last_day
    alert = edition.kind == "alert"
    names = " and ".join(filt.authors)
    context, ordered = render.digest_context(
        site_title=settings.site.title,
        sender=settings.email.sender,
        date=date,
        papers=selected,
        filt=filt,
        heading=_heading(edition),
        description=f"your categories, and this alert because you follow {names}" if alert else "",
        subline=f"{render.count_label(len(selected))} by {names}" if alert else "",  # not for its topics
        wording=WORDINGS[edition.kind],
        category_order=settings.categories.names,
        # A weekly edition spans several archive pages: its web link is the archive, each paper's its own day.
        archive_url=links.archive_index_url(settings) if listed_on is not None else links.archive_url(settings, date),
        paper_pages=None if listed_on is None else
        {i: links.archive_url(settings, day) for i, day in listed_on.items()},
        postal_address=settings.email.postal_address,
        personal=placeholders.values,
        layout=layout,
        fitted=fitted,
        note=note,
    )
    rendered = render.render_digest(context, ordered)
    if edition.kind == "alert":
        subject = mail.alert_subject(settings, filt.authors, selected[0].title)
    elif edition.kind == "weekly":
        subject = mail.weekly_subject(settings, edition.first_day, edition.last_day, len(ordered))
    else:
        subject = mail.subject_for(settings, date, len(ordered))
    # A daily edition's key is its filter's, as before editions, so that sample files keep their names.
    key = filt.key if (edition.kind, selection.excluded) == ("daily", frozenset()) else selection.key
    template = mail.MessageTemplate.build(settings, rendered, subject, placeholders, f"{date}|{key}")
    by_id = {p.arxiv_id: p for p in selected}
    # An alert's only reason is its author, which the reader's marks add (see reasons_for).
    reasons = {i: filt.reasons(by_id[i]) if edition.kind != "alert" else [] for i in ordered}
    return Rendition(
        key=key, filter=filt, papers=ordered, subject=subject, rendered=rendered, template=template,
        preview_values=mail.personal_values(settings, Subscriber(email="subscriber@example.org", token="TOKEN")),
        placeholders=placeholders, layout=layout, edition=edition, reasons=reasons,
        titles={i: by_id[i].title for i in ordered},
    )


WORDINGS: dict[EditionKind, render.Wording] = {
    "daily": render.Wording(),
    "weekly": render.Wording(reading_list="this week's reading list",
                             web_link="Each of its days is in the web archive", web_link_short="Web archive"),
    "alert": render.Wording(reading_list="the new paper"),
}
"""How each kind of edition names itself in the greeting and its link to the web."""


def _heading(edition: Edition) -> str:
    if edition.kind == "weekly":
        return f"The week's papers, {mail.period_label(edition.first_day, edition.last_day)} {edition.last_day.year}"
    if edition.kind == "alert":
        return "A new paper by an author you follow"
    return ""
