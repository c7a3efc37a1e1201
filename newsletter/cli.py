"""The ``newsletter`` command line: a thin click layer over the pipeline stages.

Every command's docstring is its ``--help``. Domain errors (NewsletterError) become
``click.ClickException`` here and nowhere else; config and usage errors exit 2, failed work 1.
Stage modules are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from newsletter import __version__
from newsletter.errors import NewsletterError, SubscriberExistsError
from newsletter.models import CADENCES, SUBSCRIBER_STATUSES, WEEKDAYS, plural

if TYPE_CHECKING:  # the config module is imported when a command runs, not for `--help`
    from click._termui_impl import ProgressBar

    from newsletter.config import Settings
    from newsletter.models import Day, ParseWarning
    from newsletter.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class WorkFailed(click.ClickException):
    """A domain error: the work could not be done. Exit 1."""

    exit_code = 1


class BadConfigOrUsage(WorkFailed):
    """A config or usage error: nothing was attempted. Exit 2."""

    exit_code = 2


def to_click_error(error: NewsletterError) -> click.ClickException:
    return (BadConfigOrUsage if error.exit_code == 2 else WorkFailed)(str(error))


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            raise to_click_error(exc) from exc
        except BrokenPipeError:
            end_on_closed_pipe()
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise to_click_error(NewsletterError(
                f"cannot read or write{where}: {exc.strerror or exc}",
                "check that the path exists and is writable, and that the disk is not full",
            )) from exc
        except Exception as exc:
            # Looked up, not imported: importing SQLAlchemy costs half a second that `--help` need not
            # pay, and if it was never imported none of its errors can have been raised.
            if "sqlalchemy.exc" not in sys.modules:
                raise
            from newsletter.store.failures import store_failure

            failure = store_failure(exc)
            if failure is None:
                raise
            raise to_click_error(failure) from exc

    return wrapper  # type: ignore[return-value]


def end_on_closed_pipe() -> None:
    """`newsletter status | head -1`: the reader of our output has what it wanted and left. Not a
    failure: point stdout at /dev/null, so that the flush at exit does not fail again, and exit 0."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


class Command(click.Command):
    """Says where `--config` goes when it is given after a command (`newsletter status --config x`),
    the mistake click would only call an unknown option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if exc.option_name != "--config":
                raise
            command = ctx.command_path.split(" ", 1)[1]
            raise click.UsageError(f"No such option '--config' here; --config goes before the command: "
                                   f"newsletter --config PATH {command}", ctx) from None


class Group(Command, click.Group):
    command_class = Command
    group_class = type  # its subgroups are of this class too


class AppContext:
    """Loads the config once, on first use, so that commands which need none never fail on it."""

    def __init__(self, config_path: Path, named: bool) -> None:
        self.config_path = config_path
        self.named = named
        """Whether --config or $NEWSLETTER_CONFIG named the file: then it must exist, for every command."""
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        return self._load(check_addresses=True)

    @property
    def settings_or_defaults(self) -> Settings:
        """The config when the file exists or was named, else built-in defaults: for commands that can do
        without ./config.toml. They read only digests and categories and send no mail, so the mail
        addresses go unchecked (a command uses either this or ``settings``, never both)."""
        from newsletter.config import Settings

        if self.named or self.config_path.is_file():
            return self._load(check_addresses=False)
        return Settings(path=self.config_path.resolve())

    def _load(self, check_addresses: bool) -> Settings:
        if self._settings is None:
            from newsletter.config import load_settings, placeholder_warnings, taxonomy_warnings

            try:
                self._settings = load_settings(self.config_path, check_addresses=check_addresses)
            except NewsletterError as exc:
                raise to_click_error(exc) from exc
            warnings = [*placeholder_warnings(self._settings), *taxonomy_warnings(self._settings)]
            held = held_config_warnings()
            if held is None:
                echo_warnings(warnings)
            else:
                held.extend(warnings)
            # Without [site] templates, render (and premailer) stays unimported: it starts with the shipped set.
            if self._settings.template_folder is not None or "newsletter.render" in sys.modules:
                from newsletter import render

                render.use_templates(self._settings.template_folder)
        return self._settings


pass_app = click.make_pass_decorator(AppContext)


def parse_date(_ctx: click.Context | None, _param: click.Parameter | None, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file. Default: $NEWSLETTER_CONFIG, else ./config.toml.",  # config.CONFIG_ENV
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Turn daily AI-paper digests into Atom feeds and category-filtered daily emails."""
    from newsletter.config import CONFIG_ENV, default_config_path

    ctx.obj = AppContext(config_path or default_config_path(), named=bool(config_path or os.environ.get(CONFIG_ENV)))


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the parsed days as JSON.")
@pass_app
@handle_errors
def parse(app: AppContext, paths: tuple[str, ...], as_json: bool) -> None:
    """Parse digest files (or folders, or globs) and print what they hold, without storing.

    Categories come from the digest's Category column, else from the config's taxonomy (the
    built-in one when there is no ./config.toml; a config named by --config or $NEWSLETTER_CONFIG
    must exist). Exits 1 when a file is not a digest or nothing in it
    could be read.

    Example:

    \b
      newsletter parse examples/digests/2026-11-19.md --json
    """
    from newsletter.categories import Classifier
    from newsletter.ingest import parse_files, resolve_inputs

    settings = app.settings_or_defaults
    parsed = parse_files(resolve_inputs(settings, paths), Classifier(settings.categories))
    if as_json:
        click.echo(days_as_json(parsed.days, parsed.warnings, held_config_warnings() or []))
    else:
        for day in parsed.days:
            count = len(day.papers)
            click.echo(f"{day.date}  {count:3d} {'paper' if count == 1 else 'papers':<6}  {day.source}")
            for paper in day.papers:
                click.echo(f"  {paper.arxiv_id:<12} [{', '.join(paper.categories)}] {paper.title}")
        click.echo(f"{plural(len(parsed.days), 'day')}, {plural(sum(len(d.papers) for d in parsed.days), 'paper')}")
        echo_warnings(parsed.warnings)
    if parsed.errors:
        for error in parsed.errors:
            click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--accept-shrink", is_flag=True,
              help="Let a file replace its stored listing of a day even when it lists half the papers or fewer.")
