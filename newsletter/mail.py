"""MIME messages: built once per rendition, personalised per subscriber by joining bytes.

A rendition's HTML and text are rendered with placeholder strings where per-subscriber values go
(links carrying the subscriber's token, their address, a greeting). ``MessageTemplate`` encodes
each part as quoted-printable once, in segments cut at the placeholders, and ends every segment
with a soft line break, so no encoded line ever spans a placeholder. A message is then the
subscriber's header block plus the pre-encoded segments joined with the QP-encoded values: no
template, no premailer and no MIME serialisation runs per subscriber.

The dry-run outbox (``write_outbox``) is written here as well: plan.json, the .eml files and an
index.html that previews each rendition.
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
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email import policy
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from newsletter import render, tokens
from newsletter.config import Settings
from newsletter.errors import ConfigError, NewsletterError
from newsletter.models import Subscriber

if TYPE_CHECKING:
    from newsletter.plan import Plan

PERSONAL_FIELDS = ("greeting", "email", "unsubscribe_url", "preferences_url")
MESSAGE_ID_SALT = "newsletter-message-id-v1"
"""Not a secret: it only keeps our ids apart from other hashes of the same address and date."""

_SMTP = policy.SMTP
CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"


# -- links and identities ------------------------------------------------------------------------

def site_url(settings: Settings, path: str) -> str:
    """``path`` under [site] base_url. Links in emails use it, never the request's host, which may be
    an internal name behind a proxy."""
    return f"{settings.site.base_url.rstrip('/')}/{path.lstrip('/')}"


def archive_url(settings: Settings, date: dt.date) -> str:
    return site_url(settings, f"archive/{date.isoformat()}")


def subscriber_links(settings: Settings, subscriber: Subscriber) -> dict[str, str]:
    """The subscriber's personal links, each with a token signed for its purpose (newsletter.tokens);
    the routes in newsletter.web serve these paths."""
    signed = tokens.for_settings(settings)
    return {
        purpose: site_url(settings, f"{purpose}/{quote(signed.make(purpose, subscriber.token), safe='')}")
        for purpose in (tokens.UNSUBSCRIBE, tokens.PREFERENCES)
    }


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


def list_id(settings: Settings) -> str:
    value = settings.email.list_id.strip().strip("<>")
    if not value:
        slug = re.sub(r"[^a-z0-9]+", "-", settings.site.title.lower()).strip("-") or "newsletter"
        value = f"{slug}.{sender_domain(settings)}"
    return f"{settings.site.title} <{value}>"


def unsubscribe_mailbox(settings: Settings) -> str:
    return settings.email.unsubscribe_mailto.strip() or f"unsubscribe@{sender_domain(settings)}"


def subject_for(settings: Settings, date: dt.date, count: int) -> str:
    try:
        return settings.email.subject.format(title=settings.site.title, date=date, count=count,
                                             papers=render.count_label(count))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{settings.path}: email.subject {settings.email.subject!r} cannot be filled in: {exc}",
                          "use only the fields {title}, {date} (e.g. {date:%d %B %Y}), {count} and {papers}") from exc


def _no_controls(text: str) -> str:
    """Headers must not carry control characters (CR/LF would inject headers)."""
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


def personal_values(settings: Settings, subscriber: Subscriber) -> dict[str, str]:
    links = subscriber_links(settings, subscriber)
    return {
        "greeting": greeting(subscriber),
        "email": subscriber.email,
        "unsubscribe_url": links["unsubscribe"],
        "preferences_url": links["preferences"],
    }


def _encoded_values(values: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Each value QP-encoded for the text part and, HTML-escaped, for the HTML part."""
    as_text, as_html = {}, {}
    for name, value in values.items():
        # Only the greeting holds spaces (a name): wrapped like the rest of the plain text.
        text = render.wrap(value) if name == "greeting" and len(value) > render.TEXT_WIDTH else value
        as_text[name] = _segment(text)
        escaped = html.escape(value, quote=True)
        as_html[name] = as_text[name] if escaped == text else _segment(escaped)
    return as_text, as_html


