"""The web app behind `newsletter serve`: feeds, the archive, subscribing, unsubscribing, preferences.

A Flask app served by waitress. Pages are rendered by newsletter.render (one Jinja2 Environment,
autoescape on); the archive shows a day with the email's own template. No page carries a script,
and the Content-Security-Policy header forbids them.

No cookies and no sessions. Who may change a subscription is decided by the signed token in the
URL alone (newsletter.tokens): it reaches only the subscriber's mailbox and cannot be guessed, so
it is at once the authentication and the CSRF protection of the unsubscribe and preference forms
(a cross-site form cannot post to a URL it does not know). That is also what RFC 8058 one-click
unsubscribing asks for: a bare POST to the List-Unsubscribe URL, without a cookie, must work.

Nothing a page answers depends on whether an address is known: every failing token gets the same
404 page, and POST /subscribe answers "check your inbox" whatever the address's state, sending its
email from a background thread so that the response time does not tell either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask, Response, request, url_for
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from newsletter import render, tokens
from newsletter.config import Settings
from newsletter.errors import InvalidSubscriberError, SubscriberExistsError
from newsletter.feeds import ATOM_TYPE, RSS_TYPE, feed_specs
from newsletter.mail import archive_url, list_id, sender_domain, site_url
from newsletter.models import Subscriber
from newsletter.selection import Filter
from newsletter.store import Store
from newsletter.subscribers import check_categories, check_keywords, check_name, email_key, normalize_email

log = logging.getLogger(__name__)

FEED_TYPES = {".atom": ATOM_TYPE, ".rss": RSS_TYPE, ".html": "text/html; charset=utf-8"}
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


class Mailer:
    """Sends the site's own emails (confirmations) one at a time from a background thread.

    Sending in the background keeps POST /subscribe equally fast whether it sent an email or not.
    A failed send is logged; the subscriber can ask again from the form.
    """

    DRAIN_SECONDS = 20.0
    """How long ``close`` waits for the queued emails, well within systemd's default stop timeout (90 s)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._unsent = 0  # submitted and not yet tried
        self._unsent_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="newsletter-mailer", daemon=True)
        self._thread.start()

    def submit(self, recipient: str, message: bytes) -> None:
        with self._unsent_lock:
            self._unsent += 1
        self._queue.put((recipient, message))

    def _run(self) -> None:
        from newsletter.delivery import envelope_sender
        from newsletter.transport import SmtpTransport, smtp_password

        while (item := self._queue.get()) is not None:
            recipient, message = item
            transport = None
            try:
                transport = SmtpTransport(self.settings.smtp, smtp_password(self.settings.smtp))
                transport.send(envelope_sender(self.settings), recipient, message)
            except Exception:  # one failed email must not stop the thread that sends the next
                log.exception("could not send the site email to %s", recipient)
            finally:
                if transport is not None:
                    transport.close()
                with self._unsent_lock:
                    self._unsent -= 1

    def close(self, timeout: float = DRAIN_SECONDS) -> int:
        """Send what is queued, waiting at most ``timeout`` seconds; returns how many emails were left unsent."""
        self._queue.put(None)
        self._thread.join(timeout)
        with self._unsent_lock:
            unsent = self._unsent
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