@click.option("--prune", is_flag=True, help="Also remove the listings of digest files that no longer exist.")
@pass_app
@handle_errors
def ingest(app: AppContext, paths: tuple[str, ...], as_json: bool, accept_shrink: bool, prune: bool) -> None:
    """Parse digests and upsert them into the store.

    PATHS default to [digests] paths in the config. Running it again on the same files changes
    nothing; a corrected file updates its papers. A bad row is a warning; a file that is not a
    digest, or has nothing readable, is an error reported at the end (exit 1), after the good files
    are stored. So is a file that now lists half the papers the store holds from it for a day, or
    fewer: the stored listing is kept unless --accept-shrink. --prune removes the listings of files
    that no longer exist.

    Example:

    \b
      newsletter ingest examples/digests --prune
    """
    from newsletter.ingest import ingest_files, resolve_inputs
    from newsletter.store import Store

    settings = app.settings
    files = resolve_inputs(settings, paths)
    with Store.from_settings(settings) as store, progress_bar(len(files), "Parsing", as_json) as bar:
        report = ingest_files(settings, store, files, on_file=lambda _path: bar.update(1),
                              accept_shrink=accept_shrink, prune=prune)
    if as_json:
        echo_json(report.as_dict())
    else:
        c = report.counts
        click.echo(f"{plural(len(files), 'file')}, {plural(c.days, 'day')}: {c.new} new, {c.updated} updated, "
                   f"{c.unchanged} unchanged")
        for pruned in report.pruned:
            days = ", ".join(d.isoformat() for d in pruned.dates) or "no day"
            click.echo(f"pruned {pruned.path} (no longer exists): its {plural(pruned.papers, 'paper')} on {days}")
        echo_warnings(report.warnings)
    for error in report.errors:
        click.secho(f"error: {error}", fg="red", err=True)
    if report.errors:
        sys.exit(1)


@cli.command("feeds")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
@handle_errors
def feeds_command(app: AppContext, as_json: bool) -> None:
    """Write the Atom feeds, their RSS twins and index.html from the store into [feeds] dir.

    papers.atom (one entry per paper), digest.atom (one entry per day) and categories/SLUG.atom
    (one per category in the taxonomy) hold the last [feeds] window_days days up to the newest
    digest. Entry ids and dates never depend on when this runs, and a file is only rewritten when
    its bytes change, so running it again with nothing new leaves every file as it was.

    Example:

    \b
      newsletter feeds --json
    """
    from newsletter.feeds import build_feeds
    from newsletter.store import Store

    settings = app.settings
    with Store.from_settings(settings) as store:
        report = build_feeds(settings, store)
    # An empty feed is valid, but the operator most likely forgot a step.
    warnings = [] if report.days else [
        "the store holds no papers yet: the feeds are empty; run `newsletter ingest` first"]
    if as_json:
        echo_json({"written": [str(p) for p in report.written], "unchanged": [str(p) for p in report.unchanged],
                   "papers": report.papers, "days": report.days, "warnings": warnings})
        return
    echo_warnings(warnings)
    for path in report.written:
        click.echo(f"wrote {path}")
    click.echo(f"{plural(report.papers, 'paper')} over {plural(report.days, 'day')}: "
               f"{plural(len(report.written), 'file')} written, "
               f"{len(report.unchanged)} unchanged in {settings.resolve(settings.feeds.dir)}")


@cli.group()
def categories() -> None:
    """Measure how the category classifier agrees with papers labelled by hand."""


@categories.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--digests", "digest_paths", multiple=True, metavar="PATH",
              help="Digest files, folders or globs holding the labelled papers (repeatable). "
                   "Default: [digests] paths.")
@click.option("--split", type=click.Choice(["all", "train", "test"]), default="all", show_default=True,
              help="Only the rows of this part of the labelled file.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_app
@handle_errors
def categories_eval(app: AppContext, file: Path, digest_paths: tuple[str, ...], split: str, as_json: bool) -> None:
    """Classify the papers of a labelled CSV file and print how often the labels agree.

    FILE has the header arxiv_id,primary,others,split (others separated by ";"). The papers' text
    comes from the digests; their own Category cells are ignored. Prints the share of papers whose
    primary category comes first, precision and recall per category over all the labels a paper
    carries, and the confusion matrix of primary against first category. Exits 1 when a row is
    malformed or a labelled paper is in none of the digests (the others are still counted), 2 when
    none of them is (--digests names the folder the labels were made from).

    Example:

    \b
      newsletter categories eval tests/data/categories-labels.csv --digests ../shared/corpus/daily-ai-papers
    """
    from newsletter.categories import Classifier
    from newsletter.category_eval import (
        DIGESTS_HINT,
        evaluate,
        evaluation_as_dict,
        format_evaluation,
        missing_lines,
        papers_in,
        read_labels,
    )
    from newsletter.errors import UsageError
    from newsletter.ingest import resolve_inputs

    settings = app.settings_or_defaults
    classifier = Classifier(settings.categories)
    labels, problems = read_labels(file, list(settings.categories.taxonomy))
    labels = [label for label in labels if split in ("all", label.split)]
    papers, errors = papers_in(resolve_inputs(settings, digest_paths))
    result = evaluate(labels, papers, classifier)
    read_from = ", ".join(digest_paths) or f"[digests] paths: {', '.join(settings.digests.paths)}"
    if labels and not result.papers:  # the wrong digests, not a bad classifier: there is nothing to measure
        echo_errors([*problems, *map(str, errors)])
        raise UsageError(f"{file}: none of the {len(labels)} labelled papers is in the digests read ({read_from})",
                         DIGESTS_HINT)
    if as_json:
        echo_json(evaluation_as_dict(result))
    else:
        click.echo(format_evaluation(result))
    problems += [*missing_lines(file, result, read_from), *map(str, errors)]
    echo_errors(problems)
    if problems:
        sys.exit(1)


@cli.group()
def subscribers() -> None:
    """Manage who gets the daily email and with which filter.

    `unsubscribe` (like the unsubscribe links) keeps the address, marked unsubscribed, so that an
    import never mails it again; `remove` forgets the address and with it the opt-out.
    """


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name, used in the To header.")
@click.option("--category", "categories", multiple=True, help="Only papers of this category (repeatable). None: all.")
@click.option("--keyword", "keywords", multiple=True, help="Only papers mentioning one of these (repeatable).")
@click.option("--exclude", "excluded", multiple=True, help="Never papers mentioning this (repeatable).")
@click.option("--author", "authors", multiple=True, help="Follow this author: an alert for each new paper, "
              "whatever the filter (repeatable).")
@click.option("--cadence", type=click.Choice(CADENCES, case_sensitive=False), default="daily", show_default=True,
              help="A digest every day, or once a week.")
@click.option("--weekday", type=click.Choice(WEEKDAYS, case_sensitive=False), default=None,
              help="The day of a weekly digest (with --cadence weekly), in [schedule] timezone. Default: mon.")
@pass_app
@handle_errors
def subscribers_add(app: AppContext, email: str, name: str, categories: tuple[str, ...],
                    keywords: tuple[str, ...], excluded: tuple[str, ...], authors: tuple[str, ...],
                    cadence: str, weekday: str | None) -> None:
    """Subscribe EMAIL. Categories must be in [categories] taxonomy; an unknown one exits 2.

    Examples:

      newsletter subscribers add ada@example.org --category "Computer Vision" --keyword diffusion

      newsletter subscribers add bo@example.org --cadence weekly --weekday fri --author "Doe, Jane"

    A followed author matches however the digest spells the name ("Jane Doe", "Doe, Jane",
    accents or not); a Hugging Face user name (no space) matches only exactly.
    """
    from newsletter.models import Subscriber
    from newsletter.selection import Filter
    from newsletter.store import Store
    from newsletter.subscribers import cadence_wording, check_cadence, check_weekday, validated

    _refuse_weekday_without_weekly(weekday, cadence)
    sub = validated(Subscriber(email=email, name=name, categories=list(categories), keywords=list(keywords),
                               excluded_keywords=list(excluded), authors=list(authors),
                               cadence=check_cadence(cadence), weekday=check_weekday(weekday or "mon")),
                    app.settings.categories.names)
    with Store.from_settings(app.settings) as store:
        try:
            sub = store.add_subscriber(sub)
        except SubscriberExistsError as exc:
            raise SubscriberExistsError(exc.message, f"to change its filter, name or status, use `newsletter "
                                                     f"subscribers update {sub.email}` (see --help)") from exc
    click.echo(f"added {sub.email}: {Filter.of(sub).describe()}; {cadence_wording(sub)}")


def _refuse_weekday_without_weekly(weekday: str | None, cadence: str) -> None:
    """A weekday given to a daily reader was silently kept unused: the operator meant a weekly digest."""
    if weekday is not None and cadence != "weekly":
        raise click.UsageError(f"--weekday {weekday} applies to weekly readers only, and this one is {cadence}; "
                               f"add --cadence weekly")


def _pick(values: tuple[str, ...], clear: bool, option: str, clear_flag: str) -> list[str] | None:
    """A list option's new value: the values given, [] when cleared, None when neither (unchanged)."""
    if values and clear:
        raise click.UsageError(f"{option} and {clear_flag} contradict each other; give one")
    return [] if clear else (list(values) if values else None)


@subscribers.command("update")
@click.argument("email")
@click.option("--name", default=None, help="New display name (\"\" for none).")
@click.option("--category", "categories", multiple=True, help="Only papers of this category (repeatable); "
              "replaces the stored categories.")
@click.option("--all-categories", is_flag=True, help="Papers of every category (clears the categories).")
@click.option("--keyword", "keywords", multiple=True, help="Replaces the keywords (repeatable).")
@click.option("--no-keywords", is_flag=True, help="Clears the keywords.")
@click.option("--exclude", "excluded", multiple=True, help="Replaces the excluded keywords (repeatable).")
@click.option("--no-excludes", is_flag=True, help="Clears the excluded keywords.")
@click.option("--author", "authors", multiple=True, help="Replaces the followed authors (repeatable).")
@click.option("--no-authors", is_flag=True, help="Follows no author any more.")
@click.option("--cadence", type=click.Choice(CADENCES, case_sensitive=False), default=None, help="daily or weekly.")
@click.option("--weekday", type=click.Choice(WEEKDAYS, case_sensitive=False), default=None,
              help="The day of a weekly digest.")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES, case_sensitive=False), default=None,
              help="Set the status.")
