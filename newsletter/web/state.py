"""What every route needs, in one object: the config, the store, the link signer, the mailer, the
page renderer and the clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Response, url_for

from newsletter import render, tokens
from newsletter.config import Settings
from newsletter.dispatch.site_mail import Mailer
from newsletter.models import Subscriber
from newsletter.store import Store

Clock = Callable[[], float]


@dataclass(frozen=True)
class CategoryChoice:
    name: str
    checked: bool


def static_file(name: str) -> bytes:
    return (render.shipped_templates() / "web" / name).read_bytes()


def strong_etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


@dataclass
class SiteState:
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