def create_app(settings: Settings, *, store: Store | None = None, mailer: Mailer | None = None,
               clock: Clock = time.time) -> Flask:
    """The app for this config. ``clock`` (epoch seconds) dates and ages confirmation links and the
    archive pages kept in memory."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    if settings.web.trusted_proxies:
        n = settings.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]

    store = store if store is not None else Store.from_settings(settings)
    signer = tokens.Tokens(tokens.load_secret(settings), clock=clock)
    mailer = mailer if mailer is not None else Mailer(settings)
    web = settings.web
    per_ip = SubscribeRateLimiter(web.subscribe_ip_burst, web.subscribe_ip_per_hour)
    per_address = SubscribeRateLimiter(web.subscribe_address_burst, web.subscribe_address_per_hour)
    taxonomy = settings.categories.names
    feeds_dir = settings.resolve(settings.feeds.dir)
    site = settings.site
    stylesheet_bytes = _static("site.css")
    stylesheet_etag = _strong_etag(stylesheet_bytes)
    archive_cache: dict[dt.date, _ArchiveEntry] = {}
    archive_lock = threading.Lock()
    feed_etags: dict[tuple[str, int, int, int], str] = {}

    def page(template: str, status: int = 200, *, private: bool = False, **context: Any) -> Response:
        html = render.render_page(f"web/{template}", site_title=site.title, home_url=url_for("index"),
                                  archive_index_url=url_for("archive_index"), feeds_url=url_for("feed_index"),
                                  stylesheet_url=url_for("stylesheet"), **context)
        response = Response(html, status=status, mimetype="text/html")
        if private:  # pages reached by a token: not for shared caches, and not kept
            response.headers["Cache-Control"] = "no-store"
        return response

    def message(title: str, text: str, status: int = 200, **context: Any) -> Response:
        return page("message.html", status, private=True, title=title, text=text, **context)

    def invalid_link() -> Response:
        """The one answer to every token that does not lead to a subscriber, whatever the reason."""
        return message("This link does not work",
                       "It may be mistyped, or it has expired. To subscribe again, use the form on the home page.",
                       404)

    def subscriber_for(purpose: str, token: str) -> Subscriber | None:
        stored = signer.read(purpose, token)
        return store.get_subscriber_by_token(stored) if stored else None

    def choices(selected: Sequence[str]) -> list[CategoryChoice]:
        return [CategoryChoice(name, name in selected) for name in taxonomy]

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # token URLs must not leak to other sites
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return message(error.name, error.description or "", error.code or 500)

    # -- site pages ------------------------------------------------------------------------------

    def index_page(status: int = 200, error: str = "", email: str = "", name: str = "",
                   selected: Sequence[str] = ()) -> Response:
        feeds = [{"title": spec.title, "subtitle": spec.subtitle,
                  "atom": url_for("feed", name=f"{spec.path}.atom"),
                  "rss": url_for("feed", name=f"{spec.path}.rss") if settings.feeds.rss else None}
                 for spec in feed_specs(settings)]
        latest = store.latest_date()
        return page("index.html", status, description=site.description, feeds=feeds, error=error,
                    email=email, name=name, categories=choices(selected), subscribe_url=url_for("subscribe"),
                    latest_url=url_for("archive_day", day=latest.isoformat()) if latest else None,
                    latest_label=latest.isoformat() if latest else "")

    @app.get("/")
    def index() -> Response:
        return index_page()

    @app.get("/static/site.css")
    def stylesheet() -> BaseResponse:
        response = Response(stylesheet_bytes, mimetype="text/css")
        response.set_etag(stylesheet_etag)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response.make_conditional(request)

    @app.get("/feeds/", defaults={"name": "index.html"})
    @app.get("/feeds/<path:name>")
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

    @app.get("/feeds")
    def feed_index() -> Response:
        return Response(status=301, headers={"Location": url_for("feed", name="")})

    @app.get("/archive/")
    def archive_index() -> Response:
        days = [{"date": d, "label": render.date_label(d), "url": url_for("archive_day", day=d.isoformat())}
                for d in sorted(store.dates(), reverse=True)]
        return page("archive_index.html", days=days)

    @app.get("/archive/<day>")
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
        now = clock()
        with archive_lock:
            cached = archive_cache.get(date)
        if cached is not None and 0 <= now - cached.checked_at < ARCHIVE_RECHECK_SECONDS:
            return cached
        stored = store.get_day(date)
        if stored is None:
            with archive_lock:
                archive_cache.pop(date, None)
            raise NotFound()
        fingerprint = hashlib.sha256(repr((stored.papers, stored.note)).encode()).hexdigest()
        if cached is not None and cached.fingerprint == fingerprint:
            cached.checked_at = now
            return cached
        context, _ordered = render.digest_context(
            site_title=site.title, sender=settings.email.sender, date=date, papers=stored.papers,
            filt=Filter(), category_order=taxonomy, archive_url=archive_url(settings, date),
            postal_address=settings.email.postal_address, personal={}, note=stored.note)
        page = render.render_page("web/archive_day.html", **context, home_url=url_for("index"),
                                  archive_index_url=url_for("archive_index")).encode()
        fresh = _ArchiveEntry(fingerprint, page, _strong_etag(page), now)
        with archive_lock:
            archive_cache[date] = fresh
        return fresh

    # -- subscribing -----------------------------------------------------------------------------

    @app.post("/subscribe")
    def subscribe() -> Response:
        form = request.form
        raw_email, raw_name = form.get("email", ""), form.get("name", "")
        wanted = form.getlist("category")
        if not per_ip.allow(request.remote_addr or "unknown"):
            response = message("Too many requests", "Please wait a while before subscribing again.", 429)
            response.headers["Retry-After"] = str(int(3600 / web.subscribe_ip_per_hour) + 1)
            return response
        try:
            address = normalize_email(raw_email)
            name = check_name(raw_name)
            categories = check_categories(wanted, taxonomy)
        except InvalidSubscriberError as exc:
            return index_page(400, exc.message, raw_email, raw_name, [c for c in wanted if c in taxonomy])
        # Over the per-address limit, the answer stays the same, nothing is stored and no email goes
        # out, so the limit tells nobody whether an address was tried before, and repeated posts
        # cannot rewrite a pending subscriber's choices.
        if per_address.allow(email_key(address)):
            subscriber = _pending_or_stored(address, name, categories)
            mailer.submit(address, _site_email(subscriber, categories, name))
        return message("Check your inbox",
                       f"If {address} can receive our email, a message is on its way to it. "
                       "Follow the link in it within 48 hours to confirm your subscription.")

    def _pending_or_stored(address: str, name: str, categories: list[str]) -> Subscriber:
        stored = store.get_subscriber(address)
        if stored is None:
            try:
                return store.add_subscriber(Subscriber(email=address, name=name, categories=categories,
                                                       status="pending"))
            except SubscriberExistsError:  # the same address, submitted twice at once
                stored = store.get_subscriber(address)
                assert stored is not None
        if stored.status == "pending":
            return store.update_subscriber(replace(stored, name=name or stored.name, categories=categories))
        # Active, unsubscribed or bounced: nothing changes until the address owner follows the link.
        return stored

    def _site_email(subscriber: Subscriber, categories: list[str], name: str) -> bytes:
        """The confirmation email, or for an active subscriber a note with their preferences link."""
        if subscriber.status == "active":
            subject = f"You are already subscribed to {site.title}"
            link = site_url(settings, f"preferences/{signer.make(tokens.PREFERENCES, subscriber.token)}")
            body = render.render_page("web/already_subscribed_email.txt", site_title=site.title, link=link)
        else:
            subject = f"Confirm your subscription to {site.title}"
            token = signer.make_confirm(tokens.ConfirmRequest(subscriber.token, categories, name))
            body = render.render_page(
                "web/confirm_email.txt", site_title=site.title, link=site_url(settings, f"confirm/{token}"),
                filter_description=Filter(categories=frozenset(categories)).describe())
        msg = EmailMessage()
        msg["From"] = settings.email.sender
        msg["To"] = subscriber.email  # no display name: it came from an anonymous form
        msg["Subject"] = subject
        msg["Date"] = format_datetime(dt.datetime.fromtimestamp(clock(), dt.UTC))
        msg["Message-ID"] = make_msgid(domain=sender_domain(settings))
        msg["List-Id"] = list_id(settings)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body)
        return msg.as_bytes(policy=policy.SMTP)

    @app.get("/confirm/<token>")
    def confirm(token: str) -> Response:
        asked = signer.read_confirm(token)
        subscriber = store.get_subscriber_by_token(asked.token) if asked else None
        if asked is None or subscriber is None:
            return invalid_link()
        if subscriber.status != "active":
            # The taxonomy may have changed in the 48 hours: keep the categories that still exist.
            categories = [c for c in asked.categories if c in taxonomy]
            subscriber = store.update_subscriber(replace(subscriber, status="active", categories=categories,
                                                         name=asked.name or subscriber.name))
        return message("Subscription confirmed",
                       f"{subscriber.email} will get {site.title} ({Filter.of(subscriber).describe()}).",
                       link_url=url_for("preferences", token=signer.make(tokens.PREFERENCES, subscriber.token)),
                       link_text="Change your preferences")

    # -- unsubscribing and preferences -----------------------------------------------------------

    @app.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> Response:
        """Only a page with a button: link scanners and previews fetch GET URLs, and must change nothing."""
        subscriber = subscriber_for(tokens.UNSUBSCRIBE, token)
        if subscriber is None:
            return invalid_link()
        return page("unsubscribe.html", private=True, email=subscriber.email, state=subscriber.status,
                    action_url=url_for("unsubscribe", token=token))

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> Response:
        """RFC 8058 one-click (body ``List-Unsubscribe=One-Click``) and the page's button: both just POST."""
        subscriber = subscriber_for(tokens.UNSUBSCRIBE, token)
        if subscriber is None:
            return invalid_link()
        if subscriber.status != "unsubscribed":
            store.set_subscriber_status(subscriber.email, "unsubscribed")
        return unsubscribed_page(subscriber)

    def unsubscribed_page(subscriber: Subscriber) -> Response:
        return message("You are unsubscribed", f"{subscriber.email} will get no more email from {site.title}.",
                       link_url=url_for("preferences", token=signer.make(tokens.PREFERENCES, subscriber.token)),
                       link_text="Changed your mind? Subscribe again")

    @app.route("/preferences/<token>", methods=["GET", "POST"])
    def preferences(token: str) -> Response:
        subscriber = subscriber_for(tokens.PREFERENCES, token)
        if subscriber is None:
            return invalid_link()
        notice, error, status = "", "", 200
        if request.method == "POST":
            try:
                subscriber, notice = _apply_preferences(subscriber, request.form)
            except InvalidSubscriberError as exc:
                error, status = exc.message, 400
            if subscriber.status == "unsubscribed" and not error:
                return unsubscribed_page(subscriber)
        return page("preferences.html", status, private=True, subscriber=subscriber, notice=notice, error=error,
                    categories=choices(subscriber.categories),
                    keywords=f"{KEYWORD_SEPARATOR} ".join(subscriber.keywords),
                    excluded=f"{KEYWORD_SEPARATOR} ".join(subscriber.excluded_keywords),
                    filter_description=Filter.of(subscriber).describe(), action_url=url_for("preferences", token=token))

    def _apply_preferences(subscriber: Subscriber, form: Any) -> tuple[Subscriber, str]:
        action = form.get("action", "save")
        if action == "unsubscribe":
            store.set_subscriber_status(subscriber.email, "unsubscribed")
            return replace(subscriber, status="unsubscribed"), ""
        if action == "resubscribe":
            # The token reached this mailbox, which is what a confirmation would prove.
            return store.update_subscriber(replace(subscriber, status="active")), "Welcome back: you are subscribed."
        if "drop" in form:
            dropped = form["drop"]
            current = subscriber.categories or taxonomy
            remaining = [c for c in current if c != dropped]
            if not remaining:  # the only category they had: stopping it is stopping everything
                store.set_subscriber_status(subscriber.email, "unsubscribed")
                return replace(subscriber, status="unsubscribed"), ""
            changed = replace(subscriber, categories=check_categories(remaining, taxonomy))
            return store.update_subscriber(changed), f"You will get no more papers in {dropped}."
        categories = check_categories(form.getlist("category"), taxonomy)
        changed = replace(
            subscriber,
            name=check_name(form.get("name", "")),
            categories=[] if len(categories) == len(taxonomy) else categories,
            keywords=check_keywords(_split(form.get("keywords", ""))),
            excluded_keywords=check_keywords(_split(form.get("excluded", "")), "excluded keyword"),
        )
        return store.update_subscriber(changed), "Your preferences are saved."

    return app


def _split(field: str) -> list[str]:
    return [part.strip() for part in field.split(KEYWORD_SEPARATOR) if part.strip()]


def server_options(settings: Settings) -> dict[str, Any]:
    """waitress settings. waitress drops X-Forwarded-* headers by default; with [web] trusted_proxies
    set it passes them on, and ProxyFix (see create_app) believes only the last that many hops."""
    return {"threads": settings.web.threads, "ident": "newsletter",
            "clear_untrusted_proxy_headers": settings.web.trusted_proxies == 0}


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # waitress stops on it as on Ctrl+C: the requests in progress are finished


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app under waitress until SIGINT or SIGTERM; then send the confirmation emails still
    queued (waiting at most Mailer.DRAIN_SECONDS) and close the store."""
    from waitress import create_server

    logging.basicConfig()  # as waitress.serve does: its warnings (e.g. a full task queue) reach stderr
    store = Store.from_settings(settings)
    try:
        mailer = Mailer(settings)
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