@click.option("--reactivate", is_flag=True, help="Make a bounced or unsubscribed address active again.")
@pass_app
@handle_errors
def subscribers_update(app: AppContext, email: str, name: str | None, categories: tuple[str, ...],
                       all_categories: bool, keywords: tuple[str, ...], no_keywords: bool,
                       excluded: tuple[str, ...], no_excludes: bool, authors: tuple[str, ...], no_authors: bool,
                       cadence: str | None, weekday: str | None, status: str | None, reactivate: bool) -> None:
    """Change EMAIL's filter, name or status; what is not given stays as it is. Prints what changed.

    --reactivate undoes a bounce (say, after a relay's broken recipient table marked readers
    bounced), or re-subscribes a reader who unsubscribed and asked to come back: the address is
    mailed again from the next issue on (a day whose message bounced is not sent again). An
    unknown address exits 1; an unknown category exits 2.

    Switching to --cadence weekly never mails again the papers of days that daily editions
    already covered: the first weekly edition starts the day after the last daily one.

    Example: newsletter subscribers update ada@example.org --cadence weekly --weekday thu
    """
    from newsletter.errors import SubscriberNotFoundError
    from newsletter.selection import Filter
    from newsletter.store import Store
    from newsletter.subscribers import SubscriberChange, apply_change, describe_change

    if reactivate and status is not None:
        raise click.UsageError("--reactivate sets the status to active; do not give --status as well")
    change = SubscriberChange(
        name=name, categories=_pick(categories, all_categories, "--category", "--all-categories"),
        keywords=_pick(keywords, no_keywords, "--keyword", "--no-keywords"),
        excluded_keywords=_pick(excluded, no_excludes, "--exclude", "--no-excludes"),
        authors=_pick(authors, no_authors, "--author", "--no-authors"), cadence=cadence, weekday=weekday,
        status="active" if reactivate else status)
    with Store.from_settings(app.settings) as store:
        stored = store.get_subscriber(email)
        if stored is None:
            raise SubscriberNotFoundError(f"{email} is not a subscriber",
                                          "check the spelling, or subscribe it with `newsletter subscribers add`")
        _refuse_weekday_without_weekly(weekday, cadence or stored.cadence)
        updated = apply_change(stored, change, app.settings.categories.names)
        if updated == stored:
            click.echo(f"nothing to change for {stored.email} ({stored.status}; {Filter.of(stored).describe()})")
            return
        store.update_subscriber(updated)
    for line in describe_change(stored, updated, Filter.of(updated).describe()):
        click.echo(line)


@subscribers.command("remove")
@click.argument("email")
@pass_app
@handle_errors
def subscribers_remove(app: AppContext, email: str) -> None:
    """Delete EMAIL's row for good (exit 1 if there is none): for a typo or an erasure request.

    This forgets that the address opted out, so a later import of an older CSV adds it again. To
    stop mailing someone, use `unsubscribe` instead.

    Example:

    \b
      newsletter subscribers remove ada@example.org
    """
    from newsletter.errors import SubscriberNotFoundError
    from newsletter.store import Store

    with Store.from_settings(app.settings) as store:
        if not store.remove_subscriber(email):
            raise SubscriberNotFoundError(f"{email} is not subscribed", "see `newsletter subscribers list`")
    click.echo(f"removed {email}")


@subscribers.command("unsubscribe")
@click.argument("email")
@pass_app
@handle_errors
def subscribers_unsubscribe(app: AppContext, email: str) -> None:
    """Mark EMAIL unsubscribed, keeping the row so that no import or send mails it again.

    For requests that reach the [email] unsubscribe_mailto mailbox (the List-Unsubscribe mailto)
    or any other channel. Running it again changes nothing; an unknown address exits 1.

    Example:

    \b
      newsletter subscribers unsubscribe ada@example.org
    """
    from newsletter.errors import SubscriberNotFoundError
    from newsletter.store import Store

    with Store.from_settings(app.settings) as store:
        stored = store.get_subscriber(email)
        if stored is None:
            raise SubscriberNotFoundError(f"{email} is not a subscriber, so there is nothing to unsubscribe",
                                          "check the spelling; `newsletter subscribers list` shows every address")
        if stored.status == "unsubscribed":
            click.echo(f"{stored.email} was already unsubscribed")
            return
        store.set_subscriber_status(stored.email, "unsubscribed")
    click.echo(f"unsubscribed {stored.email} (was {stored.status})")


