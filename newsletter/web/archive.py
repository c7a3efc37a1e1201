"""Every day's issue as a web page, in the email's own layout, kept in memory between re-ingests."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from newsletter import render
from newsletter.links import archive_url
from newsletter.selection import Filter
from newsletter.web.state import SiteState, strong_etag

_CSP_ARCHIVE = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'")
ARCHIVE_RECHECK_SECONDS = 60.0
"""An archive page is served from memory this long before the store is read again to see whether a
re-ingest changed its day, so that a cached page costs no database read."""


@dataclass
class _ArchiveEntry:
    fingerprint: str
    page: bytes
    etag: str
    checked_at: float
    """When the store was last asked whether the day changed (the app's clock)."""


def blueprint(ctx: SiteState) -> Blueprint:
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
        fresh = _ArchiveEntry(fingerprint, page, strong_etag(page), now)
        with archive_lock:
            archive_cache[date] = fresh
        return fresh

    return bp
