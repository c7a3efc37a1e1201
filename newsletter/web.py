"""The web app behind `newsletter serve`: feeds, the archive, subscribing, unsubscribing, preferences.

A Flask app served by waitress. Pages are rendered by newsletter.render (one Jinja2 Environment,
autoescape on); the archive shows a day with the email's own template. No page carries a script,
and the Content-Security-Policy header forbids them.

No cookies and no sessions. Who may change a subscription is decided by the signed token in the
URL alone (newsletter.tokens): it reaches only the subscriber's mailbox and cannot be guessed. A
POST that a browser marks as coming from another site (Sec-Fetch-Site, Origin) is refused on top,
so a leaked link cannot be used by a form elsewhere; RFC 8058 one-click unsubscribing (a bare POST
from the mail provider, without a cookie) is exempt and must just work. GET never changes anything:
confirming and unsubscribing show a page with a button.

Nothing a page answers depends on whether an address is known: every failing token gets the same
404 page, and POST /subscribe answers alike whatever the address's state, leaving the store work
and the email to the mailer thread, after the response, so that its timing does not tell either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import logging
import math
import os
import resource
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, request, url_for
from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from newsletter import render, tokens
from newsletter.clock import utc_now
from newsletter.config import Settings
from newsletter.errors import InvalidSubscriberError, SubscriberExistsError
from newsletter.feeds import ATOM_TYPE, RSS_TYPE, feed_specs
from newsletter.logs import configure_logging
from newsletter.mail import archive_url, list_id, sender_domain, site_url
from newsletter.models import Subscriber
from newsletter.selection import Filter
from newsletter.store import Store
from newsletter.subscribers import check_categories, check_keywords, check_name, mailbox_key, normalize_email

log = logging.getLogger(__name__)

FEED_TYPES = {".atom": ATOM_TYPE, ".rss": RSS_TYPE, ".html": "text/html"}  # werkzeug adds the charset
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_BODY_BYTES = 64 * 1024
"""The largest request body: a form of a few fields. waitress answers 413 to larger ones before reading them."""
CONNECTION_LIMIT = 1000
"""Connections open at once. waitress's default (100) let 100 idle clients block every other one."""
IDLE_SECONDS = 30
"""A connection silent this long is closed (waitress's default, 120 s, kept a slow client's slot long)."""
# No script may run on any page. The archive shows the email's own layout, whose CSS sits in a
# <style> block and style attributes, so only its pages allow inline styles.
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'")
_CSP_ARCHIVE = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'")
KEYWORD_SEPARATOR = ","
ARCHIVE_RECHECK_SECONDS = 60.0
"""An archive page is served from memory this long before the store is read again to see whether a
re-ingest changed its day, so that a cached page costs no database read."""

Clock = Callable[[], float]