@subscribers.command("list")
@click.option("--status", type=click.Choice(["all", *SUBSCRIBER_STATUSES], case_sensitive=False), default="all",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
@handle_errors
def subscribers_list(app: AppContext, status: str, as_json: bool) -> None:
    """List subscribers, oldest first: address, name, status, filter and cadence (all of the export's
    fields, and when they subscribed, with --json: {"subscribers": [...]}).

    Example:

    \b
      newsletter subscribers list --status bounced --json
    """
    from newsletter.selection import Filter
    from newsletter.store import Store
    from newsletter.subscribers import cadence_wording, check_status, subscriber_as_dict

    with Store.from_settings(app.settings) as store:
        found = store.subscribers(status=None if status == "all" else check_status(status))
    if as_json:
        echo_json({"subscribers": [subscriber_as_dict(s) for s in found]})
        return
    if not found:
        click.echo("no subscribers" + ("" if status == "all" else f" with status {status}"))
        return
    rows = [(s.email, s.name, s.status, Filter.of(s).describe() + ("" if s.cadence == "daily" else
                                                                    f"; {cadence_wording(s)}")) for s in found]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("EMAIL", "NAME", "STATUS"))]
    click.echo(f"{'EMAIL':<{widths[0]}}  {'NAME':<{widths[1]}}  {'STATUS':<{widths[2]}}  FILTER")
    for email, name, state, wording in rows:
        click.echo(f"{email:<{widths[0]}}  {name:<{widths[1]}}  {state:<{widths[2]}}  {wording}")
    click.echo(plural(len(found), "subscriber"))


def _stored_subscriber(store: Any, email: str) -> Any:
    from newsletter.errors import SubscriberNotFoundError

    stored = store.get_subscriber(email)
    if stored is None:
        raise SubscriberNotFoundError(f"{email} is not a subscriber",
                                      "check the spelling; `newsletter subscribers list` shows every address")
    return stored


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with \"feed_url\" and \"feed_url_rss\".")
@pass_app
@handle_errors
def subscribers_show(app: AppContext, email: str, as_json: bool) -> None:
    """Show EMAIL's filter, status and private feed addresses (an unknown address exits 1).

    The private feed holds the papers the subscriber's filter selects, as their email does; it
    answers only while they are active.

    \b
    newsletter subscribers show ada@example.org
    newsletter subscribers show ada@example.org --json
    """
    from newsletter.links import private_feed_url
    from newsletter.selection import Filter
    from newsletter.store import Store
    from newsletter.subscribers import cadence_wording, subscriber_as_dict

    with Store.from_settings(app.settings) as store:
        found = _stored_subscriber(store, email)
    feed_url, feed_url_rss = (private_feed_url(app.settings, found.feed_token, kind) for kind in ("atom", "rss"))
    if as_json:
        echo_json({**subscriber_as_dict(found), "filter": Filter.of(found).describe(),
                   "feed_url": feed_url, "feed_url_rss": feed_url_rss})
        return
    inactive = "" if found.status == "active" else f" (answers 404 while {found.status})"
    for label, value in (("email", found.email), ("name", found.name), ("status", found.status),
                         ("filter", Filter.of(found).describe()), ("cadence", cadence_wording(found)),
                         ("created", found.created_at.isoformat() if found.created_at else ""),
                         ("feed", feed_url + inactive), ("feed (RSS)", feed_url_rss + inactive)):
        click.echo(f"{label + ':':<12}{value}")


@subscribers.command("rotate-feed")
@click.argument("email")
@pass_app
@handle_errors
def subscribers_rotate_feed(app: AppContext, email: str) -> None:
    """Give EMAIL's private feed a new address; the old one then answers 404, like any unknown one.

    For a feed address that got out. The next emails and the preferences page show the new one.

    \b
    newsletter subscribers rotate-feed ada@example.org
    """
    from newsletter.links import private_feed_url
    from newsletter.store import Store

    with Store.from_settings(app.settings) as store:
        found = _stored_subscriber(store, email)
        token = store.rotate_feed_token(found.id)
    click.echo(f"new feed address for {found.email}: {private_feed_url(app.settings, token)}")


@subscribers.command("preview")
@click.argument("email")
@click.option("--days", type=click.IntRange(1, 3660), default=14, show_default=True,
              help="Calendar days up to the newest digest.")
@click.option("--category", "categories", multiple=True, help="Preview with these categories instead (repeatable).")
@click.option("--keyword", "keywords", multiple=True, help="Preview with these keywords instead (repeatable).")
@click.option("--exclude", "excluded", multiple=True, help="Preview with these excluded keywords instead (repeatable).")
@click.option("--author", "authors", multiple=True, help="Preview following these authors instead (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"days\": [{\"date\", \"papers\": [...]}]}.")
@pass_app
@handle_errors
def subscribers_preview(app: AppContext, email: str, days: int, categories: tuple[str, ...],
                        keywords: tuple[str, ...], excluded: tuple[str, ...], authors: tuple[str, ...],
                        as_json: bool) -> None:
    """Show which papers of the last --days days EMAIL's filter selects, each with why, and the count per day.

    --category, --keyword, --exclude and --author each replace that part of the stored filter, to
    try a filter before saving it (nothing is saved). A followed author's papers are selected
    whatever the other parts say. Each paper's id, title and reasons ("category Computer Vision",
    "keyword diffusion in the summary", "author Jane Doe") come from the filter the emails and the
    private feed use.

    \b
    newsletter subscribers preview ada@example.org --days 14
    newsletter subscribers preview ada@example.org --keyword diffusion --author "Jane Doe" --json
    """
    from dataclasses import replace

    from newsletter.preview import preview, preview_as_dict
    from newsletter.render import count_label
    from newsletter.selection import Filter
    from newsletter.store import Store
    from newsletter.subscribers import SubscriberChange, apply_change

    change = SubscriberChange(categories=list(categories) or None, keywords=list(keywords) or None,
                              excluded_keywords=list(excluded) or None)
    with Store.from_settings(app.settings) as store:
        tried = apply_change(_stored_subscriber(store, email), change, app.settings.categories.names)
        filt = Filter.of(replace(tried, authors=list(authors)) if authors else tried)
        found = preview(store, filt, days)
    if as_json:
        echo_json(preview_as_dict(found))
        return
    for day in found:
        click.echo(f"{day.date.isoformat()}: {count_label(len(day.papers))}")
        for item in day.papers:
            click.echo(f"  {item.paper.arxiv_id}  {item.paper.title}")
            click.echo(f"      {'; '.join(item.reasons)}")
    total = sum(len(day.papers) for day in found)
    click.echo(f"{count_label(total)} over {len(found)} digest days for {filt.describe()}")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
