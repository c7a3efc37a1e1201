"""The home page (with the subscribe form), the stylesheet and the feed files."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from newsletter.feeds import ATOM_TYPE, OPML_PATH, RSS_TYPE, feed_specs
from newsletter.subscribers import WEEKDAY_CHOICES
from newsletter.web.state import SiteState, static_file, strong_etag

# werkzeug adds the charset; OPML has no registered type, text/x-opml is what readers expect.
FEED_TYPES = {".atom": ATOM_TYPE, ".rss": RSS_TYPE, ".html": "text/html", Path(OPML_PATH).suffix: "text/x-opml"}


def blueprint(ctx: SiteState) -> Blueprint:
    """The home page, the stylesheet and the feed files."""
    bp = Blueprint("site", __name__)
    settings = ctx.settings
    feeds_dir = settings.resolve(settings.feeds.dir)
    stylesheet_bytes = static_file("site.css")
    stylesheet_etag = strong_etag(stylesheet_bytes)
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
            etag = feed_etags[key] = strong_etag(data)
        response = Response(data, mimetype=media_type)
        response.set_etag(etag)  # strong: the hash of the bytes
        response.last_modified = dt.datetime.fromtimestamp(int(info.st_mtime), dt.UTC)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response.make_conditional(request)

    @bp.get("/feeds")
    def feed_index() -> Response:
        return Response(status=301, headers={"Location": url_for("site.feed", name="")})

    return bp


def index_page(ctx: SiteState, status: int = 200, error: str = "", email: str = "", name: str = "",
               selected: Sequence[str] = (), cadence: str = "daily", weekday: str = "mon") -> Response:
    settings = ctx.settings
    feeds = [{"title": spec.title, "subtitle": spec.subtitle,
              "atom": url_for("site.feed", name=f"{spec.path}.atom"),
              "rss": url_for("site.feed", name=f"{spec.path}.rss") if settings.feeds.rss else None}
             for spec in feed_specs(settings)]
    latest = ctx.store.latest_date()
    return ctx.page("index.html", status, description=settings.site.description, feeds=feeds, error=error,
                    email=email, name=name, categories=ctx.choices(selected), cadence=cadence, weekday=weekday,
                    weekdays=WEEKDAY_CHOICES,
                    subscribe_url=url_for("subscribing.subscribe"), opml_url=url_for("site.feed", name=OPML_PATH),
                    latest_url=url_for("archive.archive_day", day=latest.isoformat()) if latest else None,
                    latest_label=latest.isoformat() if latest else "")
