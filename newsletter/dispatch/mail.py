"""MIME messages: built once per rendition, personalised per subscriber by joining bytes.

A rendition's HTML and text are rendered with placeholder strings where per-subscriber values go
(links carrying the subscriber's token, their address, a greeting). ``MessageTemplate`` encodes
each part as quoted-printable once, in segments cut at the placeholders, and ends every segment
with a soft line break, so no encoded line ever spans a placeholder. A message is then the
subscriber's header block plus the pre-encoded segments joined with the QP-encoded values: no
template, no premailer and no MIME serialisation runs per subscriber.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import html
import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email import policy
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from newsletter import render
from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.links import list_id, private_feed_url, sender_domain, subscriber_links, unsubscribe_mailbox
from newsletter.links import message_id as message_id  # a digest's Message-ID, read here as before the move
from newsletter.models import Subscriber

PERSONAL_FIELDS = ("greeting", "email", "unsubscribe_url", "preferences_url", "feed_url", "followed")
"""``followed``: a sentence naming the papers in this message by authors the reader follows ("" for most),
which marks them there instead of sending an alert; per reader, so that it never splits a rendition."""

_SMTP = policy.SMTP
CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"


def subject_for(settings: Settings, date: dt.date, count: int) -> str:
    try:
        return settings.email.subject.format(title=settings.site.title, date=date, count=count,
                                             papers=render.count_label(count))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{settings.path}: email.subject {settings.email.subject!r} cannot be filled in: {exc}",
                          "use only the fields {title}, {date} (e.g. {date:%d %B %Y}), {count} and {papers}") from exc


def weekly_subject(settings: Settings, first_day: dt.date, last_day: dt.date, count: int) -> str:
    """One week's edition: "Daily AI Papers weekly, 24–30 Nov: 9 papers". Not [email] subject, which
    names one day ({date}) and would read as that day's issue."""
    period = period_label(first_day, last_day)
    return _no_controls(f"{settings.site.title} weekly, {period}: {render.count_label(count)}")


def alert_subject(settings: Settings, authors: Iterable[str], title: str) -> str:
    """Names the followed author(s) and the paper, as the reader follows them."""
    names = " and ".join(authors)
    return _no_controls(f"{settings.site.title}: new paper by {names}: {' '.join(title.split())}")


def period_label(first_day: dt.date, last_day: dt.date) -> str:
    if first_day == last_day:
        return f"{last_day.day} {last_day:%b}"
    if (first_day.year, first_day.month) == (last_day.year, last_day.month):
        return f"{first_day.day}–{last_day.day} {last_day:%b}"
    return f"{first_day.day} {first_day:%b} – {last_day.day} {last_day:%b}"


def _no_controls(text: str) -> str:
    """Headers must not carry control characters (CR/LF would inject headers)."""
    if text.isascii() and text.isprintable():  # most names: no Cc in it, and ASCII has no Cf, Zl or Zp
        return text.strip()
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text).strip()


def clean_display_name(name: str) -> str:
    """The name as it goes into the To header and the greeting: no control characters, single spaces."""
    return " ".join(_no_controls(name).split())


def fold_header(name: str, value: str) -> bytes:
    """One header, RFC 2047-encoded where it is not ASCII and folded to 78 columns, CRLF-ended."""
    return _SMTP.fold_binary(name, _SMTP.header_factory(name, value))


_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_ENCODED_WORD_BYTES = 45
"""UTF-8 bytes per encoded word: 60 base64 characters, 72 with the =?utf-8?b?...?= frame."""


