"""Subscriber validation: what the store, the CSV import, the CLI and the web forms all check.

Everything a subscriber carries ends up in mail headers (address, name) or in the email body
(filter wording), so every text field is checked before anything is written: control characters
are refused rather than stripped, because an address or name holding CR/LF would inject headers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InvalidSubscriberError
from newsletter.models import CADENCES, SUBSCRIBER_STATUSES, WEEKDAYS, Cadence, Subscriber, SubscriberStatus, Weekday
from newsletter.selection import followed_authors

# CSV columns that an import may leave out, and the Subscriber field each one fills.
LIST_SEPARATOR = ";"
"""Separates the items of a list cell in CSV, so no keyword may hold it."""
MAX_NAME_LENGTH = 200
MAX_KEYWORD_LENGTH = 100


def find_control_character(text: str) -> str | None:
    """The first character that has no place in a header or a one-line field, if any.

    Cc covers CR, LF, TAB, NUL, DEL and the C1 range (NEL); Zl/Zp are Unicode's line and
    paragraph separators, which ``str.splitlines`` and some mail clients also break lines on.
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def _refuse_control(value: str, what: str) -> None:
    char = find_control_character(value)
    if char is not None:
        raise InvalidSubscriberError(
            f"{what} {value!r} contains the control character U+{ord(char):04X}: it would inject mail headers",
            f"remove line breaks and other control characters from the {what}",
        )


def normalize_email(raw: str) -> str:
    """A valid address in its normal form (domain lower-cased, IDN domains in ASCII).

    The local part keeps its case, since it is the mailbox owner's; uniqueness is checked on
    ``email_key`` instead. Internationalised local parts are refused: they need SMTPUTF8, which
    many relays lack, and the address would silently never receive mail.
    """
    _refuse_control(raw, "address")
    address = raw.strip()
    if not address:
        raise InvalidSubscriberError("the address is empty", "give an address such as ada@example.org")
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        # email-validator ends its sentence with a full stop, which ran into "; check the spelling"
        raise InvalidSubscriberError(f"{address!r} is not a valid address: {str(exc).rstrip('.')}",
                                     _address_hint(address)) from None
    return result.ascii_email or result.normalized


def _address_hint(refused: str) -> str:
    """``Ada <ada@example.org>``, as copied from a mail client, is an address with its name: say where each goes."""
    _name, inner = parseaddr(refused)
    if "<" in refused and inner and inner != refused:
        return f"give the address alone, {inner}, and the name apart: --name, or the CSV's name column"
    return "check the spelling of the address"


def email_key(address: str) -> str:
    """The case-insensitive identity of an address: two subscribers never share one."""
    return address.strip().lower()


def mailbox_key(address: str) -> str:
    """The mailbox an address most likely reaches, for rate limits: ``a+news@x``, ``A.B@x`` and
    ``ab@x`` reach one mailbox at many providers (tags after ``+``, dots ignored), so they share one
    limit. Broader than ``email_key`` on purpose: two people sharing a key only share a limit."""
    local, _at, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0].replace('.', '')}@{domain}"


def lookup_key(address: str) -> str:
    """The key to look an address up by: normalised when valid, else just lower-cased."""
    try:
        return email_key(normalize_email(address))
    except InvalidSubscriberError:
        return email_key(address)


def check_name(raw: str) -> str:
    _refuse_control(raw, "name")
    name = raw.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSubscriberError(f"the name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are kept",
                                     "shorten the name")
    return name


def check_keywords(raw: Iterable[str], what: str = "keyword") -> list[str]:
    """Trimmed, non-empty, without duplicates (case-insensitively), in the order given."""
    kept: dict[str, str] = {}
    for value in raw:
        _refuse_control(value, what)
        keyword = value.strip()
        if not keyword:
            continue
        if not keyword.rstrip("*"):
            raise InvalidSubscriberError(f"{what} {keyword!r} would match every paper",
                                         f"a {what} is a word; a trailing * makes it a prefix, e.g. efficien*")
        if LIST_SEPARATOR in keyword:
            raise InvalidSubscriberError(f"{what} {keyword!r} contains {LIST_SEPARATOR!r}",
                                         f"give each {what} separately; {LIST_SEPARATOR!r} separates them in CSV")
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise InvalidSubscriberError(f"{what} {keyword[:20]!r}... is longer than {MAX_KEYWORD_LENGTH} characters")
        kept.setdefault(keyword.casefold(), keyword)
    return list(kept.values())


def check_categories(raw: Iterable[str], taxonomy: Sequence[str]) -> list[str]:
    """Categories in the taxonomy's own spelling (matched case-insensitively), in taxonomy order.

    Raises InvalidSubscriberError (exit 2) naming the unknown ones and listing the valid ones.
    """
    canonical = {name.casefold(): name for name in taxonomy}
    chosen: set[str] = set()
    unknown: list[str] = []
    for value in raw:
        name = value.strip()
        if not name:
            continue
        match = canonical.get(name.casefold())
        if match is None:
            unknown.append(name)
        else:
            chosen.add(match)
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        raise InvalidSubscriberError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {listed}",
                                     f"valid categories are: {', '.join(taxonomy)}")
    return [name for name in taxonomy if name in chosen]


