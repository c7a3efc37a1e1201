"""Links and identities: the site's URLs, the subscriber's signed links, List-Id, Message-ID, sender.

A leaf module so that the emails, the feeds and the web pages name the same addresses: links in
emails and feeds are built from ``[site] base_url``, never from a request's host.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from email.utils import parseaddr
from urllib.parse import quote

from newsletter import tokens
from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.models import Edition, Subscriber

MESSAGE_ID_SALT = "newsletter-message-id-v1"
"""Not a secret: it only keeps our ids apart from other hashes of the same address and date."""


def site_url(settings: Settings, path: str) -> str:
    """``path`` under [site] base_url. Links in emails use it, never the request's host, which may be
    an internal name behind a proxy."""
    return f"{settings.site.base_url.rstrip('/')}/{path.lstrip('/')}"


def archive_url(settings: Settings, date: dt.date) -> str:
    return site_url(settings, f"archive/{date.isoformat()}")


def archive_index_url(settings: Settings) -> str:
    """The archive's list of days: the web page of an edition of several days."""
    return site_url(settings, "archive/")


def subscriber_links(settings: Settings, subscriber: Subscriber) -> dict[str, str]:
    """The subscriber's personal links, each with a token signed for its purpose (newsletter.tokens);
    the routes in newsletter.web serve these paths."""
    signed = tokens.for_settings(settings)
    return {
        purpose: site_url(settings, f"{purpose}/{quote(signed.make(purpose, subscriber.token), safe='')}")
        for purpose in (tokens.UNSUBSCRIBE, tokens.PREFERENCES)
    }


PRIVATE_FEED_PATH = "private"
"""Private feeds live at ``/private/TOKEN.atom`` (and ``.rss``), apart from ``/feeds/``, which may be
served as static files."""


def private_feed_url(settings: Settings, feed_token: str, kind: str = "atom") -> str:
    """The subscriber's private feed (``kind`` ``atom`` or ``rss``; ``""``: without the suffix). The
    token is URL-safe as the store makes it."""
    return site_url(settings, f"{PRIVATE_FEED_PATH}/{feed_token}") + (f".{kind}" if kind else "")


def sender_domain(settings: Settings) -> str:
    address = parseaddr(settings.email.sender)[1]
    domain = address.rpartition("@")[2]
    if not domain:
        raise ConfigError(f"{settings.path}: email.from {settings.email.sender!r} has no address with a domain",
                          'write it as from = "Daily AI Papers <papers@example.org>"')
    return domain.lower()


def message_id(date: dt.date, subscriber: Subscriber, domain: str) -> str:
    """Deterministic per (day, subscriber address): a retry of the same day's email reuses it."""
    digest = hashlib.sha256(f"{MESSAGE_ID_SALT}|{date.isoformat()}|{subscriber.email.lower()}".encode()).hexdigest()
    return f"<{date:%Y%m%d}.{digest[:24]}@{domain}>"


def edition_message_id(edition: Edition, subscriber: Subscriber, domain: str) -> str:
    """Deterministic per (edition, subscriber address). A daily edition keeps the per-day Message-ID
    it had before editions existed, so that a resend after the upgrade is still the same message."""
    if edition.kind == "daily":
        return message_id(edition.last_day, subscriber, domain)
    digest = hashlib.sha256(f"{MESSAGE_ID_SALT}|{edition.key}|{subscriber.email.lower()}".encode()).hexdigest()
    return f"<{edition.last_day:%Y%m%d}.{edition.kind}.{digest[:24]}@{domain}>"


def list_id(settings: Settings) -> str:
    value = settings.email.list_id.strip().strip("<>")
    if not value:
        slug = re.sub(r"[^a-z0-9]+", "-", settings.site.title.lower()).strip("-") or "newsletter"
        value = f"{slug}.{sender_domain(settings)}"
    return f"{settings.site.title} <{value}>"


def unsubscribe_mailbox(settings: Settings) -> str:
    return settings.email.unsubscribe_mailto.strip() or f"unsubscribe@{sender_domain(settings)}"


def envelope_sender(settings: Settings) -> str:
    """MAIL FROM: smtp.envelope_from, else the address in [email] from."""
    return settings.smtp.envelope_from or parseaddr(settings.email.sender)[1]