def address_header(name: str, email: str, display_name: str) -> bytes:
    """``Name <address>`` as a folded header, built by hand: the stdlib's header classes parse and
    refold every value, about half a millisecond each, which would be most of a message's cost.

    ASCII names go out as atoms or a quoted string; other names (and any containing "=?", which a
    decoder could take for an encoded word) as base64 RFC 2047 encoded words, one per line.
    """
    display = clean_display_name(display_name)
    if not display:
        return f"{name}: {email}\r\n".encode()
    if display.isascii() and "=?" not in display:
        if not _ATOM_PHRASE.fullmatch(display):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        line = f"{name}: {display} <{email}>\r\n"
        if len(line) <= 80:
            return line.encode()
    return f"{name}: {_encoded_words(display)}\r\n <{email}>\r\n".encode()


def _encoded_words(text: str) -> str:
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(chunk.decode())
            chunk = b""
        chunk += encoded
    words.append(chunk.decode())
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


# -- the site's own emails -----------------------------------------------------------------------

def site_message(settings: Settings, recipient: str, subject: str, body: str, sent_at: dt.datetime) -> bytes:
    """A plain-text email of the site's own (a confirmation, a note), with the digest's header and
    body encoding. The recipient goes without a display name: it came from an anonymous form."""
    return b"".join([
        fold_header("From", settings.email.sender),
        address_header("To", recipient, ""),
        fold_header("Subject", _no_controls(subject)),
        f"Date: {format_datetime(sent_at)}\r\nMessage-ID: {make_msgid(domain=sender_domain(settings))}\r\n".encode(),
        fold_header("List-Id", list_id(settings)),
        b"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n",
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
        qp(body),
    ])


# -- quoted-printable in segments ----------------------------------------------------------------

def qp(data: str) -> bytes:
    """Quoted-printable with CRLF line ends, lines of at most 76 characters."""
    encoded = binascii.b2a_qp(data.encode("utf-8"), quotetabs=False, istext=True, header=False)
    # b2a_qp keeps the input's bare LF; SMTP wants CRLF everywhere.
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def _segment(data: str) -> bytes:
    """An encoded piece that ends at a line boundary, so the next piece starts a fresh line."""
    encoded = qp(data)
    return encoded if not encoded or encoded.endswith(CRLF) else encoded + SOFT_BREAK


