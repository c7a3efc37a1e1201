"""Email production at scale: 100,000 subscribers over 50 distinct filters of one real corpus day.

Usage: python bench/render.py [--case daily|weekly|both] [--subscribers N] [--runs N] [--naive-sample N] [--day PATH]
Targets: >= 2,000 messages/s; <= 300 MB peak RSS; >= 50x the naive approach.

The weekly case plans and builds every edition due on the last day of a week of corpus days:
100,000 subscribers over the same 50 filters, 30 % weekly (due that day, most covering the whole
week, some new or back from a daily cadence mid-week), 10 % following 3 of the week's most-listed
authors (alerts, or marks in their digest). Target: >= 10,000 messages/s, <= 300 MB peak RSS.

The measured pipeline is the one `newsletter send` uses: plan_day (group by filter, render and
inline each rendition once, pre-encode its MIME parts) and then Plan.message_bytes for every
subscriber, ending in the final CRLF message bytes (which are dropped, as SMTP would consume
them). Subscribers are held in memory, not in SQLite, so the figure is about rendering. The
naive approach (Jinja2 + premailer + email.message serialisation per subscriber) runs on a
sample in the same process, after the peak RSS of the fast runs has been read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from newsletter import links, render
from newsletter.categories import Classifier
from newsletter.config import Settings, settings_from_dict
from newsletter.dispatch import mail
from newsletter.dispatch.plan import History, plan_editions
from newsletter.models import WEEKDAYS, Day, Subscriber
from newsletter.parsing import parse_file
from newsletter.selection import Filter

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
NAMES = ["Ana Souza", "Zoë Ångström", "李小龙", "Mary O'Neil", "", "Jean-Luc Picard", "Ola Nordmann"]


def load_day(path: Path | None, settings: Settings) -> Day:
    if path is None:  # the day with the most papers in the corpus
        files = sorted((CORPUS / "daily-ai-papers").rglob("*.md"), key=lambda p: p.stat().st_size)
        if not files:
            sys.exit(f"no corpus at {CORPUS}; pass --day PATH")
        path = files[-1]
    days = parse_file(path).days
    Classifier(settings.categories).assign(days)
    return max(days, key=lambda d: len(d.papers))


def distinct_filters(day: Day, settings: Settings, wanted: int) -> list[Filter]:
    """Category subsets first, then keyword filters; only those that select at least one paper."""
    names = settings.categories.names
    candidates = [Filter()]
    for size in range(1, len(names) + 1):
        candidates += [Filter(categories=frozenset(c)) for c in itertools.combinations(names, size)]
    words = ["model", "language", "video", "agent", "reasoning", "image", "benchmark", "training", "data",
             "diffusion", "3d", "learning", "efficient", "multimodal", "reinforcement", "llm", "generation"]
    candidates += [Filter(keywords=(w,)) for w in words]
    candidates += [Filter(categories=frozenset([n]), excluded=(w,)) for n in names for w in words]
    found = [f for f in candidates if f.select(day.papers)]
    if len(found) < wanted:
        sys.exit(f"only {len(found)} distinct non-empty filters on this day; pick a larger one with --day")
    return found[:wanted]


def make_subscribers(filters: list[Filter], count: int) -> list[Subscriber]:
    return [
        Subscriber(email=f"reader{i}@example.org", name=NAMES[i % len(NAMES)], token=f"tok{i:08d}x" * 2,
                   categories=sorted(filters[i % len(filters)].categories),
                   keywords=list(filters[i % len(filters)].keywords),
                   excluded_keywords=list(filters[i % len(filters)].excluded), id=i)
        for i in range(count)
    ]


def fast_run(settings: Settings, day: Day, subscribers: list[Subscriber]) -> tuple[float, int, int]:
    from newsletter.dispatch.plan import plan_day

    start = time.perf_counter()
    plan = plan_day(settings, day.date, day.papers, subscribers)
    total = 0
    for planned in plan.messages:
        total += len(plan.message_bytes(planned))
    return time.perf_counter() - start, len(plan.messages), len(plan.renditions)


def naive_message(settings: Settings, day: Day, subscriber: Subscriber) -> bytes:
    """What a straightforward implementation does: render, inline and serialise for each subscriber."""
    filt = Filter.of(subscriber)
    context, ids = render.digest_context(
        site_title=settings.site.title, sender=settings.email.sender, date=day.date,
        papers=filt.select(day.papers), filt=filt, category_order=settings.categories.names,
        archive_url=links.archive_url(settings, day.date), postal_address="",
        personal=mail.personal_values(settings, subscriber),
    )
    rendered = render.render_digest(context, ids)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = settings.email.sender
    message["To"] = str(Address(display_name=subscriber.name, addr_spec=subscriber.email))
    message["Subject"] = mail.subject_for(settings, day.date, len(ids))
    message["Message-ID"] = links.message_id(day.date, subscriber, "example.org")
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message.as_bytes()


def load_week(settings: Settings) -> list[Day]:
    """The seven days ending on the corpus day that has the most corpus days in its week."""
    dated = {}
    for path in (CORPUS / "daily-ai-papers").rglob("*.md"):
        try:
            dated[dt.date(int(path.parent.parent.name), int(path.parent.name), int(path.stem))] = path
        except ValueError:
            continue
    if not dated:
        sys.exit(f"no corpus at {CORPUS}")
    last = max(dated, key=lambda d: (sum(d - dt.timedelta(days=k) in dated for k in range(7)), d))
    days = [day for k in range(7) if (last - dt.timedelta(days=k)) in dated
            for day in parse_file(dated[last - dt.timedelta(days=k)]).days]
    Classifier(settings.categories).assign(days)
    return sorted(days, key=lambda d: d.date)


def weekly_readers(filters: list[Filter], count: int, week: list[Day]) -> tuple[list[Subscriber], History]:
    """The subscribers of the weekly case and what earlier editions covered for them."""
    last = week[-1].date
    by_author = Counter(a for day in week for p in day.papers for a in p.authors)
    popular = [name for name, _n in by_author.most_common(300)]
    chooser = random.Random(14)
    subscribers = make_subscribers(filters, count)
    coverage = {}
    for i, subscriber in enumerate(subscribers):
        if i % 10 < 3:
            subscriber.cadence, subscriber.weekday = "weekly", WEEKDAYS[last.weekday()]
            if i % 30 == 1:  # switched from daily on the week's third day
                coverage[i] = (last - dt.timedelta(days=60), last - dt.timedelta(days=4))
            elif i % 30 != 2:  # i % 30 == 2: new, no earlier edition
                coverage[i] = (last - dt.timedelta(days=60), last - dt.timedelta(days=7))
        else:
            coverage[i] = (last - dt.timedelta(days=60), last - dt.timedelta(days=1))
        if (i // 10) % 10 == 0:
            subscriber.authors = chooser.sample(popular, 3)
    history = History.of_days(week)
    history.coverage = coverage
    return subscribers, history


def weekly_run(settings: Settings, subscribers: list[Subscriber], history: History, date: dt.date
               ) -> tuple[float, Counter[str], int]:
    start = time.perf_counter()
    plan = plan_editions(settings, date, subscribers, history)
    total = 0
    for planned in plan.messages:
        total += len(plan.message_bytes(planned))
    return time.perf_counter() - start, Counter(m.edition.kind for m in plan.messages), len(plan.renditions)


def weekly_case(settings: Settings, args: argparse.Namespace) -> None:
    week = load_week(settings)
    union = Day(week[-1].date, [p for day in week for p in day.papers], "week")
    filters = distinct_filters(union, settings, args.filters)
    subscribers, history = weekly_readers(filters, args.subscribers, week)
    print(f"week {week[0].date}..{week[-1].date} ({len(week)} corpus days, {len(union.papers)} listings), "
          f"{len(subscribers):,} subscribers in memory, {len(filters)} distinct filters, "
          f"{sum(s.cadence == 'weekly' for s in subscribers):,} weekly, {sum(bool(s.authors) for s in subscribers):,} "
          "following 3 authors")
    times = []
    for run in range(args.runs):
        seconds, kinds, renditions = weekly_run(settings, subscribers, history, week[-1].date)
        times.append(seconds)
        messages = sum(kinds.values())
        print(f"  run {run + 1}: {messages:,} messages ({', '.join(f'{n:,} {k}' for k, n in sorted(kinds.items()))}), "
              f"{renditions} renditions in {seconds:.2f} s ({messages / seconds:,.0f} msg/s)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"weekly:   {messages / statistics.median(times):,.0f} messages/s plan + build (median of {args.runs} runs; "
          "target >= 10,000)")
    print(f"peak RSS: {peak_mb:,.0f} MB (ru_maxrss after the weekly runs; target <= 300)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--filters", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--day", type=Path, default=None)
    parser.add_argument("--case", choices=["daily", "weekly", "both"], default="both",
                        help="weekly runs in a process of its own (--case weekly) for its own peak RSS")
    args = parser.parse_args()

    # A throwaway config folder: links are signed with a key file made there on first use.
    settings = settings_from_dict({"email": {"from": "Daily AI Papers <papers@example.org>"}},
                                  Path(tempfile.mkdtemp(prefix="bench-render-")) / "config.toml")
    if args.case == "weekly":
        weekly_case(settings, args)
        return
    day = load_day(args.day, settings)
    filters = distinct_filters(day, settings, args.filters)
    subscribers = make_subscribers(filters, args.subscribers)
    print(f"day {day.date} ({len(day.papers)} papers), {len(subscribers):,} subscribers in memory, "
          f"{len(filters)} distinct filters")

    times = []
    for run in range(args.runs):
        seconds, messages, renditions = fast_run(settings, day, subscribers)
        times.append(seconds)
        print(f"  run {run + 1}: {messages:,} messages, {renditions} renditions in {seconds:.2f} s "
              f"({messages / seconds:,.0f} msg/s)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fast_rate = len(subscribers) / statistics.median(times)

    sample = subscribers[: args.naive_sample]
    naive_times = []
    for subscriber in sample:
        start = time.perf_counter()
        naive_message(settings, day, subscriber)
        naive_times.append(time.perf_counter() - start)
    naive_rate = 1 / statistics.median(naive_times)

    print(f"pipeline: {fast_rate:,.0f} messages/s (median of {args.runs} runs; target >= 2,000)")
    print(f"peak RSS: {peak_mb:,.0f} MB (ru_maxrss after the pipeline runs; target <= 300)")
    print(f"naive:    {naive_rate:,.1f} messages/s (median over {len(sample)} subscribers: render + premailer "
          "+ email.message per subscriber)")
    print(f"ratio:    {fast_rate / naive_rate:,.0f}x (target >= 50)")
    if args.case == "both":  # a fresh process, so that its peak RSS is its own
        subprocess.run([sys.executable, __file__, "--case", "weekly", "--subscribers", str(args.subscribers),
                        "--runs", str(args.runs), "--filters", str(args.filters)], check=True)


if __name__ == "__main__":
    main()
