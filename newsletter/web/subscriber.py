"""What a subscriber's signed links lead to: unsubscribing (RFC 8058 one-click too) and preferences."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from flask import Blueprint, Response, request, url_for

from newsletter import tokens
from newsletter.errors import InvalidSubscriberError
from newsletter.links import private_feed_url
from newsletter.models import Subscriber
from newsletter.preview import DEFAULT_DAYS as PREVIEW_DAYS
from newsletter.preview import PreviewDay, preview
from newsletter.selection import Filter
from newsletter.subscribers import (
    WEEKDAY_CHOICES,
    cadence_wording,
    check_authors,
    check_cadence,
    check_categories,
    check_keywords,
    check_name,
    check_weekday,
)
from newsletter.web.guards import cross_site, forbidden_cross_site
from newsletter.web.state import SiteState

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
KEYWORD_SEPARATOR = ","


def blueprint(ctx: SiteState) -> Blueprint:
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
        if cross_site(ctx.settings):
            return forbidden_cross_site(ctx)
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
                                ask_unsubscribe=change.ask_unsubscribe, shown=change.shown, preview=change.preview)

    return bp


def unsubscribed_page(ctx: SiteState, subscriber: Subscriber) -> Response:
    return ctx.message("You are unsubscribed", f"{subscriber.email} will get no more email from {ctx.site_title}.",
                       link_url=ctx.preferences_url(subscriber), link_text="Changed your mind? Subscribe again")


def preferences_page(ctx: SiteState, subscriber: Subscriber, token: str, *, notice: str = "", error: str = "",
                     status: int = 200, ask_unsubscribe: bool = False, shown: Subscriber | None = None,
                     preview: list[PreviewDay] | None = None) -> Response:
    """``shown``: the filter the form holds, when it is not the stored one (a preview of ``preview``)."""
    form = shown or subscriber
    # Every box ticked for "all categories": unticking them all then means what it looks like.
    return ctx.page("preferences.html", status, private=True, subscriber=subscriber, notice=notice, error=error,
                    ask_unsubscribe=ask_unsubscribe, categories=ctx.choices(form.categories or ctx.taxonomy),
                    categories_hint="(each one ticked: all of them)", name=form.name,
                    keywords=f"{KEYWORD_SEPARATOR} ".join(form.keywords),
                    excluded=f"{KEYWORD_SEPARATOR} ".join(form.excluded_keywords),
                    filter_description=Filter.of(subscriber).describe(), cadence=form.cadence,
                    weekday=form.weekday, weekdays=WEEKDAY_CHOICES, authors="\n".join(form.authors),
                    cadence_description="every day" if subscriber.cadence == "daily" else cadence_wording(subscriber),
                    preview=preview, preview_filter=Filter.of(form).describe(), preview_days=PREVIEW_DAYS,
                    feed_url=private_feed_url(ctx.settings, subscriber.feed_token),
                    feed_url_rss=private_feed_url(ctx.settings, subscriber.feed_token, "rss"),
                    action_url=url_for("subscriber.preferences", token=token))


@dataclass
class PreferenceChange:
    subscriber: Subscriber
    notice: str = ""
    ask_unsubscribe: bool = False
    """The reader unticked every category: ask whether they mean to stop everything."""
    shown: Subscriber | None = None
    """The filter the form shows, when it is not the stored one (a preview)."""
    preview: list[PreviewDay] | None = None


class PreferencesForm:
    """One POST of the preferences page. A field the POST does not carry is left as it is: the
    categories change when it carries one, or says it showed the boxes (``categories_shown``), since
    a form with every box unticked sends no ``category`` at all."""

    def __init__(self, ctx: SiteState, subscriber: Subscriber, form: Any) -> None:
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
        if action == "rotate-feed" and self.subscriber.id is not None:
            renewed = replace(self.subscriber, feed_token=self.store.rotate_feed_token(self.subscriber.id))
            return PreferenceChange(renewed, "Your feed has a new address: the old one no longer works. Put the "
                                             "new one in your feed reader.")
        if "drop" in self.form:
            return self._drop(self.form["drop"])
        return self._preview() if action == "preview" else self._save()

    def _drop(self, dropped: str) -> PreferenceChange:
        current = self.subscriber.categories or self.ctx.taxonomy
        remaining = [c for c in current if c != dropped]
        if not remaining:  # the only category they had: that is stopping everything, so ask
            return PreferenceChange(self.subscriber, ask_unsubscribe=True)
        changed = replace(self.subscriber, categories=check_categories(remaining, self.ctx.taxonomy))
        return PreferenceChange(self.store.update_subscriber(changed), f"You will get no more papers in {dropped}.")

    def _save(self) -> PreferenceChange:
        changed, ask = self._changed()
        if changed == self.subscriber:
            return PreferenceChange(self.subscriber, "" if ask else "Nothing changed.", ask)
        saved = self.store.update_subscriber(changed)
        return PreferenceChange(saved, "Your other changes are saved." if ask else "Your preferences are saved.", ask)

    def _preview(self) -> PreferenceChange:
        """The papers the filter as typed would have selected; nothing is saved."""
        tried, _ask = self._changed()
        found = preview(self.store, Filter.of(tried), PREVIEW_DAYS)
        return PreferenceChange(self.subscriber, "A preview: nothing is saved until you press Save.",
                                shown=tried, preview=found)

    def _changed(self) -> tuple[Subscriber, bool]:
        """The subscriber as the form would change it, and whether to ask about unsubscribing."""
        form, changed = self.form, self.subscriber
        if "name" in form:
            changed = replace(changed, name=check_name(form["name"]))
        if "keywords" in form:
            changed = replace(changed, keywords=check_keywords(_split(form["keywords"])))
        if "excluded" in form:
            changed = replace(changed, excluded_keywords=check_keywords(_split(form["excluded"]), "excluded keyword"))
        if "authors" in form:
            changed = replace(changed, authors=check_authors(form["authors"].splitlines()))
        if "cadence" in form:
            changed = replace(changed, cadence=check_cadence(form["cadence"]))
        if "weekday" in form:
            changed = replace(changed, weekday=check_weekday(form["weekday"]))
        ask = False
        if "categories_shown" in form or "category" in form:
            categories = check_categories(form.getlist("category"), self.ctx.taxonomy)
            ask = not categories and self.subscriber.status == "active"
            if categories:
                changed = replace(changed, categories=[] if len(categories) == len(self.ctx.taxonomy) else categories)
        return changed, ask


def _split(field: str) -> list[str]:
    return [part.strip() for part in field.split(KEYWORD_SEPARATOR) if part.strip()]