class SubscribeRateLimiter:
    """A token bucket per key (client address, or email address), held in this process's memory.

    Each key may spend ``burst`` requests at once, refilled at ``per_hour``. Several server
    processes each keep their own buckets, so the limits then apply per process.
    """

    MAX_KEYS = 50_000

    def __init__(self, burst: int, per_hour: float, clock: Clock = time.monotonic) -> None:
        self.burst = float(burst)
        self.rate = per_hour / 3600.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self.clock()
            level, since = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - since) * self.rate)
            if len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            if level < 1.0:
                self._buckets[key] = (level, now)
                return False
            self._buckets[key] = (level - 1.0, now)
            return True

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they behave exactly like absent ones."""
        for key, (level, since) in list(self._buckets.items()):
            if level + (now - since) * self.rate >= self.burst:
                del self._buckets[key]


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
        from newsletter.delivery import envelope_sender
        from newsletter.transport import SmtpTransport, smtp_password

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


@dataclass(frozen=True)
class CategoryChoice:
    name: str
    checked: bool


@dataclass
class _ArchiveEntry:
    fingerprint: str
    page: bytes
    etag: str
    checked_at: float
    """When the store was last asked whether the day changed (the app's clock)."""


def _static(name: str) -> bytes:
    return resources.files("newsletter.templates").joinpath("web", name).read_bytes()


def _strong_etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


@dataclass
class _Context:
    """What every route needs: the config, the store, the link signer, the mailer and the page renderer."""

    settings: Settings
    store: Store
    signer: tokens.Tokens
    mailer: Mailer
    clock: Clock

    @property
    def site_title(self) -> str:
        return self.settings.site.title

    @property
    def taxonomy(self) -> list[str]:
        return self.settings.categories.names

    def page(self, template: str, status: int = 200, *, private: bool = False, **context: Any) -> Response:
        html = render.render_page(f"web/{template}", site_title=self.site_title, home_url=url_for("site.index"),
                                  archive_index_url=url_for("archive.archive_index"),
                                  feeds_url=url_for("site.feed_index"), stylesheet_url=url_for("site.stylesheet"),
                                  **context)
        response = Response(html, status=status, mimetype="text/html")
        if private:  # pages reached by a token: not for shared caches, and not kept
            response.headers["Cache-Control"] = "no-store"
        return response

    def message(self, title: str, text: str, status: int = 200, **context: Any) -> Response:
        return self.page("message.html", status, private=True, title=title, text=text, **context)

    def invalid_link(self) -> Response:
        """The one answer to every token that does not lead to a subscriber, whatever the reason."""
        return self.message("This link does not work",
                            "It may be mistyped, or it has expired. To subscribe again, use the form on the home "
                            "page.", 404)

    def subscriber_for(self, purpose: str, token: str) -> Subscriber | None:
        stored = self.signer.read(purpose, token)
        return self.store.get_subscriber_by_token(stored) if stored else None

    def choices(self, selected: Sequence[str]) -> list[CategoryChoice]:
        return [CategoryChoice(name, name in selected) for name in self.taxonomy]

    def preferences_url(self, subscriber: Subscriber) -> str:
        return url_for("subscriber.preferences", token=self.signer.make(tokens.PREFERENCES, subscriber.token))


def create_app(settings: Settings, *, store: Store | None = None, mailer: Mailer | None = None,
               clock: Clock = time.time) -> Flask:
    """The app for this config. ``clock`` (epoch seconds) dates and ages confirmation links and the
    archive pages kept in memory."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if settings.web.trusted_proxies:
        n = settings.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]
    store = store if store is not None else Store.from_settings(settings)
    ctx = _Context(settings, store, tokens.Tokens(tokens.load_secret(settings), clock=clock),
                   mailer if mailer is not None else Mailer(settings), clock)
    _register_hooks(app, ctx)
    app.register_blueprint(_site_blueprint(ctx))
    app.register_blueprint(_archive_blueprint(ctx))
    app.register_blueprint(_subscribing_blueprint(ctx))
    app.register_blueprint(_subscriber_blueprint(ctx))
    return app


def _register_hooks(app: Flask, ctx: _Context) -> None:
    @app.before_request
    def refuse_nul() -> None:
        if "\x00" in request.path:  # no file or route has one; the OS would refuse it deep inside a view
            raise BadRequest("The address holds a NUL character.")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # token URLs must not leak to other sites
        response.headers["X-Frame-Options"] = "DENY"
        location = response.headers.get("Location")
        if location:
            response.headers["Location"] = _local_location(location)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = ctx.message(error.name, error.description or "", error.code or 500)
        for name, value in error.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response


def _local_location(location: str) -> str:
    """A redirect as a path on this site. Werkzeug builds slash redirects from the Host header, which
    the client chooses: an absolute Location would send readers wherever that header pointed."""
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/")  # never //host: a browser reads that as another site
    return path + (f"?{parts.query}" if parts.query else "")


def _site_blueprint(ctx: _Context) -> Blueprint:
    """The home page, the stylesheet and the feed files."""
    bp = Blueprint("site", __name__)
    settings = ctx.settings
    feeds_dir = settings.resolve(settings.feeds.dir)
    stylesheet_bytes = _static("site.css")
    stylesheet_etag = _strong_etag(stylesheet_bytes)
    feed_etags: dict[tuple[str, int, int, int], str] = {}

    @bp.get("/")
    def index() -> Response:
        return index_page(ctx)

    @bp.get("/static/site.css")
    def stylesheet() -> BaseResponse:
        response = Response(stylesheet_bytes, mimetype="text/css")
        response.set_etag(stylesheet_etag)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response.make_conditional(request)

    @bp.get("/feeds/", defaults={"name": "index.html"})
    @bp.get("/feeds/<path:name>")
    def feed(name: str) -> BaseResponse:
        media_type = FEED_TYPES.get(Path(name).suffix)
        joined = safe_join(str(feeds_dir), name)
        if media_type is None or joined is None or any(part.startswith(".") for part in Path(name).parts):
            raise NotFound()
        try:
            with open(joined, "rb") as fh:  # stat and read one open file: a rebuild renames, never rewrites
                info = os.fstat(fh.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise NotFound()
                data = fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound() from None
        key = (joined, info.st_ino, info.st_mtime_ns, info.st_size)
        etag = feed_etags.get(key)
        if etag is None:
            etag = feed_etags[key] = _strong_etag(data)
        response = Response(data, mimetype=media_type)
        response.set_etag(etag)  # strong: the hash of the bytes
        response.last_modified = dt.datetime.fromtimestamp(int(info.st_mtime), dt.UTC)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response.make_conditional(request)

    @bp.get("/feeds")
    def feed_index() -> Response:
        return Response(status=301, headers={"Location": url_for("site.feed", name="")})

    return bp

def index_page(ctx: _Context, status: int = 200, error: str = "", email: str = "", name: str = "",
               selected: Sequence[str] = ()) -> Response:
    settings = ctx.settings
    feeds = [{"title": spec.title, "subtitle": spec.subtitle,
              "atom": url_for("site.feed", name=f"{spec.path}.atom"),
              "rss": url_for("site.feed", name=f"{spec.path}.rss") if settings.feeds.rss else None}
             for spec in feed_specs(settings)]
    latest = ctx.store.latest_date()
    return ctx.page("index.html", status, description=settings.site.description, feeds=feeds, error=error,
                    email=email, name=name, categories=ctx.choices(selected),
                    subscribe_url=url_for("subscribing.subscribe"),
                    latest_url=url_for("archive.archive_day", day=latest.isoformat()) if latest else None,
                    latest_label=latest.isoformat() if latest else "")


def _archive_blueprint(ctx: _Context) -> Blueprint:
    """Every day's issue as a web page."""
    bp = Blueprint("archive", __name__)
    settings = ctx.settings
    archive_cache: dict[dt.date, _ArchiveEntry] = {}
    archive_lock = threading.Lock()

    @bp.get("/archive/")
    def archive_index() -> Response:
        days = [{"date": d, "label": render.date_label(d), "url": url_for("archive.archive_day", day=d.isoformat())}
                for d in sorted(ctx.store.dates(), reverse=True)]
        return ctx.page("archive_index.html", days=days)

    @bp.get("/archive/<day>")
    def archive_day(day: str) -> BaseResponse:
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            raise NotFound() from None
        if date.isoformat() != day:
            raise NotFound()
        cached = archive_page(date)
        response = Response(cached.page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = _CSP_ARCHIVE
        response.set_etag(cached.etag)
        return response.make_conditional(request)

    def archive_page(date: dt.date) -> _ArchiveEntry:
        """The day's page from memory; the store is read again only every ARCHIVE_RECHECK_SECONDS, and
        the page rendered again only when the day's papers changed (a re-ingest)."""
        now = ctx.clock()
        with archive_lock:
            cached = archive_cache.get(date)
        if cached is not None and 0 <= now - cached.checked_at < ARCHIVE_RECHECK_SECONDS:
            return cached
        stored = ctx.store.get_day(date)
        if stored is None:
            with archive_lock:
                archive_cache.pop(date, None)
            raise NotFound()
        fingerprint = hashlib.sha256(repr((stored.papers, stored.note)).encode()).hexdigest()
        if cached is not None and cached.fingerprint == fingerprint:
            cached.checked_at = now
            return cached
        context, _ordered = render.digest_context(
            site_title=ctx.site_title, sender=settings.email.sender, date=date, papers=stored.papers,
            filt=Filter(), category_order=ctx.taxonomy, archive_url=archive_url(settings, date),
            postal_address=settings.email.postal_address, personal={}, note=stored.note)
        page = render.render_page("web/archive_day.html", **context, home_url=url_for("site.index"),
                                  archive_index_url=url_for("archive.archive_index")).encode()
        fresh = _ArchiveEntry(fingerprint, page, _strong_etag(page), now)
        with archive_lock:
            archive_cache[date] = fresh
        return fresh

    return bp

# -- subscribing -------------------------------------------------------------------------------------


def _subscribing_blueprint(ctx: _Context) -> Blueprint:
    """The subscribe form's POST and the confirmation links."""
    bp = Blueprint("subscribing", __name__)
    web = ctx.settings.web
    per_ip = SubscribeRateLimiter(web.subscribe_ip_burst, web.subscribe_ip_per_hour)
    per_mailbox = SubscribeRateLimiter(web.subscribe_address_burst, web.subscribe_address_per_hour)
    requests = SubscriptionRequests(ctx)

    @bp.post("/subscribe")
    def subscribe() -> Response:
        """Answers alike for every address: the store and the email are the mailer thread's work, done
        after this response, so neither the answer nor its timing tells whether an address is known."""
        form = request.form
        raw_email, raw_name = form.get("email", ""), form.get("name", "")
        wanted = form.getlist("category")
        if not per_ip.allow(request.remote_addr or "unknown"):
            return _too_many(ctx, "Please wait a while before subscribing again.", 3600 / web.subscribe_ip_per_hour)
        try:
            address = normalize_email(raw_email)
            name = check_name(raw_name)
            categories = check_categories(wanted, ctx.taxonomy)
        except InvalidSubscriberError as exc:
            return index_page(ctx, 400, exc.message, raw_email, raw_name, [c for c in wanted if c in ctx.taxonomy])
        if not ctx.mailer.has_room():
            return _too_many(ctx, "We have too many requests to handle right now. Please try again in a few "
                             "minutes.", 300, 503)
        if ctx.mailer.failing:
            response = ctx.message("We could not send email just now",
                                   f"Our mail server did not answer when we last tried. Your request for {address} "
                                   "is kept and we keep trying for the next hour. If no email comes, please "
                                   "subscribe again later.")
        else:
            response = ctx.message("Check your inbox",
                                   f"If {address} can receive our email, a message will reach it in the next few "
                                   "minutes. Follow the link in it within 48 hours to confirm your subscription.")
        # Over the per-mailbox limit the answer stays the same, nothing is stored and no email goes
        # out, so the limit tells nobody whether an address was tried before. The work is queued
        # once the response is handed over (see Mailer), so it cannot slow that response down.
        if per_mailbox.allow(mailbox_key(address)):
            response.call_on_close(lambda: ctx.mailer.submit_job(lambda: requests.handle(address, name, categories)))
        return response

    @bp.get("/confirm/<token>")
    def confirm_page(token: str) -> Response:
        """Only a page with a button: mail scanners and previews open links, and must change nothing."""
        found = requests.read_confirmation(token)
        if found is None:
            return ctx.invalid_link()
        asked, subscriber = found
        if subscriber.status == "active":
            return ctx.message("You are already subscribed",
                               f"{subscriber.email} already gets {ctx.site_title}; this link has been used.")
        wanted = Filter(categories=frozenset(c for c in asked.categories if c in ctx.taxonomy))
        return ctx.page("confirm.html", private=True, email=subscriber.email, filter_description=wanted.describe(),
                        action_url=url_for("subscribing.confirm", token=token))

    @bp.post("/confirm/<token>")
    def confirm(token: str) -> Response:
        if _cross_site(ctx.settings):
            return _forbidden_cross_site(ctx)
        found = requests.read_confirmation(token)
        confirmed = requests.confirm(*found) if found is not None else None
        if confirmed is None:
            return ctx.invalid_link()
        return ctx.message("Subscription confirmed",
                           f"{confirmed.email} will get {ctx.site_title} ({Filter.of(confirmed).describe()}).",
                           link_url=ctx.preferences_url(confirmed), link_text="Change your preferences")

    return bp

def _too_many(ctx: _Context, text: str, retry_after: float, status: int = 429) -> Response:
    response = ctx.message("Too many requests", text, status)
    response.headers["Retry-After"] = str(int(retry_after) + 1)
    return response


def _cross_site(settings: Settings) -> bool:
    """Whether a browser says this POST comes from a page of another site (a form posting here).

    Browsers send Sec-Fetch-Site, or at least Origin, with every form POST; clients that send neither
    (curl, mail providers' one-click unsubscribes) are not browsers carrying another site's form.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = {_origin(request.host_url), _origin(settings.site.base_url)}
    return origin.rstrip("/").lower() not in own


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _forbidden_cross_site(ctx: _Context) -> Response:
    return ctx.message("This form belongs to another site",
                       "Changes to a subscription can only be made from this site's own pages.", 403)


class SubscriptionRequests:
    """The store work behind subscribing: it runs on the mailer thread, after the response."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    def handle(self, address: str, name: str, categories: list[str]) -> tuple[str, bytes]:
        """Store a new pending subscriber, or renew a pending one; the email to send to ``address``."""
        subscriber = self._pending_or_stored(address, name, categories)
        return address, self._site_email(subscriber, categories, name)

    def _pending_or_stored(self, address: str, name: str, categories: list[str]) -> Subscriber:
        store = self.ctx.store
        stored = store.get_subscriber(address)
        if stored is None:
            try:
                return store.add_subscriber(Subscriber(email=address, name=name, categories=categories,
                                                       status="pending"))
            except SubscriberExistsError:  # the same address, submitted twice at once
                stored = store.get_subscriber(address)
                assert stored is not None
        if stored.status == "pending":
            return store.renew_pending(replace(stored, name=name or stored.name, categories=categories))
        # Active, unsubscribed or bounced: nothing changes until the address owner confirms.
        return stored

    def _site_email(self, subscriber: Subscriber, categories: list[str], name: str) -> bytes:
        """The confirmation email, or for an active subscriber a note with their preferences link."""
        ctx, settings = self.ctx, self.ctx.settings
        if subscriber.status == "active":
            subject = f"You are already subscribed to {ctx.site_title}"
            link = site_url(settings, f"preferences/{ctx.signer.make(tokens.PREFERENCES, subscriber.token)}")
            body = render.render_page("web/already_subscribed_email.txt", site_title=ctx.site_title, link=link)
        else:
            subject = f"Confirm your subscription to {ctx.site_title}"
            assert subscriber.id is not None
            asked = tokens.ConfirmRequest(subscriber.token, categories, name,
                                          ctx.store.status_change_count(subscriber.id))
            body = render.render_page(
                "web/confirm_email.txt", site_title=ctx.site_title,
                link=site_url(settings, f"confirm/{ctx.signer.make_confirm(asked)}"),
                filter_description=Filter(categories=frozenset(categories)).describe())
        msg = EmailMessage()
        msg["From"] = settings.email.sender
        msg["To"] = subscriber.email  # no display name: it came from an anonymous form
        msg["Subject"] = subject
        msg["Date"] = format_datetime(dt.datetime.fromtimestamp(ctx.clock(), dt.UTC))
        msg["Message-ID"] = make_msgid(domain=sender_domain(settings))
        msg["List-Id"] = list_id(settings)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body)
        return msg.as_bytes(policy=policy.SMTP)

    def read_confirmation(self, token: str) -> tuple[tokens.ConfirmRequest, Subscriber] | None:
        asked = self.ctx.signer.read_confirm(token)
        subscriber = self.ctx.store.get_subscriber_by_token(asked.token) if asked else None
        if asked is None or subscriber is None or subscriber.id is None:
            return None
        if subscriber.status != "active" and self.ctx.store.status_change_count(subscriber.id) != asked.status_changes:
            return None  # used, or the reader unsubscribed since: a new request makes a new link
        return asked, subscriber

    def confirm(self, asked: tokens.ConfirmRequest, subscriber: Subscriber) -> Subscriber | None:
        # The taxonomy may have changed in the 48 hours: keep the categories that still exist.
        categories = [c for c in asked.categories if c in self.ctx.taxonomy]
        return self.ctx.store.confirm_subscriber(replace(subscriber, categories=categories,
                                                         name=asked.name or subscriber.name), asked.status_changes)


def remove_stale_pending(settings: Settings, store: Store) -> Callable[[], None]:
    """The mailer's housekeeping: forget who asked more than [web] pending_days ago and never confirmed."""
    def run() -> None:
        cutoff = utc_now() - dt.timedelta(days=settings.web.pending_days)
        removed = store.remove_pending_before(cutoff)
        if removed:
            log.info("removed %d subscriber(s) who did not confirm within %d days", removed, settings.web.pending_days)
    return run


# -- unsubscribing and preferences -------------------------------------------------------------------


def _subscriber_blueprint(ctx: _Context) -> Blueprint:
    """What a subscriber's links lead to: unsubscribing and preferences."""
    bp = Blueprint("subscriber", __name__)
    @bp.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> Response:
        """Only a page with a button: link scanners and previews fetch GET URLs, and must change nothing."""
        subscriber = ctx.subscriber_for(tokens.UNSUBSCRIBE, token)
        if subscriber is None:
            return ctx.invalid_link()
        return ctx.page("unsubscribe.html", private=True, email=subscriber.email, state=subscriber.status,
                        action_url=url_for("subscriber.unsubscribe", token=token))

    @bp.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> Response:
        """RFC 8058 one-click (body ``List-Unsubscribe=One-Click``) and the page's button: both just POST.
        No origin check: stopping mail is never an attack on the reader, and one-click must just work."""
        subscriber = ctx.subscriber_for(tokens.UNSUBSCRIBE, token)
        if subscriber is None:
            return ctx.invalid_link()
        if subscriber.status != "unsubscribed":
            ctx.store.set_subscriber_status(subscriber.email, "unsubscribed")
        return unsubscribed_page(ctx, subscriber)

    @bp.route("/preferences/<token>", methods=["GET", "POST"])
    def preferences(token: str) -> Response:
        subscriber = ctx.subscriber_for(tokens.PREFERENCES, token)
        if subscriber is None:
            return ctx.invalid_link()
        if request.method == "GET":
            return preferences_page(ctx, subscriber, token)
        if _cross_site(ctx.settings):
            return _forbidden_cross_site(ctx)
        if request.mimetype not in FORM_TYPES:
            return preferences_page(ctx, subscriber, token, error="The form could not be read; nothing changed.",
                                    status=400)
        try:
            change = PreferencesForm(ctx, subscriber, request.form).apply()
        except InvalidSubscriberError as exc:
            return preferences_page(ctx, subscriber, token, error=exc.message, status=400)
        if change.subscriber.status == "unsubscribed" and change.subscriber.status != subscriber.status:
            return unsubscribed_page(ctx, change.subscriber)
        if change.subscriber.token != subscriber.token:
            token = ctx.signer.make(tokens.PREFERENCES, change.subscriber.token)
        return preferences_page(ctx, change.subscriber, token, notice=change.notice,
                                ask_unsubscribe=change.ask_unsubscribe)

    return bp

def unsubscribed_page(ctx: _Context, subscriber: Subscriber) -> Response:
    return ctx.message("You are unsubscribed", f"{subscriber.email} will get no more email from {ctx.site_title}.",
                       link_url=ctx.preferences_url(subscriber), link_text="Changed your mind? Subscribe again")


def preferences_page(ctx: _Context, subscriber: Subscriber, token: str, *, notice: str = "", error: str = "",
                     status: int = 200, ask_unsubscribe: bool = False) -> Response:
    # Every box ticked for "all categories": unticking them all then means what it looks like.
    return ctx.page("preferences.html", status, private=True, subscriber=subscriber, notice=notice, error=error,
                    ask_unsubscribe=ask_unsubscribe, categories=ctx.choices(subscriber.categories or ctx.taxonomy),
                    categories_hint="(each one ticked: all of them)",
                    keywords=f"{KEYWORD_SEPARATOR} ".join(subscriber.keywords),
                    excluded=f"{KEYWORD_SEPARATOR} ".join(subscriber.excluded_keywords),
                    filter_description=Filter.of(subscriber).describe(),
                    action_url=url_for("subscriber.preferences", token=token))


@dataclass
class PreferenceChange:
    subscriber: Subscriber
    notice: str = ""
    ask_unsubscribe: bool = False
    """The reader unticked every category: ask whether they mean to stop everything."""


class PreferencesForm:
    """One POST of the preferences page. A field the POST does not carry is left as it is: the
    categories change when it carries one, or says it showed the boxes (``categories_shown``), since
    a form with every box unticked sends no ``category`` at all."""

    def __init__(self, ctx: _Context, subscriber: Subscriber, form: Any) -> None:
        self.ctx, self.subscriber, self.form = ctx, subscriber, form
        self.store = ctx.store

    def apply(self) -> PreferenceChange:
        action = self.form.get("action", "save")
        if action == "unsubscribe":
            self.store.set_subscriber_status(self.subscriber.email, "unsubscribed")
            return PreferenceChange(replace(self.subscriber, status="unsubscribed"))
        if action == "resubscribe":
            # The token reached this mailbox, which is what a confirmation would prove.
            return PreferenceChange(self.store.update_subscriber(replace(self.subscriber, status="active")),
                                    "Welcome back: you are subscribed.")
        if action == "rotate":
            renewed = self.store.update_subscriber(replace(self.subscriber, token=""))  # the store makes a new one
            return PreferenceChange(renewed, "Your links are renewed: the old preferences and unsubscribe links "
                                             "no longer work. Keep the address of this page; new emails carry the "
                                             "new links.")
        if "drop" in self.form:
            return self._drop(self.form["drop"])
        return self._save()

    def _drop(self, dropped: str) -> PreferenceChange:
        current = self.subscriber.categories or self.ctx.taxonomy
        remaining = [c for c in current if c != dropped]
        if not remaining:  # the only category they had: that is stopping everything, so ask
            return PreferenceChange(self.subscriber, ask_unsubscribe=True)
        changed = replace(self.subscriber, categories=check_categories(remaining, self.ctx.taxonomy))
        return PreferenceChange(self.store.update_subscriber(changed), f"You will get no more papers in {dropped}.")

    def _save(self) -> PreferenceChange:
        form, changed = self.form, self.subscriber
        if "name" in form:
            changed = replace(changed, name=check_name(form["name"]))
        if "keywords" in form:
            changed = replace(changed, keywords=check_keywords(_split(form["keywords"])))
        if "excluded" in form:
            changed = replace(changed, excluded_keywords=check_keywords(_split(form["excluded"]), "excluded keyword"))
        ask = False
        if "categories_shown" in form or "category" in form:
            categories = check_categories(form.getlist("category"), self.ctx.taxonomy)
            ask = not categories and self.subscriber.status == "active"
            if categories:
                changed = replace(changed, categories=[] if len(categories) == len(self.ctx.taxonomy) else categories)
        if changed == self.subscriber:
            return PreferenceChange(self.subscriber, "" if ask else "Nothing changed.", ask)
        saved = self.store.update_subscriber(changed)
        return PreferenceChange(saved, "Your other changes are saved." if ask else "Your preferences are saved.", ask)


def _split(field: str) -> list[str]:
    return [part.strip() for part in field.split(KEYWORD_SEPARATOR) if part.strip()]


def server_options(settings: Settings) -> dict[str, Any]:
    """waitress settings. waitress drops X-Forwarded-* headers by default; with [web] trusted_proxies
    set it passes them on, and ProxyFix (see create_app) believes only the last that many hops.

    The limits are this app's: bodies are small forms, pages are answered in milliseconds, so a
    connection that stays silent is closed soon, and many idle ones cannot take every slot."""
    return {"threads": settings.web.threads, "ident": "newsletter",
            "clear_untrusted_proxy_headers": settings.web.trusted_proxies == 0,
            "max_request_body_size": MAX_BODY_BYTES, "max_request_header_size": 64 * 1024,
            "connection_limit": _connection_limit(), "channel_timeout": IDLE_SECONDS, "cleanup_interval": 5,
            "asyncore_use_poll": True}  # select() cannot watch a socket numbered 1024 or above


def _connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer when the process may not open that many files (each one is a socket)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(16, min(CONNECTION_LIMIT, soft - 64))  # room for the store, the mailer and the log


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # waitress stops on it as on Ctrl+C: the requests in progress are finished


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app under waitress until SIGINT or SIGTERM; then send the confirmation emails still
    queued (waiting at most Mailer.DRAIN_SECONDS) and close the store."""
    from waitress.server import create_server  # where types-waitress declares it

    configure_logging("INFO")  # one timestamped line per event, waitress's and Flask's too
    log.info("serving %s on http://%s:%d/ (Ctrl+C to stop)", settings.site.title, host, port)
    store = Store.from_settings(settings)
    try:
        mailer = Mailer(settings, housekeeping=remove_stale_pending(settings, store))
        try:
            server = create_server(create_app(settings, store=store, mailer=mailer), host=host, port=port,
                                   **server_options(settings))
            # SIGINT too, explicitly, even when inherited as ignored (a shell script's `serve &`),
            # for which Python installs no KeyboardInterrupt: SIGINT always stops it, as `schedule`.
            previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                server.run()  # returns on SystemExit, once waitress has finished the requests in progress
            finally:
                for sig, handler in previous.items():  # a second signal while mailing acts as it did before
                    signal.signal(sig, handler)
                server.close()
        finally:
            mailer.close()
    finally:
        store.close()