class DateHeader:
    """The Date header for messages built now: formatting a date costs more than the rest of a header
    block, so it is done once per second."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        now = self._clock()
        second = int(now.timestamp())
        if second != self._second:
            self._second, self._text = second, format_datetime(now.replace(microsecond=0))
        return self._text


@dataclass(frozen=True)
class EncodedPart:
    """A text part as pre-encoded QP segments; ``slots[i]`` is the placeholder between segments i and i+1."""

    segments: tuple[bytes, ...]
    slots: tuple[str, ...]

    def extend(self, out: list[bytes], values: Mapping[str, bytes]) -> None:
        """Append the segments and the values between them to ``out`` (joined once, by the caller)."""
        out.append(self.segments[0])
        for slot, segment in zip(self.slots, self.segments[1:], strict=True):
            out.append(values[slot])
            out.append(segment)


class Placeholders:
    """Unguessable markers for the per-subscriber values, so digest text can never forge one."""

    def __init__(self) -> None:
        nonce = secrets.token_hex(8)
        self.values = {name: f"zz{nonce}{name.replace('_', '')}zz" for name in PERSONAL_FIELDS}
        self._lookup = {marker: name for name, marker in self.values.items()}
        self._pattern = re.compile("|".join(re.escape(m) for m in self.values.values()))

    def fill(self, text: str, values: Mapping[str, str], for_html: bool) -> str:
        """``text`` with the markers replaced, for previews (messages use ``encode`` instead)."""
        def value(match: re.Match[str]) -> str:
            found = values[self._lookup[match.group(0)]]
            return html.escape(found, quote=True) if for_html else found
        return self._pattern.sub(value, text)

    def encode(self, text: str) -> EncodedPart:
        segments, slots, start = [], [], 0
        for match in self._pattern.finditer(text):
            segments.append(_segment(text[start:match.start()]))
            slots.append(self._lookup[match.group(0)])
            start = match.end()
        segments.append(qp(text[start:]))
        return EncodedPart(tuple(segments), tuple(slots))


def greeting(subscriber: Subscriber) -> str:
    name = clean_display_name(subscriber.name)
    return f"Hi {name}," if name else "Hello,"


def personal_values(settings: Settings, subscriber: Subscriber, followed: str = "") -> dict[str, str]:
    links = subscriber_links(settings, subscriber)
    return {
        "greeting": greeting(subscriber),
        "email": subscriber.email,
        "unsubscribe_url": links["unsubscribe"],
        "preferences_url": links["preferences"],
        "followed": followed,
        # A subscriber held only in memory (a preview, a benchmark) has no feed yet: its preferences
        # page is where the feed's address will be.
        "feed_url": private_feed_url(settings, subscriber.feed_token) if subscriber.feed_token
        else links["preferences"],
    }


def followed_note(marked: Iterable[tuple[int, str, Iterable[str]]]) -> str:
    """"You follow Jane Doe, who wrote no. 3 below, “Title”." from (number in the email, title, authors)."""
    parts = [f"{' and '.join(names)}, who wrote no. {number} below, “{' '.join(title.split())}”"
             for number, title, names in marked]
    return f"You follow {'; and '.join(parts)}." if parts else ""


def _encoded_values(values: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Each value QP-encoded for the text part and, HTML-escaped, for the HTML part."""
    as_text, as_html = {}, {}
    for name, value in values.items():
        if name == "followed":  # a paragraph of its own after the greeting; a sentence after it in HTML
            as_text[name] = _segment("\n\n" + render.wrap(value) if value else "")
            as_html[name] = _segment(" " + html.escape(value, quote=True) if value else "")
            continue
        # Only the greeting holds spaces (a name): wrapped like the rest of the plain text.
        text = render.wrap(value) if name == "greeting" and len(value) > render.TEXT_WIDTH else value
        as_text[name] = _segment(text)
        escaped = html.escape(value, quote=True)
        as_html[name] = as_text[name] if escaped == text else _segment(escaped)
    return as_text, as_html


def widest_html_values(settings: Settings, subscribers: Iterable[Subscriber],
                       followed: Iterable[str] = ()) -> dict[str, int]:
    """For each personal value, the most bytes it takes in any of these subscribers' HTML parts;
    ``followed``: the notes on followed authors among them.

    Greetings and addresses are measured for everyone; the links only for the longest token, since a
    signed link's length follows from its token's (tokens are ASCII, see store.subscribers.new_token).
    The feed link counts as the longer of a feed URL and a preferences URL, which stands in for it
    where a subscriber has no feed token (see ``personal_values``).
    """
    widest = dict.fromkeys(PERSONAL_FIELDS, 0)
    longest_token: Subscriber | None = None
    for subscriber in subscribers:
        hello = html.escape(greeting(subscriber), quote=True)
        widest["greeting"] = max(widest["greeting"], len(_segment(hello)))
        widest["email"] = max(widest["email"], len(_segment(html.escape(subscriber.email, quote=True))))
        if longest_token is None or len(quote(subscriber.token, safe="")) > len(quote(longest_token.token, safe="")):
            longest_token = subscriber
    if longest_token is not None:
        for name, url in personal_values(settings, longest_token).items():
            if name.endswith("_url"):
                widest[name] = len(_segment(html.escape(url, quote=True)))
        widest["feed_url"] = max(widest["feed_url"], widest["preferences_url"])
    widest["followed"] = max((len(_segment(" " + html.escape(note, quote=True))) for note in followed if note),
                             default=0)
    return widest


