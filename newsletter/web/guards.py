"""Checks every response and every changing POST goes through: security headers, no cross-site
forms, redirects that stay on this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, request

from newsletter.config import Settings
from newsletter.web.state import SiteState

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


def local_location(location: str) -> str:
    """A redirect as a path on this site. Werkzeug builds slash redirects from the Host header, which
    the client chooses: an absolute Location would send readers wherever that header pointed."""
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/")  # never //host: a browser reads that as another site
    return path + (f"?{parts.query}" if parts.query else "")


def cross_site(settings: Settings) -> bool:
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


def forbidden_cross_site(ctx: SiteState) -> Response:
    return ctx.message("This form belongs to another site",
                       "Changes to a subscription can only be made from this site's own pages.", 403)
