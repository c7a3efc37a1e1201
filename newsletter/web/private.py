"""Each subscriber's private feed: their own filter's papers, as Atom and RSS, at a secret URL.

``/private/TOKEN.atom`` (and ``.rss``) is computed on request from the store, never written to disk:
the feed window's papers are rendered once per store change (``feeds.load_window``, shared by every
private feed), and each feed's bytes and ETag are kept until the store or the subscriber's filter
changes. So a repeated request costs one small query (whose feed, and has the store changed), and a
conditional one answers 304 without building anything.

Every token that does not open an active subscriber's feed (rotated, forged, unknown, or the
subscriber unsubscribed or bounced) gets the one 404 page that every failing link gets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter.feeds import ATOM_TYPE, RSS_TYPE, FeedWindow, load_window, private_feed
from newsletter.links import PRIVATE_FEED_PATH, private_feed_url
from newsletter.models import Subscriber
from newsletter.selection import Filter
from newsletter.web.state import SiteState, strong_etag

MEDIA_TYPES = {"atom": ATOM_TYPE, "rss": RSS_TYPE}
BODY_CACHE_BYTES = 64 * 1024 * 1024
"""Feed bodies kept in memory, newest used first; ETags are kept for every feed regardless, so a
conditional request never needs the body."""


@dataclass(frozen=True)
class _Computed:
    filter: Filter
    etag: str


class PrivateFeeds:
    """The window and the computed feeds, valid for one store content marker at a time."""

    def __init__(self, ctx: SiteState) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._marker = ""
        self._window: FeedWindow | None = None
        self._computed: dict[tuple[str, str], _Computed] = {}
        self._bodies: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._body_bytes = 0

    def response(self, subscriber: Subscriber, marker: str, kind: str) -> BaseResponse:
        """The feed as of the store's content ``marker``."""
        key = (subscriber.feed_token, kind)
        filt = Filter.of(subscriber)
        with self._lock:
            if marker != self._marker:  # the store changed: everything computed before is stale
                self._marker, self._window = marker, None
                self._computed.clear()
                self._bodies.clear()
                self._body_bytes = 0
            computed = self._computed.get(key)
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
        if computed is not None and computed.filter == filt:  # else the filter changed since
            if request.if_none_match.contains_weak(computed.etag):
                return self._answer(b"", computed.etag, kind)  # make_conditional turns it into a 304
            if body is not None:
                return self._answer(body, computed.etag, kind)
        body = self._build(subscriber, filt, kind, marker)
        computed = _Computed(filt, strong_etag(body))
        self._keep(marker, key, computed, body)
        return self._answer(body, computed.etag, kind)

    def _answer(self, body: bytes, etag: str, kind: str) -> BaseResponse:
        response = Response(body, mimetype=MEDIA_TYPES[kind])
        response.set_etag(etag)  # strong: the hash of the bytes
        response.headers["Cache-Control"] = "private, max-age=300"  # a secret URL: no shared cache keeps it
        # No Last-Modified: no file's mtime says when this feed last changed, and the ETag does.
        return response.make_conditional(request)

    def _build(self, subscriber: Subscriber, filt: Filter, kind: str, marker: str) -> bytes:
        settings = self.ctx.settings
        return private_feed(settings, self._window_for(marker), filt, feed_id=str(subscriber.id),
                            url=private_feed_url(settings, subscriber.feed_token, ""), kind=kind)

    def _window_for(self, marker: str) -> FeedWindow:
        # One build at a time, so that the first requests after a store change build the window once;
        # requests for feeds already computed do not wait for it.
        with self._build_lock:
            with self._lock:
                if self._window is not None and marker == self._marker:
                    return self._window
            window = load_window(self.ctx.settings, self.ctx.store)
            with self._lock:
                if marker == self._marker:
                    self._window = window
            return window

    def _keep(self, marker: str, key: tuple[str, str], computed: _Computed, body: bytes) -> None:
        with self._lock:
            if marker != self._marker:
                return  # the store changed meanwhile: this feed is already stale
            self._computed[key] = computed
            if key in self._bodies:
                self._body_bytes -= len(self._bodies.pop(key))
            self._bodies[key] = body
            self._body_bytes += len(body)
            while self._body_bytes > BODY_CACHE_BYTES and len(self._bodies) > 1:
                _, dropped = self._bodies.popitem(last=False)
                self._body_bytes -= len(dropped)


def blueprint(ctx: SiteState) -> Blueprint:
    """The private feeds."""
    bp = Blueprint("private", __name__)
    feeds = PrivateFeeds(ctx)

    @bp.get(f"/{PRIVATE_FEED_PATH}/<token>.<any(atom, rss):kind>")
    def private(token: str, kind: str) -> BaseResponse:
        found = ctx.store.feed_reader(token)
        if found is None or found[0].status != "active":
            return ctx.invalid_link()
        subscriber, marker = found
        return feeds.response(subscriber, marker, kind)

    return bp