def check_status(status: str) -> SubscriberStatus:
    """A status, read as loosely as a cadence or weekday ("Active" from a spreadsheet is "active")."""
    for known in SUBSCRIBER_STATUSES:
        if status.strip().lower() == known:
            return known
    raise InvalidSubscriberError(f"unknown status {status!r}", f"valid statuses are: {', '.join(SUBSCRIBER_STATUSES)}")


def check_cadence(cadence: str) -> Cadence:
    for known in CADENCES:
        if cadence.strip().lower() == known:
            return known
    raise InvalidSubscriberError(f"unknown cadence {cadence!r}", f"valid cadences are: {', '.join(CADENCES)}")


_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


WEEKDAY_CHOICES: tuple[tuple[Weekday, str], ...] = tuple(
    (short, name.capitalize()) for short, name in zip(WEEKDAYS, _WEEKDAY_NAMES, strict=True))
"""(value, label) for the web forms' weekday menu."""


def check_weekday(weekday: str) -> Weekday:
    """A weekday as its first three letters; "Monday", "MON" and "mon" are all "mon"."""
    given = weekday.strip().lower()
    for known, name in zip(WEEKDAYS, _WEEKDAY_NAMES, strict=True):
        if given in (known, name):
            return known
    raise InvalidSubscriberError(f"unknown weekday {weekday!r}", f"valid weekdays are: {', '.join(WEEKDAYS)}")


def check_authors(raw: Iterable[str]) -> list[str]:
    """Followed authors, spaces collapsed, each person once however it is spelled (see selection.author_key)."""
    return list(followed_authors(check_keywords(raw, "author")))


def validated(sub: Subscriber, taxonomy: Sequence[str] | None = None) -> Subscriber:
    """A normalised copy of ``sub``, or InvalidSubscriberError naming the first bad field.

    Categories are checked against ``taxonomy`` when it is given (the CLI and importer pass the
    configured one); the store, which does not know the config, still refuses control characters.
    """
    categories = (check_categories(sub.categories, taxonomy) if taxonomy is not None
                  else check_keywords(sub.categories, "category"))
    return replace(
        sub,
        email=normalize_email(sub.email),
        name=check_name(sub.name),
        categories=categories,
        keywords=check_keywords(sub.keywords),
        excluded_keywords=check_keywords(sub.excluded_keywords, "excluded keyword"),
        authors=check_authors(sub.authors),
        cadence=check_cadence(sub.cadence),
        weekday=check_weekday(sub.weekday),
        status=check_status(sub.status),
    )


@dataclass(frozen=True)
class SubscriberChange:
    """What `newsletter subscribers update` changes; None leaves a field as it is."""

    name: str | None = None
    categories: list[str] | None = None
    """[]: every category."""
    keywords: list[str] | None = None
    excluded_keywords: list[str] | None = None
    authors: list[str] | None = None
    cadence: str | None = None
    weekday: str | None = None
    status: str | None = None


def apply_change(sub: Subscriber, change: SubscriberChange, taxonomy: Sequence[str]) -> Subscriber:
    """``sub`` with ``change`` applied and checked. Stored categories are checked against the
    taxonomy only when the change gives new ones, so that a category dropped from the config never
    blocks, say, reactivating the subscriber."""
    given = {name: value for name, value in vars(change).items() if value is not None}
    return validated(replace(sub, **given), taxonomy if change.categories is not None else None)


_STATUS_CHANGES = {
    ("bounced", "active"): "reactivated {email} (was bounced): mailed again from the next issue on",
    ("unsubscribed", "active"): "re-subscribed {email} (was unsubscribed): mailed again from the next issue on",
    ("pending", "active"): "activated {email} (was pending: the confirmation link was never followed)",
}


def describe_change(before: Subscriber, after: Subscriber, wording: str) -> list[str]:
    """One line per kind of change, for the operator; ``wording`` describes the new filter."""
    lines = []
    if before.status != after.status:
        template = _STATUS_CHANGES.get((before.status, after.status), "{email}: status {before} -> {after}")
        lines.append(template.format(email=after.email, before=before.status, after=after.status))
    profile = [f"name {before.name!r} -> {after.name!r}"] if before.name != after.name else []
    if (before.categories, before.keywords, before.excluded_keywords, before.authors) != (
            after.categories, after.keywords, after.excluded_keywords, after.authors):
        profile.append(f"filter now: {wording}")
    if (before.cadence, before.weekday) != (after.cadence, after.weekday):
        profile.append(f"now {cadence_wording(after)}")
    if profile:
        lines.append(f"updated {after.email}: " + "; ".join(profile))
    return lines


def cadence_wording(sub: Subscriber) -> str:
    """"daily" or "weekly on mon", for the operator and the reader."""
    return "daily" if sub.cadence == "daily" else f"weekly on {sub.weekday}"


def subscriber_as_dict(sub: Subscriber) -> dict[str, object]:
    """A subscriber for `subscribers list --json` and `show --json`: every field that `export` writes
    (under the same names), and when it subscribed."""
    return {"email": sub.email, "name": sub.name, "categories": sub.categories, "keywords": sub.keywords,
            "excluded": sub.excluded_keywords, "status": sub.status, "cadence": sub.cadence, "weekday": sub.weekday,
            "authors": sub.authors, "created_at": sub.created_at.isoformat() if sub.created_at else None}