@handle_errors
def subscribers_import(app: AppContext, file: Path) -> None:
    """Add or update subscribers from a CSV file, the format `export` writes.

    The header names the columns: email (required), name, categories, keywords, excluded, status,
    cadence (daily or weekly), weekday (mon ... sun) and authors; `;` separates the items of a list
    (Computer Vision;Multi-Modal). A column the file lacks keeps the stored values.

    Running it twice changes nothing. Bad rows are reported with their line; the others still go in,
    and the exit status is 1. An import never changes a stored subscriber's status.

    Example:

    \b
      newsletter subscribers import examples/subscribers.csv
    """
    from newsletter.store import Store
    from newsletter.subscriber_csv import import_csv

    with Store.from_settings(app.settings) as store:
        report = import_csv(store, file, app.settings.categories.names)
    for error in report.errors:
        click.secho(f"error: {error}", fg="red", err=True)
    click.echo(f"{file}: {report.added} added, {report.changed} changed, {report.unchanged} unchanged"
               + (f", {len(report.errors)} rejected" if report.errors else ""))
    if report.errors:
        sys.exit(1)


@subscribers.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@pass_app
@handle_errors
def subscribers_export(app: AppContext, output: Path | None) -> None:
    """Write every subscriber as CSV in the format `import` reads (all nine columns, whatever the status).

    Example:

    \b
      newsletter subscribers export --output subscribers-backup.csv
    """
    from newsletter.store import Store
    from newsletter.subscriber_csv import write_csv

    with Store.from_settings(app.settings) as store:
        found = store.subscribers(status=None)
    if output is None:
        write_csv(found, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as fh:
        count = write_csv(found, fh)
    click.echo(f"wrote {plural(count, 'subscriber')} to {output}", err=True)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Write what would go out to the outbox; send and record nothing.")
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD",
              help="Day to send. Default: the newest ingested.")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dry-run folder. Default: [email] outbox.")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery report as JSON (not with --dry-run).")
@click.option("--plan-only", is_flag=True,
              help="Record the day's messages and renditions for `newsletter worker` processes; send nothing.")
@pass_app
@handle_errors
def send(app: AppContext, dry_run: bool, date: dt.date | None, outbox: Path | None, as_json: bool,
         plan_only: bool) -> None:
    """Email every edition due on the day to every active subscriber, each filtered to their categories.

    The editions due on DATE: the daily edition for daily readers, a weekly edition for weekly
    readers whose weekday DATE is (the days since their last digest edition), and an alert for each
    new paper by an author a reader follows (marked in their digest instead when it is in it).
    Each message in plan.json names its "edition" (key, kind, first_day, last_day) and the
    "reasons" each paper is in it.

    Examples: newsletter send --dry-run --date 2026-11-23; newsletter send --json

    With --dry-run, writes OUTBOX/DATE/plan.json, one .eml per message (one sample per rendition
    above [email] sample_threshold recipients) and an index.html preview, then prints the plan.
    Running it again gives the same plan.

    Without --dry-run, delivers over [smtp] and records every message in the store: a rerun (after
    a crash, a pause or 4xx replies) sends only what is still due, and a second send started by
    mistake never mails anyone twice. Exits 1 when messages failed, were left for the next run or
    have an unknown outcome, another send's messages are past their lease, or the run paused;
    `newsletter status` shows where each day stands. With --json, prints the report (counts,
    problems, paused) as JSON on stdout, with the same exit codes.

    With --plan-only, records the messages and each rendition in the store and stops: `newsletter
    worker` processes, on any machines, deliver them (newsletter send --plan-only --date 2026-11-23).
    """
    if dry_run:
        if as_json or plan_only:
            raise click.UsageError("--json and --plan-only are for a real send; a dry run writes "
                                   "OUTBOX/DATE/plan.json instead")
        send_dry_run(app.settings, date, outbox)
    else:
        send_for_real(app.settings, date, as_json, plan_only)


def send_for_real(settings: Settings, date: dt.date | None, as_json: bool = False, plan_only: bool = False) -> None:
    """Deliver over [smtp], recording each message in the delivery log; a rerun continues where one stopped."""
    from newsletter.dispatch.delivery import leases_statement, summary_line
    from newsletter.dispatch.send import DaySend
    from newsletter.store import Store

    with Store.from_settings(settings) as store:
        day_send = DaySend(settings, store, date)
        plan = day_send.plan
        if not as_json:  # with --json they are in it, as "warnings"
            echo_warnings(plan.warnings)
        due = day_send.prepare()
        if plan_only:
            if as_json:
                echo_json({"date": plan.date.isoformat(), "planned": len(plan.messages),
                           "renditions": len(plan.renditions), "due": due,
                           "already_sent": day_send.report.already_sent, "warnings": plan.warnings})
            else:
                click.echo(f"Planned {plan.date.isoformat()}: {plural(len(plan.messages), 'message')} in "
                           f"{plural(len(plan.renditions), 'rendition')}, " + (
                               f"{due} due; `newsletter worker` sends them." if due else
                               f"none due ({day_send.report.already_sent} sent before)."))
            return
        if due == 0:
            report = day_send.report
            held = leases_statement(report)
            if as_json:
                echo_json({**report.as_dict(), "warnings": plan.warnings})
            else:
                click.echo(f"Nothing to send for {plan.date.isoformat()}: {report.already_sent} of "
                           f"{report.planned} planned messages were already sent" + (f"; {held}" if held else "")
                           + ". See `newsletter status`.")
            if not report.ok:
                sys.exit(1)
            return
        with progress_bar(due, f"Sending {plan.date.isoformat()}", as_json, show_eta=True) as bar:
            report = day_send.deliver(on_message=lambda _outcome: bar.update(1))
    if as_json:
        echo_json({**report.as_dict(), "warnings": plan.warnings})
    else:
        click.echo(summary_line(report))
        shown = 20
        for email, reply in report.problems[:shown]:
            click.echo(f"  {email}: {reply}", err=True)
        if len(report.problems) > shown:
            click.echo(f"  ... and {len(report.problems) - shown} more: see `newsletter status`", err=True)
    if report.paused is not None and not as_json:  # with --json, "paused" says it
        raise report.paused
    if not report.ok:
        sys.exit(1)


def send_dry_run(settings: Settings, date: dt.date | None, outbox: Path | None) -> None:
    from newsletter.dispatch.outbox import logged_states, write_outbox
    from newsletter.dispatch.plan import build_plan
    from newsletter.store import Store

    with Store.from_settings(settings) as store:
        plan = build_plan(settings, store, date)
        logged = logged_states(store, plan)
    folder = outbox if outbox is not None else settings.resolve(settings.email.outbox)
    threshold = settings.email.sample_threshold
    with progress_bar(len(plan.messages), "Building messages", len(plan.messages) < 200) as bar:
        report = write_outbox(plan, folder, threshold, on_message=bar.update, logged=logged)
    echo_plan_summary(plan, report, threshold, logged)


