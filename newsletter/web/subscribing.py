"""Subscribing: the form's POST (rate-limited, answered alike for every address) and the
confirmation links. The store work and the email are the mailer thread's, after the response."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import Blueprint, Response, request, url_for

from newsletter import tokens
from newsletter.clock import utc_now
from newsletter.config import Settings
from newsletter.dispatch.site_mail import already_subscribed_email, confirmation_email
from newsletter.errors import InvalidSubscriberError, SubscriberExistsError
from newsletter.links import site_url
from newsletter.models import Cadence, Subscriber, Weekday
from newsletter.selection import Filter
from newsletter.store import Store
from newsletter.subscribers import (
    check_cadence,
    check_categories,
    check_name,
    check_weekday,
    mailbox_key,
    normalize_email,
)
from newsletter.web.guards import cross_site, forbidden_cross_site
from newsletter.web.site import index_page
from newsletter.web.state import Clock, SiteState

log = logging.getLogger("newsletter.web")  # the name `serve` has always logged under


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


def blueprint(ctx: SiteState) -> Blueprint:
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
        raw_cadence, raw_weekday = form.get("cadence", "daily"), form.get("weekday", "mon")
        if not per_ip.allow(request.remote_addr or "unknown"):
            return _too_many(ctx, "Please wait a while before subscribing again.", 3600 / web.subscribe_ip_per_hour)
        try:
            address = normalize_email(raw_email)
            name = check_name(raw_name)
            categories = check_categories(wanted, ctx.taxonomy)
            how_often = HowOften(check_cadence(raw_cadence), check_weekday(raw_weekday))
        except InvalidSubscriberError as exc:
            return index_page(ctx, 400, exc.message, raw_email, raw_name, [c for c in wanted if c in ctx.taxonomy],
                              raw_cadence, raw_weekday)
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
            response.call_on_close(lambda: ctx.mailer.submit_job(
                lambda: requests.handle(address, name, categories, how_often)))
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
        how_often = "every day" if asked.cadence != "weekly" else f"once a week, on {asked.weekday}"
        return ctx.page("confirm.html", private=True, email=subscriber.email,
                        filter_description=f"{wanted.describe()}, {how_often}",
                        action_url=url_for("subscribing.confirm", token=token))

    @bp.post("/confirm/<token>")
    def confirm(token: str) -> Response:
        if cross_site(ctx.settings):
            return forbidden_cross_site(ctx)
        found = requests.read_confirmation(token)
        confirmed = requests.confirm(*found) if found is not None else None
        if confirmed is None:
            return ctx.invalid_link()
        return ctx.message("Subscription confirmed",
                           f"{confirmed.email} will get {ctx.site_title} ({Filter.of(confirmed).describe()}).",
                           link_url=ctx.preferences_url(confirmed), link_text="Change your preferences")

    return bp


def _too_many(ctx: SiteState, text: str, retry_after: float, status: int = 429) -> Response:
    response = ctx.message("Too many requests", text, status)
    response.headers["Retry-After"] = str(int(retry_after) + 1)
    return response


@dataclass(frozen=True)
class HowOften:
    """How often the form asked for the email."""

    cadence: Cadence
    weekday: Weekday


class SubscriptionRequests:
    """The store work behind subscribing: it runs on the mailer thread, after the response."""

    def __init__(self, ctx: SiteState) -> None:
        self.ctx = ctx

    def handle(self, address: str, name: str, categories: list[str], how_often: HowOften) -> tuple[str, bytes]:
        """Store a new pending subscriber, or renew a pending one; the email to send to ``address``."""
        subscriber = self._pending_or_stored(address, name, categories)
        return address, self._site_email(subscriber, categories, name, how_often)

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

    def _site_email(self, subscriber: Subscriber, categories: list[str], name: str, how_often: HowOften) -> bytes:
        """The confirmation email, or for an active subscriber a note with their preferences link."""
        ctx, settings = self.ctx, self.ctx.settings
        sent_at = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC)
        if subscriber.status == "active":
            link = site_url(settings, f"preferences/{ctx.signer.make(tokens.PREFERENCES, subscriber.token)}")
            return already_subscribed_email(settings, subscriber.email, link, sent_at)
        assert subscriber.id is not None
        asked = tokens.ConfirmRequest(subscriber.token, categories, name, ctx.store.status_change_count(subscriber.id),
                                      how_often.cadence, how_often.weekday)
        link = site_url(settings, f"confirm/{ctx.signer.make_confirm(asked)}")
        return confirmation_email(settings, subscriber.email, link, Filter(categories=frozenset(categories)),
                                  sent_at)

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
        try:
            cadence, weekday = check_cadence(asked.cadence), check_weekday(asked.weekday)
        except InvalidSubscriberError:  # signed by us, so only an older version's link could differ
            cadence, weekday = "daily", "mon"
        return self.ctx.store.confirm_subscriber(replace(subscriber, categories=categories, cadence=cadence,
                                                         weekday=weekday, name=asked.name or subscriber.name),
                                                 asked.status_changes)


def remove_stale_pending(settings: Settings, store: Store) -> Callable[[], None]:
    """The mailer's housekeeping: forget who asked more than [web] pending_days ago and never confirmed."""
    def run() -> None:
        cutoff = utc_now() - dt.timedelta(days=settings.web.pending_days)
        removed = store.remove_pending_before(cutoff)
        if removed:
            log.info("removed %d subscriber(s) who did not confirm within %d days", removed, settings.web.pending_days)
    return run