# -- messages ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageTemplate:
    """Everything about a rendition's message that does not depend on the subscriber."""

    shared_headers: bytes
    """From, Subject, MIME-Version, List-Id, Reply-To, List-Unsubscribe-Post, Content-Type."""
    unsubscribe_mailbox: str
    body: tuple[bytes, EncodedPart, bytes, EncodedPart, bytes]
    html_part_bytes: int

    @classmethod
    def build(cls, settings: Settings, rendered: render.RenderedDigest, subject: str,
              placeholders: Placeholders, key: str) -> MessageTemplate:
        # '=' never survives quoted-printable, so a boundary holding "=_" cannot occur in a body.
        boundary = "=_nl_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        shared = [
            fold_header("From", settings.email.sender),
            fold_header("Subject", _no_controls(subject)),
            b"MIME-Version: 1.0\r\n",
            fold_header("List-Id", list_id(settings)),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ]
        if settings.email.reply_to.strip():
            shared.append(fold_header("Reply-To", settings.email.reply_to.strip()))
        shared.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode())
        part_head = ("--{b}\r\nContent-Type: text/{kind}; charset=\"utf-8\"\r\n"
                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        text_part = placeholders.encode(rendered.text)
        html_part = placeholders.encode(rendered.html)
        body = (
            b"\r\n" + part_head.format(b=boundary, kind="plain").encode(),
            text_part,
            b"\r\n" + part_head.format(b=boundary, kind="html").encode(),
            html_part,
            f"\r\n--{boundary}--\r\n".encode(),
        )
        return cls(b"".join(shared), unsubscribe_mailbox(settings), body, sum(len(s) for s in html_part.segments))

    def to_json(self) -> str:
        """What the store keeps (see from_json). The bytes are ASCII but for a header or an address
        that went out as UTF-8, so latin-1 carries any byte through JSON unchanged."""
        def part(p: EncodedPart) -> dict[str, list[str]]:
            return {"segments": [s.decode("latin-1") for s in p.segments], "slots": list(p.slots)}

        head, text_part, middle, html_part, tail = self.body
        return json.dumps({
            "headers": self.shared_headers.decode("latin-1"), "unsubscribe_mailbox": self.unsubscribe_mailbox,
            "body": [head.decode("latin-1"), part(text_part), middle.decode("latin-1"), part(html_part),
                     tail.decode("latin-1")],
            "html_part_bytes": self.html_part_bytes,
        })

    @classmethod
    def from_json(cls, text: str) -> MessageTemplate:
        data = json.loads(text)

        def part(p: dict[str, list[str]]) -> EncodedPart:
            return EncodedPart(tuple(s.encode("latin-1") for s in p["segments"]), tuple(p["slots"]))

        head, text_part, middle, html_part, tail = data["body"]
        return cls(data["headers"].encode("latin-1"), data["unsubscribe_mailbox"],
                   (head.encode("latin-1"), part(text_part), middle.encode("latin-1"), part(html_part),
                    tail.encode("latin-1")), data["html_part_bytes"])

    def html_part_bytes_for(self, widest: Mapping[str, int]) -> int:
        """The encoded HTML part's size with the widest personal values (see ``widest_html_values``)."""
        return self.html_part_bytes + sum(widest[slot] for slot in self.body[3].slots)

    def message_bytes(self, settings: Settings, subscriber: Subscriber, message_id: str, date_header: str,
                      followed: str = "") -> bytes:
        """The subscriber's headers, then the shared parts with their values in: one join, one copy."""
        values = personal_values(settings, subscriber, followed)
        token = quote(subscriber.token, safe="")
        head, text_part, middle, html_part, tail = self.body
        as_text, as_html = _encoded_values(values)
        out = [
            address_header("To", subscriber.email, subscriber.name),
            f"Date: {date_header}\r\nMessage-ID: {message_id}\r\n"
            f"List-Unsubscribe: <{values['unsubscribe_url']}>,\r\n"
            f" <mailto:{self.unsubscribe_mailbox}?subject=unsubscribe%20{token}>\r\n".encode(),
            self.shared_headers,
            head,
        ]
        text_part.extend(out, as_text)
        out.append(middle)
        html_part.extend(out, as_html)
        out.append(tail)
        return b"".join(out)