def echo_plan_summary(plan: Any, report: Any, threshold: int, logged: Any) -> None:
    recipients = plan.recipients_per_rendition()
    click.echo(f"Dry run for {plan.date.isoformat()}: nothing was sent or recorded.")
    rows = [("Recipients", str(len({m.subscriber.email for m in plan.messages}))),
            ("Messages", str(len(plan.messages))), ("Editions", str(len(plan.editions))),
            ("Renditions", str(len(plan.renditions))), ("Skipped", str(len(plan.skipped)))]
    if report.left_out:  # the rest were sent (or otherwise settled) by earlier sends: see left_out_line
        rows.insert(2, ("Going out now", str(report.going_out)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value:>7}")
    per_edition = Counter(m.edition.key for m in plan.messages)
    if plan.editions:
        click.echo("\n  Edition                                          Kind    Recipients")
        for key, edition in plan.editions.items():
            click.echo(f"  {key:<48} {edition.kind:<7} {per_edition[key]:>10}")
    if plan.renditions:
        click.echo("\n  Rendition                                        Papers  Recipients")
        for key, rendition in plan.renditions.items():
            label = rendition.describe()
            label = label if len(label) <= 48 else label[:47] + "…"
            click.echo(f"  {label:<48} {len(rendition.papers):>6}  {recipients.get(key, 0):>10}")
    echo_why(plan, logged)
    reasons: dict[str, int] = {}
    for skipped in plan.skipped:
        reasons[skipped.reason] = reasons.get(skipped.reason, 0) + 1
    if reasons:
        click.echo("\n  Skipped because                                            Subscribers")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            click.echo(f"  {reason if len(reason) <= 58 else reason[:57] + '…':<58} {count:>11}")
    click.echo("")
    if report.left_out:
        click.echo(left_out_line(report))
    if report.sampled:
        click.echo(f"{report.going_out} recipients is above sample_threshold ({threshold}): wrote one sample "
                   f".eml per rendition ({report.written}), not one per recipient.")
    else:
        click.echo(f"Wrote {report.written} .eml file{'s' if report.written != 1 else ''}.")
    click.echo(f"Plan: {report.plan_file}")
    if report.index_file is not None:
        click.echo(f"Preview: {report.index_file}")
    echo_warnings(plan.warnings)


@cli.command()
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", help="Only this day. Default: every day.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@handle_errors
def status(app: AppContext, date: dt.date | None, as_json: bool) -> None:
    """Show which daemon leads the schedule and the sends paused in the last day (when several share the
    store), the last ingest's health when it had warnings, errors or layout drift; then, per day, how
    many messages are in each delivery state, then the same per edition when the day sent more than
    its daily edition (daily/DAY, weekly/FIRST..LAST, alert/ARXIV_ID), the failures with the
    server's reply, and the days noted as having no issue (with the reason). With --json, all of it:
    {"schedule", "paused", "last_ingest", "days": [...]}; a day that sent more than its daily edition
    also has "editions": {KEY: {STATE: COUNT}}.

    Example: newsletter status --date 2026-11-19 --json"""
    from newsletter.store import Store

    with Store.from_settings(app.settings) as store:
        found = status_of(store, None if date is None else [date], app.settings.smtp.relay)
    if as_json:
        echo_json(found)
        return
    echo_status(found, date)


def status_of(store: Store, dates: list[dt.date] | None, relay: str) -> dict[str, Any]:
    """What `newsletter status` shows, as `status --json` prints it: the schedule's leader, the current
    relay pauses (``relay``: the one [smtp] names), the last ingest's summary, then the days."""
    from newsletter.clock import as_utc
    from newsletter.store.deliveries import DELIVERY_STATES

    last_ingest = store.last_ingest_run()
    counts = store.delivery_counts(dates)
    per_edition = store.edition_counts(dates)
    notes = store.no_issue_notes(dates)
    days = sorted(set(counts) | set(notes), reverse=True)
    return {
        **shared_state(store, relay),
        "last_ingest": None if last_ingest is None else {"finished_at": as_utc(last_ingest[0]).isoformat(),
                                                         **last_ingest[1]},
        "days": [{
            "date": day.isoformat(),
            "counts": {state: counts.get(day, {}).get(state, 0) for state in DELIVERY_STATES},
            "problems": [{"email": p.email, "state": p.state, "attempts": p.attempts, "reply": p.reply}
                         for p in store.delivery_problems(day)],
            "no_issue": notes.get(day),
            **({"editions": per_edition[day]} if several_editions(per_edition, day) else {}),
        } for day in days],
    }


def echo_status(found: dict[str, Any], date: dt.date | None) -> None:
    from newsletter.store.deliveries import DELIVERY_STATES

    for line in shared_state_lines(found):
        click.echo(line)
    if found["last_ingest"] is not None:
        echo_ingest_health(found["last_ingest"])
    if not found["days"]:
        click.echo("nothing sent yet" + (f" for {date.isoformat()}" if date else ""))
        return
    for day in found["days"]:
        if day["no_issue"] is not None:
            click.echo(f"{day['date']}  no issue: {day['no_issue']}")
        if any(day["counts"].values()):
            shown = ", ".join(f"{n} {state}" for state in DELIVERY_STATES if (n := day["counts"][state]))
            click.echo(f"{day['date']}  {shown}")
            for key, states in day.get("editions", {}).items():
                shown = ", ".join(f"{n} {state}" for state in DELIVERY_STATES if (n := states.get(state, 0)))
                click.echo(f"  {key}  {shown}")
        for p in day["problems"]:
            click.echo(f"    {p['state']:<9} {p['email']}  (attempts {p['attempts']}) {p['reply']}")


SHOWN_MESSAGES = 10
"""Up to this many messages, the dry run says which edition each is and why each paper is in it."""


LOG_STATE_WORDING = {"sent": "already sent", "sending": "held by another send", "failed": "failed, not sent again",
                     "bounced": "bounced, not sent again", "unknown": "outcome unknown, not sent again",
                     "cancelled": "cancelled, not sent again"}
"""How the dry run names a planned message that a send would not deliver now, by its delivery-log state."""


def left_out_line(report: Any) -> str:
    """`9 planned, 9 already sent: nothing would go out` (the delivery log of earlier sends)."""
    parts = [f"{n} {LOG_STATE_WORDING.get(state, state)}" for state, n in sorted(report.left_out.items())]
    going = "nothing would go out" if not report.going_out else f"{report.going_out} would go out now"
    return f"{report.planned} planned, {', '.join(parts)}: {going} (the delivery log of earlier sends)."


def echo_why(plan: Any, logged: Any) -> None:
    from newsletter.dispatch.outbox import log_state

    if not plan.messages or len(plan.messages) > SHOWN_MESSAGES:
        return
    click.echo("\n  Message (edition): paper (why)")
    for planned in plan.messages:
        state = log_state(planned, logged)
        mark = f": {LOG_STATE_WORDING.get(state, state)}" if state else ""
        click.echo(f"  {planned.subscriber.email} ({planned.edition.key}){mark}")
        for arxiv_id, why in plan.renditions[planned.rendition_key].reasons_for(planned).items():
            click.echo(f"    {arxiv_id} ({'; '.join(why)})")


def several_editions(per_edition: dict[dt.date, dict[str, Any]], day: dt.date) -> bool:
    """Whether the day sent more than its daily edition: a day of only that one says it once, as before editions."""
    return set(per_edition.get(day, {})) - {f"daily/{day.isoformat()}"} != set()


def shared_state(store: Store, relay: str) -> dict[str, Any]:
    """What daemons and sends sharing the store need watched: the schedule's leader (null when no daemon
    ever led), and the relays whose sending is paused now (paused in the last day, and no send since
    got a message through there). A pause of another relay than ``relay``, the one [smtp] names now
    (one changed after the pause, or another config's sharing the store), is marked: no send of
    this config will end it."""
    from newsletter.clock import utc_now
    from newsletter.dispatch.delivery import describe_owner
    from newsletter.store.leadership import SCHEDULE_LEADER

    now = utc_now()
    held = store.role_holder(SCHEDULE_LEADER)
    return {
        "schedule": None if held is None else {"holder": describe_owner(held[0]), "lease_until": held[1].isoformat(),
                                               "leading": held[1] > now},
        "paused": [{"relay": paused, "paused_at": paused_at.isoformat(), "reason": reason,
                    "configured": paused == relay}
                   for paused, paused_at, reason in store.relay_pauses(now - dt.timedelta(days=1))],
    }


def shared_state_lines(found: dict[str, Any]) -> list[str]:
    lines = []
    if (leader := found["schedule"]) is not None:
        until = dt.datetime.fromisoformat(leader["lease_until"])
        lines.append(f"schedule: led by {leader['holder']}, lease until {until:%Y-%m-%d %H:%M:%S} UTC"
                     if leader["leading"] else
                     f"schedule: no leader; {leader['holder']} let its lease run out at {until:%H:%M:%S} UTC")
    for pause in found["paused"]:
        lines.append(f"sending to {pause['relay']} paused at "
                     f"{dt.datetime.fromisoformat(pause['paused_at']):%Y-%m-%d %H:%M} UTC: {pause['reason']}"
                     + ("" if pause["configured"] else
                        " (not the relay [smtp] names now: sends there do not end this pause)"))
    return lines


def echo_ingest_health(summary: dict[str, Any]) -> None:
    """`last ingest …` and, when a layout drifted, what and where (the warnings say file:line); nothing
    when the last ingest went cleanly, so that a healthy status stays about deliveries."""
    if not (summary["warnings"] or summary["errors"] or summary["drift"]):
        return
    papers = summary["papers"]
    finished_at = dt.datetime.fromisoformat(summary["finished_at"])
    click.echo(f"last ingest {finished_at:%Y-%m-%d %H:%M} UTC: {plural(summary['files'], 'file')}, "
               f"{papers['new']} new, {papers['updated']} updated, {papers['unchanged']} unchanged papers; "
               f"{plural(summary['warnings'], 'warning')}, {plural(summary['errors'], 'error')}")
    if summary["drift"]:
        kinds = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(summary["drift"].items()))
        shown = summary["drifted_files"][:5]
        more = len(summary["drifted_files"]) - len(shown)
        click.echo(f"  layout drift: {kinds} in {', '.join(shown)}" + (f" and {more} more" if more else "")
                   + "; `newsletter parse FILE` shows the warnings")


