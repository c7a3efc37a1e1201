"""Email production at scale: 100,000 subscribers over 50 distinct filters of one real corpus day.

Usage: python bench/render.py [--subscribers N] [--runs N] [--naive-sample N] [--day PATH]
Targets: >= 2,000 messages/s; <= 300 MB peak RSS; >= 50x the naive approach.

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
import resource
import statistics
import sys
import tempfile
import time
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from newsletter import links, render
from newsletter.categories import Classifier
from newsletter.config import Settings, settings_from_dict
from newsletter.dispatch import mail
from newsletter.models import Day, Subscriber
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--filters", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--day", type=Path, default=None)
    args = parser.parse_args()

    # A throwaway config folder: links are signed with a key file made there on first use.
    settings = settings_from_dict({"email": {"from": "Daily AI Papers <papers@example.org>"}},
                                  Path(tempfile.mkdtemp(prefix="bench-render-")) / "config.toml")
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


if __name__ == "__main__":
    main()