def widest_html_values(settings: Settings, subscribers: Iterable[Subscriber]) -> dict[str, int]:
    """For each personal value, the most bytes it takes in any of these subscribers' HTML parts.

    Greetings and addresses are measured for everyone; the links only for the longest token, since a
    signed link's length follows from its token's (tokens are ASCII, see store.subscribers.new_token).
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
        for purpose, url in subscriber_links(settings, longest_token).items():
            widest[f"{purpose}_url"] = len(_segment(html.escape(url, quote=True)))
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

    def html_part_bytes_for(self, widest: Mapping[str, int]) -> int:
        """The encoded HTML part's size with the widest personal values (see ``widest_html_values``)."""
        return self.html_part_bytes + sum(widest[slot] for slot in self.body[3].slots)

    def message_bytes(self, settings: Settings, subscriber: Subscriber, message_id: str, date_header: str) -> bytes:
        """The subscriber's headers, then the shared parts with their values in: one join, one copy."""
        values = personal_values(settings, subscriber)
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


# -- the dry-run outbox --------------------------------------------------------------------------

@dataclass
class OutboxReport:
    folder: Path
    plan_file: Path
    index_file: Path | None
    written: int
    sampled: bool


def _file_safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:limit].strip("._") or "x"


def write_outbox(plan: Plan, outbox: Path, sample_threshold: int,
                 on_message: Callable[[int], None] | None = None) -> OutboxReport:
    """Write what a send would deliver into ``outbox/DATE/``: plan.json, .eml files, index.html.

    At most ``sample_threshold`` recipients get one .eml each; above it, the first recipient of each
    rendition stands in as its sample. Files of an earlier dry run for the same date are removed
    first, so the folder shows exactly this plan.
    """
    folder = outbox / plan.date.isoformat()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.eml"):
            old.unlink()
        shutil.rmtree(folder / "renditions", ignore_errors=True)
        for stale in (folder / "index.html", folder / "plan.json"):
            stale.unlink(missing_ok=True)
        sampled = len(plan.messages) > sample_threshold
        files: list[str | None] = []
        sampled_keys: set[str] = set()
        for position, planned in enumerate(plan.messages, start=1):
            name = None
            if not sampled:
                name = f"{position:06d}-{_file_safe(planned.subscriber.email)}.eml"
            elif planned.rendition_key not in sampled_keys:
                sampled_keys.add(planned.rendition_key)
                number = plan.rendition_number(planned.rendition_key)
                name = f"sample-{number:03d}-{_file_safe(planned.rendition_key)}.eml"
            if name is not None:
                (folder / name).write_bytes(plan.message_bytes(planned))
            files.append(name)
            if on_message is not None:
                on_message(1)
        index_file = _write_index(plan, folder) if plan.renditions else None
        document = {
            "date": plan.date.isoformat(),
            "messages": [
                {"to": m.subscriber.email, "papers": list(m.papers), "file": f}
                for m, f in zip(plan.messages, files, strict=True)
            ],
            "skipped": [{"to": s.email, "reason": s.reason} for s in plan.skipped],
        }
        plan_file = folder / "plan.json"
        plan_file.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the outbox {folder}: {exc.strerror or exc}",
                              "check [email] outbox or --outbox, and that the folder is writable") from exc
    return OutboxReport(folder, plan_file, index_file, sum(f is not None for f in files), sampled)


def _write_index(plan: Plan, folder: Path) -> Path:
    """One preview file per rendition, shown side by side in index.html (no scripts)."""
    (folder / "renditions").mkdir()
    previews = []
    recipients = plan.recipients_per_rendition()
    for key, rendition in plan.renditions.items():
        number = plan.rendition_number(key)
        file_name = f"renditions/{number:03d}-{_file_safe(key)}.html"
        (folder / file_name).write_text(rendition.preview_html(), encoding="utf-8")
        previews.append({"key": key, "file": file_name, "papers": len(rendition.papers),
                         "recipients": recipients.get(key, 0), "description": rendition.filter.describe(),
                         "html_kb": rendition.template.html_part_bytes / 1024})
    index = folder / "index.html"
    index.write_text(render.render_page("outbox_index.html", date=plan.date, previews=previews,
                                        skipped=len(plan.skipped), warnings=plan.warnings), encoding="utf-8")
    return index