@cli.group()
def db() -> None:
    """The store's schema: which revision it is at, and upgrading it after installing a new release.

    \b
    Examples:
      newsletter db current
      newsletter db upgrade
    """


@db.command("current")
@pass_app
@handle_errors
def db_current(app: AppContext) -> None:
    """Print the store's schema revision and whether it matches this release; changes nothing.

    \b
    Example:
      $ newsletter db current
      sqlite:////srv/newsletter/var/newsletter.db: revision NNNN (head): up to date
    """
    from newsletter.config import store_url_source
    from newsletter.store import resolve_url, schema_state, shown_url

    settings = app.settings
    url = resolve_url(settings.store.url, settings.base_dir)
    click.echo(f"{shown_url(url)}: {schema_state(url, store_url_source(settings.path)).describe()}")


@db.command("upgrade")
@pass_app
@handle_errors
def db_upgrade(app: AppContext) -> None:
    """Bring the store's schema to this release's revision, keeping every row. Back the database up
    first. Run it once after installing a new release, before restarting `newsletter schedule`, `send`
    or `serve`: until then they refuse to open a store with an older schema. Safe to run again, and
    from several machines at once (one upgrades, the others find it done). A store made before
    revisions existed (a `schema_version` table) is adopted.

    \b
    Example:
      $ newsletter db upgrade
      upgraded from revision MMMM, older than this newsletter's head NNNN
      now at revision NNNN (head): up to date
    """
    from newsletter.config import store_url_source
    from newsletter.store import resolve_url, upgrade_schema

    settings = app.settings
    before, after = upgrade_schema(resolve_url(settings.store.url, settings.base_dir),
                                   store_url_source(settings.path))
    if before.status == "current":
        click.echo(f"already at {after.describe()}")
        return
    if before.status == "empty":
        click.echo(f"created the newsletter tables: now at {after.describe()}")
        return
    click.echo(f"upgraded from {before.describe()}")
    click.echo(f"now at {after.describe()}")


@cli.command()
@click.option("--host", default=None, help="Address to listen on. Default: [web] host (127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port. Default: [web] port (8080).")
@pass_app
@handle_errors
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the feeds, the archive, subscribing (double opt-in), one-click unsubscribing and preferences.

    Runs waitress until interrupted. Put it behind a reverse proxy for HTTPS and set [web]
    trusted_proxies (see README, "Serving"). Links in emails are built from [site] base_url, and the
    sender and this server must share the signing key ([web] secret_env or secret_file). A port in
    use exits 1.

    Example:

    \b
      newsletter serve --host 127.0.0.1 --port 8025
    """
    from newsletter.web import serve as run_server

    settings = app.settings
    host = host or settings.web.host
    port = port or settings.web.port
    run_server(settings, host, port)



@cli.command()
@pass_app
@handle_errors
def schedule(app: AppContext) -> None:
    """Run the daemon in the foreground: [schedule] publish ingests, writes the feeds and sends today's issue.

    Cron times are local to [schedule] timezone and fire once per local date across DST changes. A run
    missed within misfire_grace_time (downtime) is caught up once at start. When today's digest is
    missing, no older day is sent: it looks again every recheck_minutes until the deadline, then notes
    "no issue" (see `newsletter status`). SIGTERM or SIGINT finishes the message in flight and exits 0.
    Logs go to stderr.

    Example:

    \b
      newsletter schedule 2>> /var/log/newsletter.log
    """
    from newsletter.logs import configure_logging
    from newsletter.schedule import Daemon

    settings = app.settings
    configure_logging(settings.schedule.log_level)
    sys.exit(Daemon(settings).run())


@cli.command()
@click.option("--exit-when-idle", is_flag=True, help="Exit once nothing is due instead of waiting for more.")
@pass_app
@handle_errors
def worker(app: AppContext, exit_when_idle: bool) -> None:
    """Deliver the due messages of every open edition until stopped; run one or many, on any machines.

    A worker claims due deliveries of any planned edition in small leased batches (never two
    workers the same message), builds each message from its rendition stored in the database when
    the edition was planned (by `newsletter send`, `publish` or the daemon), sends it over [smtp]
    (on smtp.connections connections, within the rate limit and pauses every sender to the relay
    shares) and marks it sent after the server's 250. Refusals are handled as by `newsletter send`.
    A killed worker's messages are taken over when its lease runs out (at once by a worker on the
    same machine). SIGTERM or SIGINT finishes the message in flight and exits 0. Its memory does not
    grow with the number of subscribers.

    With --exit-when-idle, exits once a pass finds nothing to send: 0 when everything went out, 1
    when messages failed, were left for later or the sending paused.

    Examples: newsletter worker; newsletter worker --exit-when-idle
    """
    from newsletter.dispatch.delivery import summary_line
    from newsletter.dispatch.worker import Worker
    from newsletter.logs import configure_logging
    from newsletter.schedule import run_in_foreground_thread
    from newsletter.store import Store

    settings = app.settings
    configure_logging(settings.schedule.log_level)
    with Store.from_settings(settings) as store:
        sender = Worker(settings, store, exit_when_idle=exit_when_idle)
        report = run_in_foreground_thread(sender, sender.run)
    # A worker serves every open edition: no one day to name, and an idle pass found nothing, not "0 of" a day.
    if report.due:
        click.echo(f"worker: {summary_line(report, dated=False)}")
    else:
        click.echo("worker: sent 0" + ("" if report.paused else ": no message of any open edition was due"))
    for email, reply in report.problems[:20]:
        click.echo(f"  {email}: {reply}", err=True)
    if report.paused is not None:
        raise report.paused
    if exit_when_idle and not report.ok:  # stopped by a signal, a worker has done its job: exit 0
        sys.exit(1)


@cli.command()
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD",
              help="Issue date. Default: today in [schedule] timezone. Given explicitly, it also sends a "
                   "day noted as having no issue.")
@pass_app
@handle_errors
def publish(app: AppContext, date: dt.date | None) -> None:
    """Run the daemon's pipeline once (ingest, feeds, send DATE), for cron or systemd timers.

    Sends only DATE's digest, never an older one. A day noted "no issue" is skipped, unless --date
    names it: then its digest is sent anyway (e.g. after the digest came late). Exits 0 when the issue
    went out or a "no issue" note was recorded (empty digest, or no digest by [schedule] deadline); 1
    when the digest is not there yet (run it again before the deadline), a stage failed, or messages
    are still due.

    Example:

    \b
      newsletter publish --date 2026-11-20
    """
    from newsletter.calendar import zone
    from newsletter.logs import configure_logging
    from newsletter.publish import Publisher
    from newsletter.schedule import run_in_foreground_thread

    settings = app.settings
    configure_logging(settings.schedule.log_level)
    zone(settings.schedule.timezone)
    publisher = Publisher(settings)
    result = run_in_foreground_thread(publisher, lambda: publisher.publish(date, override_note=date is not None))
    click.echo(f"{result.date.isoformat()}: {result.summary()}")
    if not result.ok:
        sys.exit(1)

def main() -> None:
    cli(prog_name="newsletter")


def progress_bar(length: int, label: str, hidden: bool, show_eta: bool = False) -> ProgressBar[Any]:
    """A progress bar on stderr, only when stderr is a terminal: a log or a pipe gets no bar (click
    would still print its label there), and it is hidden with --json, so JSON never has it mixed in."""
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True, show_eta=show_eta,
                             hidden=hidden or not sys.stderr.isatty())


CONFIG_WARNINGS = "newsletter.config_warnings"
"""Where, in click's context meta, a --json command holds the config's warnings until its JSON is printed."""


def held_config_warnings() -> list[str] | None:
    """The config's warnings held for the JSON when the command prints JSON, else None (they go to stderr).

    On stderr they would come first and break `--json 2>&1 | jq` on every command run with the
    shipped config: an object printed by echo_json carries them as "config_warnings" instead."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.params.get("as_json"):
        return None
    return cast(list[str], ctx.meta.setdefault(CONFIG_WARNINGS, []))


def echo_json(data: dict[str, Any]) -> None:
    """Every --json output is an object, so that the config's warnings have a place in it."""
    held = held_config_warnings()
    if held:
        data = {**data, "config_warnings": held}
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def days_as_json(days: list[Day], warnings: list[ParseWarning], config_warnings: list[str]) -> str:
    """``parse --json``: ``{"days": [...], "warnings": [...]}`` indented, each paper on one line of its
    own, and the config's warnings when it has any (see held_config_warnings).

    A line per paper keeps the output readable in a pager and greppable, and lets the C encoder do
    the work: an indented ``json.dumps`` runs in pure Python and cost a third of the command. The
    pieces are joined once, at the end: the output is megabytes, and every join on the way copied it.
    """
    from newsletter.models import day_as_dict

    encode = json.JSONEncoder(ensure_ascii=False).encode
    pieces = ['{\n  "days": [']
    for number, day in enumerate(days):
        fields = day_as_dict(day)
        papers = cast(list[object], fields.pop("papers"))
        pieces.append(",\n    {" if number else "\n    {")
        for key, value in fields.items():
            pieces += ("\n      ", encode(key), ": ", encode(value), ",")
        pieces.append('\n      "papers": [')
        for paper_number, paper in enumerate(papers):
            pieces += (",\n        " if paper_number else "\n        ", encode(paper))
        pieces.append("\n      ]\n    }")
    pieces.append('\n  ],\n  "warnings": [')
    for number, warning in enumerate(warnings):  # a line each, as the papers
        pieces += (",\n    " if number else "\n    ",
                   encode({"file": warning.file, "line": warning.line, "message": warning.message}))
    pieces.append("\n  ]" if warnings else "]")
    if config_warnings:
        pieces += (',\n  "config_warnings": ', json.dumps(config_warnings, ensure_ascii=False))
    pieces.append("\n}")
    return "".join(pieces)


def echo_warnings(warnings: list[Any]) -> None:
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def echo_errors(errors: list[str]) -> None:
    for error in errors:
        click.secho(f"error: {error}", fg="red", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
