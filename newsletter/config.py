"""Load ``config.toml`` into typed settings.

Each ``[section]`` is a dataclass below; its fields are the keys the section accepts, and their
annotations are the types checked. Unknown keys and wrong types are refused with the key and the
file named. Relative paths resolve against the config file's folder (as pelican does), so the
same config works whatever the current directory is.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import tomllib
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from newsletter.errors import ConfigError

CONFIG_ENV = "NEWSLETTER_CONFIG"
# Overrides [store] url: a PostgreSQL URL carries a password, which belongs in the environment (or a
# systemd credential), not in a config file that is copied between machines.
STORE_URL_ENV = "NEWSLETTER_STORE_URL"
DEFAULT_CONFIG = "config.toml"

DEFAULT_TAXONOMY: dict[str, list[str]] = {
    "Multi-Modal": [
        "multimodal", "multi-modal", "vision-language", "vision language", "vlm", "mllm", "lmm",
        "audio-visual", "text-to-image", "text-to-video", "image-text", "video-language",
        "visual question", "speech", "audio",
    ],
    "Natural Language Processing": [
        "language model", "llm", "nlp", "text", "translation", "question answering", "reasoning",
        "instruction", "token", "dialogue", "retrieval", "rag", "chain-of-thought", "summarization",
        "long-context", "prompt",
    ],
    "Computer Vision": [
        "image", "video", "visual", "vision", "3d", "segmentation", "detection", "diffusion",
        "gaussian splatting", "rendering", "pixel", "camera", "depth", "scene",
    ],
    "Machine Learning": [
        "training", "optimization", "optimizer", "scaling", "architecture", "attention", "quantization",
        "mixture-of-experts", "moe", "efficien*", "benchmark", "dataset", "representation",
    ],
    "Reinforcement Learning": [
        "reinforcement learning", "rl", "reward", "policy", "rlhf", "grpo", "ppo", "dpo", "agent",
        "preference optimization", "robot", "planning",
    ],
}


@dataclass
class SiteSettings:
    title: str = "Daily AI Papers"
    base_url: str = "https://example.org/newsletter"
    description: str = "The day's AI research papers, summarised."
    author: str = "newsletter"
    templates: Path | None = None
    """A folder of Jinja templates, relative to the config file, that override the shipped ones by name."""


@dataclass
class DigestSettings:
    paths: list[str] = field(default_factory=lambda: ["examples"])
    """Files, folders or glob patterns, relative to the config file."""
    max_papers_per_day: int = 500
    """A file's day with more papers is refused with a warning: no real digest is that long, and its
    email would be megabytes."""


@dataclass
class StoreSettings:
    url: str = "sqlite:///var/newsletter.db"
    """SQLAlchemy URL. A relative SQLite path resolves against the config file's folder.
    $NEWSLETTER_STORE_URL, when set, replaces it."""


@dataclass
class FeedSettings:
    dir: Path = Path("feeds")
    window_days: int = 30
    """Days of digests the feeds hold, counted back from the newest digest in the store; 0: all."""
    rss: bool = True
    """Also write an RSS 2.0 twin (.rss) of every Atom feed."""
    tag_date: str = "2024"
    """The date part of every feed and entry id (tag:HOST,TAG_DATE:...): YYYY, YYYY-MM or YYYY-MM-DD.
    Changing it (or the host of site.base_url) changes every id, so readers see every entry as new."""


@dataclass
class EmailSettings:
    sender: str = "Daily AI Papers <papers@example.org>"
    outbox: Path = Path("var/outbox")
    subject: str = "{title}: {papers} for {date:%d %B %Y}"
    """Python format string; fields {title} (site title), {date} (a date), {count} (number of papers),
    {papers} ("1 paper", "5 papers")."""
    reply_to: str = ""
    list_id: str = ""
    """The List-Id value, e.g. ``papers.example.org``; empty: derived from the site title and sender domain."""
    unsubscribe_mailto: str = ""
    """Address for mailto unsubscribes; empty: unsubscribe@ the sender's domain."""
    postal_address: str = ""
    """Shown in the footer; bulk-mail rules in several countries ask for one."""
    sample_threshold: int = 1000
    """Above this many recipients, a dry run writes one sample .eml per rendition instead of one each."""
    gmail_clip_kb: int = 102
    """An edition's HTML part stays under this (Gmail clips messages past about 102 KB): summaries
    are shortened further and the last papers listed by title only until it does."""
    summary: EmailSummary = "short"
    """``short``: each paper's first sentence(s), up to about 300 characters, and one line of a card's
    points; ``full``: the whole summary, the five points and the quiz."""


EmailSummary = Literal["short", "full"]
EMAIL_SUMMARIES: tuple[EmailSummary, ...] = get_args(EmailSummary)


SmtpSecurity = Literal["none", "starttls", "tls"]
SMTP_SECURITY: tuple[SmtpSecurity, ...] = get_args(SmtpSecurity)


@dataclass
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: SmtpSecurity = "none"
    """none (plain, e.g. a local relay), starttls (usually port 587) or tls (implicit TLS, usually 465)."""
    username: str = ""
    """Empty: no login. Otherwise the password is read from the environment variable ``password_env``."""
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    ca_file: str = ""
    """A CA bundle to trust instead of the system's, for a server with a private certificate; relative to the
    config file's folder."""
    envelope_from: str = ""
    """The MAIL FROM (bounce) address; empty: the address in [email] from."""
    timeout: float = 30.0
    """Seconds to wait for the server on each command."""
    connections: int = 1
    """Connections used in parallel; each one is reused across messages."""
    rate_limit: float = 0.0
    """At most this many messages per second over all connections, and over every send process to this
    host:port that shares the store (dispatch/relay_limits.py); 0: no limit."""
    max_attempts: int = 3
    """Attempts per message within one run on a temporary (4xx) reply; the next run tries again."""
    retry_delay: float = 1.0
    """Seconds before the first retry; doubled (``retry_backoff``) for each further one."""
    retry_backoff: float = 2.0
    pause_after_failures: int = 10
    """Stop the run after this many messages in a row were not accepted (something is wrong upstream)."""
    lease_seconds: float = 300.0
    """How long a message claimed by one send stays reserved. A send that was killed on this host is
    taken over at once; one that died on another host is taken over when its lease runs out."""

    @property
    def relay(self) -> str:
        """``host:port``: what the sends sharing a store key their rate limit and pauses by."""
        return f"{self.host}:{self.port}"


@dataclass
class WebSettings:
    """`newsletter serve`: the feeds, the archive, subscribing, unsubscribing and preferences over HTTP."""

    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 4
    """Worker threads of the waitress server."""
    secret_env: str = ""
    """Environment variable holding the key that signs link tokens (at least 32 characters).
    Empty: a random key kept in ``secret_file``, created with mode 0600 on first use."""
    secret_file: Path = Path("var/web-secret.key")
    trusted_proxies: int = 0
    """Reverse proxies in front of the server whose X-Forwarded-For/-Proto/-Host/-Prefix headers are
    believed; 0 (no proxy) ignores those headers, so a client cannot fake its address."""
    subscribe_ip_burst: int = 10
    """Subscribe requests one client address may make at once; then ``subscribe_ip_per_hour``."""
    subscribe_ip_per_hour: float = 30.0
    subscribe_address_burst: int = 3
    """Confirmation emails one address may be sent at once; then ``subscribe_address_per_hour``."""
    subscribe_address_per_hour: float = 2.0
    pending_days: int = 7
    """Days a subscriber who never confirmed stays stored (as ``pending``) before being removed."""


@dataclass
class CategorySettings:
    fallback: str = "Machine Learning"
    """Assigned when no keyword of any category matches a paper."""
    max_per_paper: int = 2
    taxonomy: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_TAXONOMY))
    """Category name -> keywords, matched case-insensitively against title and summary."""

    @property
    def names(self) -> list[str]:
        return list(self.taxonomy)

    @property
    def is_shipped_taxonomy(self) -> bool:
        """Exactly the shipped category names, which the shipped model was trained on (it classifies then)."""
        return set(self.taxonomy) == set(DEFAULT_TAXONOMY)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class ScheduleSettings:
    """`newsletter schedule` and `newsletter publish`. Cron fields are read on the local wall clock."""

    timezone: str = "UTC"
    """IANA name, e.g. Europe/Berlin; "today" and every cron below are in this zone."""
    publish: str = "0 7 * * *"
    """5-field cron: ingest, then feeds, then send today's issue. Empty: no combined job."""
    ingest: str = ""
    """Optional extra crons that run one stage alone (e.g. ingest every 15 minutes); empty: none."""
    feeds: str = ""
    send: str = ""
    misfire_grace_time: int = 14400
    """Seconds a missed run may still start late (after downtime: one catch-up run)."""
    recheck_minutes: int = 15
    """While today's digest is missing: look again every N minutes, until the deadline."""
    deadline: str | int = 240
    """"HH:MM" (local, on the issue's date) or minutes after the scheduled time: then record "no issue"."""
    log_level: str = "INFO"
    leader_lease_seconds: int = 30
    """Daemons sharing one store elect a leader, the only one that runs jobs; it renews its lease every
    third of this. Another daemon takes over once the lease has run out (at its next renewal on the same
    machine when the leader's process is gone)."""

    def crons(self) -> dict[str, str]:
        """Job id -> cron expression, for every job key (empty: not scheduled)."""
        return {"publish": self.publish, "ingest": self.ingest, "feeds": self.feeds, "send": self.send}


_TAG_DATE = re.compile(r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?")

# TOML key -> dataclass field, where the TOML name is a Python keyword.
_RENAMED = {"from": "sender"}


@dataclass
class Settings:
    path: Path
    """The config file these settings came from (or would have, when it is absent)."""
    site: SiteSettings = field(default_factory=SiteSettings)
    digests: DigestSettings = field(default_factory=DigestSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    web: WebSettings = field(default_factory=WebSettings)
    categories: CategorySettings = field(default_factory=CategorySettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, value: str | Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def template_folder(self) -> Path | None:
        """``[site] templates``, absolute: the operator's templates, looked up before the shipped ones."""
        return self.resolve(self.site.templates) if self.site.templates is not None else None

    def digest_paths(self) -> list[str]:
        return [str(self.resolve(p)) for p in self.digests.paths]


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_settings(path: str | Path | None = None, *, check_addresses: bool = True) -> Settings:
    """Read and validate a config file. Raises ConfigError naming the file and the key.

    ``check_addresses=False`` leaves out the check of the mail addresses in [email] and [smtp] (and of
    smtp.ca_file), for commands that send no mail and read only digests and categories (``parse``): importing the
    checker (email-validator) costs more than a tenth of such a command.
    """
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        if os.environ.get(CONFIG_ENV) and Path(os.environ[CONFIG_ENV]) == path:
            raise ConfigError(f"config file {path} not found (the path comes from ${CONFIG_ENV})",
                              f"correct or unset ${CONFIG_ENV}, or pass --config PATH")
        raise ConfigError(
            f"config file {path} not found",
            f"pass --config PATH, set ${CONFIG_ENV}, or run from the folder that holds config.toml",
        )
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax at the line named") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return settings_from_dict(raw, path.resolve(), check_addresses=check_addresses)


def settings_from_dict(raw: dict[str, Any], path: Path, *, check_addresses: bool = True) -> Settings:
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(Settings)
    known = [f.name for f in dataclasses.fields(Settings) if f.name != "path"]
    for name, value in raw.items():
        if name not in known:
            raise ConfigError(
                f"{path}: unknown section [{name}]",
                f"valid sections are: {', '.join(known)}",
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}] must be a table, got {_type_name(value)}")
        sections[name] = _build_section(hints[name], value, name, path)
    if os.environ.get(STORE_URL_ENV):
        sections["store"] = dataclasses.replace(sections.get("store", StoreSettings()),
                                                url=os.environ[STORE_URL_ENV])
    settings = Settings(path=path, **sections)
    if settings.smtp.ca_file:  # relative to the config file's folder, as every path in it
        settings.smtp.ca_file = str(settings.resolve(settings.smtp.ca_file))
    _check(settings, check_addresses)
    return settings


def _build_section(cls: type, values: dict[str, Any], section: str, path: Path) -> Any:
    hints = typing.get_type_hints(cls)
    field_names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        attr = _RENAMED.get(key, key)
        if attr not in field_names:
            valid = sorted(k for k in ({*field_names} - set(_RENAMED.values())) | {
                k for k, v in _RENAMED.items() if v in field_names})
            raise ConfigError(
                f"{path}: unknown key {section}.{key}",
                f"valid keys in [{section}] are: {', '.join(valid)}",
            )
        kwargs[attr] = _coerce(value, hints[attr], f"{section}.{key}", path)
    return cls(**kwargs)


def _coerce(value: Any, expected: Any, key: str, path: Path) -> Any:
    """Check ``value`` against the annotation ``expected``; convert str to Path where asked."""
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, key, path)
            except ConfigError:
                continue
        raise _wrong_type(key, path, expected, value)
    if expected is Path:
        if not isinstance(value, str):
            raise _wrong_type(key, path, expected, value)
        return Path(value)
    if origin is list:
        if not isinstance(value, list):
            raise _wrong_type(key, path, expected, value)
        return [_coerce(v, args[0], f"{key}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong_type(key, path, expected, value)
        return {k: _coerce(v, args[1], f"{key}.{k}", path) for k, v in value.items()}
    if origin is typing.Literal:  # a choice of strings: its type here, its values in the section's checks
        expected = type(args[0])
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    _check_scalar(value, key, path)
    # bool is a subclass of int; refuse `port = true`.
    if isinstance(value, bool) and expected is not bool:
        raise _wrong_type(key, path, expected, value)
    if not isinstance(value, expected):
        raise _wrong_type(key, path, expected, value)
    return value


_MULTI_LINE_KEYS = ("site.description", "email.postal_address")
"""Keys that may hold line breaks: they are shown in a page or a body, never in a header."""


def _check_scalar(value: Any, key: str, path: Path) -> None:
    """Refuse what a type check lets through: nan and inf (`nan <= 0` is False, so a nan rate limit
    was no limit at all), and control characters in text."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: {key} must be a finite number, got {value}", f"change {key} in {path.name}")
    if isinstance(value, str):
        _refuse_control_characters(value, key, path)


def _refuse_control_characters(value: str, key: str, path: Path) -> None:
    """Refuse CR, LF and other control characters: in a header value they start a new header (Bcc:)."""
    for char in value:
        if char == "\n" and key in _MULTI_LINE_KEYS:
            continue
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ConfigError(f"{path}: {key} contains the control character U+{ord(char):04X}",
                              f"write {key} on one line, without line breaks or other control characters")


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


_TYPE_EXAMPLES: dict[Any, str] = {str: '"text"', int: "10", float: "1.5", bool: "true", Path: '"var/folder"'}
"""A value of each type, written as in TOML, for a key whose default cannot serve as the example."""


_WANTED: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                          Path: "a path string", list: "an array", dict: "a table"}
"""A type as a TOML writer knows it (not Python's `int`, `str`), for "must be ..."."""


def _wanted(expected: Any) -> str:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_wanted(option) for option in typing.get_args(expected) if option is not type(None))
    kind = typing.get_origin(expected) or expected
    return _WANTED.get(kind, getattr(kind, "__name__", str(kind)))


def _wrong_type(key: str, path: Path, expected: Any, value: Any) -> ConfigError:
    want = _wanted(expected)
    return ConfigError(f"{path}: {key} must be {want}, got {_type_name(value)} ({value!r})",
                       f"write {key} in {path.name} as {want}, for example {_example(key, expected)}")


def _example(key: str, expected: Any) -> str:
    """``port = 25``: the key with its default as TOML, or for an item of a list or table, a value of its type."""
    section, _, name = key.partition(".")
    section_class = typing.get_type_hints(Settings).get(section)
    attr = _RENAMED.get(name, name)
    if section_class is not None and attr in {f.name for f in dataclasses.fields(section_class)}:
        default = getattr(section_class(), attr)
        if default is not None and not isinstance(default, dict):
            return f"{name} = {json.dumps(str(default) if isinstance(default, Path) else default)}"
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        expected = typing.get_args(expected)[0]
    return {list: '["text"]', dict: '{ Name = ["keyword"] }'}.get(origin, _TYPE_EXAMPLES.get(expected, '"text"'))


def _check(settings: Settings, check_addresses: bool) -> None:
    """Cross-field rules that types alone cannot express."""
    path = settings.path
    cats = settings.categories
    if not cats.taxonomy:
        raise ConfigError(f"{path}: categories.taxonomy is empty", "list at least one category")
    if cats.fallback not in cats.taxonomy:
        raise ConfigError(
            f"{path}: categories.fallback {cats.fallback!r} is not in categories.taxonomy",
            f"use one of: {', '.join(cats.taxonomy)}",
        )
    if cats.max_per_paper < 1:
        raise ConfigError(f"{path}: categories.max_per_paper must be at least 1, got {cats.max_per_paper}",
                          "for example max_per_paper = 2 (the default)")
    if not settings.site.base_url.startswith(("https://", "http://")):
        raise ConfigError(f"{path}: site.base_url must be an absolute http(s) URL",
                          "for example base_url = \"https://papers.example.org\"")
    if settings.template_folder is not None and not settings.template_folder.is_dir():
        raise ConfigError(f"{path}: site.templates: {settings.template_folder} is not a folder",
                          "name a folder of templates (relative to the config file) or remove the key "
                          "to use the shipped templates")
    if not 0 < settings.smtp.port < 65536:
        raise ConfigError(f"{path}: smtp.port must be between 1 and 65535, got {settings.smtp.port}",
                          "usually 25 (a local relay), 587 (security = \"starttls\") or 465 (security = \"tls\")")
    if settings.digests.max_papers_per_day < 1:
        raise ConfigError(f"{path}: digests.max_papers_per_day must be at least 1, "
                          f"got {settings.digests.max_papers_per_day}", "the default is 500")
    if settings.feeds.window_days < 0:
        raise ConfigError(f"{path}: feeds.window_days must be 0 (no window) or more, got {settings.feeds.window_days}",
                          "for example window_days = 30 (the default): the feeds hold the last 30 days; "
                          "0 keeps every digest")
    _check_at_most(path, "feeds.window_days", settings.feeds.window_days, 36500, "days; 0 keeps every digest")
    _check_store_url(settings.store.url, path)
    if check_addresses:
        _check_addresses(settings, path)
        _check_ca_file(settings.smtp, path)
    if not _TAG_DATE.fullmatch(settings.feeds.tag_date):
        raise ConfigError(f"{path}: feeds.tag_date must be YYYY, YYYY-MM or YYYY-MM-DD, "
                          f"got {settings.feeds.tag_date!r}",
                          "set it once to a date when you owned the domain of site.base_url, and never change it")
    _check_email_layout(settings.email, path)
    _check_smtp(settings.smtp, path)
    if settings.schedule != ScheduleSettings():  # the defaults are valid; skip importing APScheduler
        _check_schedule(settings.schedule, path)
    _check_web(settings.web, path)


def _check_email_layout(email: EmailSettings, path: Path) -> None:
    if email.summary not in EMAIL_SUMMARIES:
        raise ConfigError(f"{path}: email.summary must be one of {', '.join(EMAIL_SUMMARIES)}, got {email.summary!r}",
                          'summary = "short" shows a sentence or two per paper; "full" the whole summary')
    if email.gmail_clip_kb < 10:
        raise ConfigError(f"{path}: email.gmail_clip_kb must be at least 10, got {email.gmail_clip_kb}",
                          "Gmail clips an HTML part past about 102 KB; keep the default 102 unless you know better")


def _not_positive(path: Path, section: str, key: str, value: float, defaults: object) -> ConfigError:
    return ConfigError(f"{path}: {section}.{key} must be greater than 0, got {value}",
                       f"for example {key} = {getattr(defaults, key)} (the default)")


def _check_at_most(path: Path, key: str, value: float, most: float, unit: str) -> None:
    if value > most:
        raise ConfigError(f"{path}: {key} is {value}, more than this setting can use: at most {most:g} {unit}".rstrip(),
                          f"lower {key} in {path.name}")


_IN_MEMORY_SQLITE = re.compile(r"sqlite(\+\w+)?://(/?$|/:memory:|/file::memory:|.*[?&]mode=memory)")


_URL_SCHEME = re.compile(r"(?P<backend>[A-Za-z]\w*)(\+(?P<driver>\w+))?://")

# (backend, driver) -> the module SQLAlchemy imports for it; a URL without a driver uses the backend's default.
_STORE_DRIVERS = {("sqlite", None): "sqlite3", ("sqlite", "pysqlite"): "sqlite3",
                  ("postgresql", "psycopg"): "psycopg", ("postgresql", None): "psycopg2",
                  ("postgresql", "psycopg2"): "psycopg2"}

_STORE_URL_HINT = ("use sqlite:///var/newsletter.db (a path relative to the config file's folder; four slashes "
                   "for an absolute one) or, with the postgres extra (pip install -e '.[postgres]'), "
                   "postgresql+psycopg://user@host/db")


def store_url_source(path: Path) -> str:
    """Where the store URL in effect comes from, for an error to name: the variable, else the config's key."""
    return f"${STORE_URL_ENV}" if os.environ.get(STORE_URL_ENV) else f"{path}: store.url"


def _check_store_url(url: str, path: Path) -> None:
    """Refuse, naming where it came from, a store URL that cannot open a store: checked here, without
    SQLAlchemy (which costs half a second), so that its failure is a config error (exit 2), not a
    failed command. An in-memory SQLite store would forget everything when the command ends."""
    where = store_url_source(path)
    if url != url.strip():  # SQLAlchemy cannot read the URL then, and would say only that
        raise ConfigError(f"{where}: cannot use store URL: it has spaces or tabs around it", _STORE_URL_HINT)
    scheme = _URL_SCHEME.match(url)
    if scheme is None:  # the value is not shown: an unreadable URL may still hold a password
        raise ConfigError(f"{where}: cannot use store URL: it is not a database URL (backend://...)", _STORE_URL_HINT)
    backend, driver = scheme["backend"].lower(), scheme["driver"]
    module = _STORE_DRIVERS.get((backend, driver))
    if module is None:
        named = f"{backend}+{driver}" if driver else backend
        raise ConfigError(f"{where}: cannot use store URL: {named}:// databases are not supported", _STORE_URL_HINT)
    if importlib.util.find_spec(module) is None:  # looks for the module without importing it
        raise ConfigError(f"{where}: cannot use store URL: its driver {module} is not installed", _STORE_URL_HINT)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- reading it is the check: urlsplit raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{where}: cannot use store URL: its port is not a number", _STORE_URL_HINT) from None
    if backend == "sqlite" and parts.netloc:  # two slashes: the first folder became a host
        raise ConfigError(f"{where}: cannot use store URL: sqlite://{parts.hostname or ''}/... names a host, which a "
                          "SQLite file has none of", _STORE_URL_HINT)
    if _IN_MEMORY_SQLITE.match(url):
        raise ConfigError(f"{where} {url!r} is an in-memory database, which every command would start "
                          "empty and lose at its end", "give a file, e.g. url = \"sqlite:///var/newsletter.db\"")


# Keys holding a mail address, each optionally with a display name; ``from`` must be set.
_ADDRESS_KEYS = (("email", "from", "sender"), ("email", "reply_to", "reply_to"),
                 ("email", "unsubscribe_mailto", "unsubscribe_mailto"), ("smtp", "envelope_from", "envelope_from"))


def _check_addresses(settings: Settings, path: Path) -> None:
    for section, key, attr in _ADDRESS_KEYS:
        value = getattr(getattr(settings, section), attr)
        if value or key == "from":
            problem = address_problem(value)
            if problem:
                raise ConfigError(f"{path}: {section}.{key} {value!r} is not a valid address: {problem}",
                                  f"for example {key} = \"Daily AI Papers <papers@your-domain.org>\"")


def address_problem(value: str) -> str | None:
    """Why ``value`` is not one mail address, optionally with a display name; None when it is one."""
    from email.errors import HeaderParseError
    from email.headerregistry import HeaderRegistry

    from email_validator import EmailNotValidError, validate_email

    if not value.strip():
        return "it is empty"
    try:
        header = HeaderRegistry()("From", value)
    except (HeaderParseError, IndexError, ValueError) as exc:
        return str(exc) or "it cannot be parsed"
    addresses = list(getattr(header, "addresses", []))
    if header.defects or len(addresses) != 1:
        return "it must be one address, such as Name <name@domain.org> or name@domain.org"
    try:
        validate_email(addresses[0].addr_spec, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")
"""Reserved for documentation (RFC 2606): the shipped config uses them, and no mail reaches them."""


def placeholder_warnings(settings: Settings) -> list[str]:
    """Keys that still hold the shipped example.org values: links and mail from them cannot work."""
    values = {"site.base_url": urlsplit(settings.site.base_url).hostname or ""}
    for section, key, attr in _ADDRESS_KEYS:
        value = getattr(getattr(settings, section), attr)
        values[f"{section}.{key}"] = value.rpartition("@")[2].strip(" >")
    keys = [key for key, domain in values.items()
            if any(domain.lower() == d or domain.lower().endswith("." + d) for d in PLACEHOLDER_DOMAINS)]
    if not keys:
        return []
    return [f"{settings.path}: {', '.join(keys)} still use{'s' if len(keys) == 1 else ''} the example domain of the "
            "shipped config: links in emails will not reach this site and mail from it will be refused; "
            "set them to your own domain before sending to anyone"]


def taxonomy_warnings(settings: Settings) -> list[str]:
    """A taxonomy of the operator's own that cannot do what it seems to: a category without keywords
    is never given (only the shipped model classifies without them), and a taxonomy that is the shipped
    one changed turns that model off for every paper (``CategorySettings.is_shipped_taxonomy``)."""
    taxonomy = settings.categories.taxonomy
    if settings.categories.is_shipped_taxonomy:
        return []
    where = f"{settings.path}: categories.taxonomy"
    warnings = [f'{where}."{name}" has no keywords, so it can never match and no paper is ever given it; '
                f'list its keywords, e.g. "{name}" = ["word", "other word"]'
                for name, keywords in taxonomy.items() if not keywords and name != settings.categories.fallback]
    added = [name for name in taxonomy if name not in DEFAULT_TAXONOMY]
    lacking = [name for name in DEFAULT_TAXONOMY if name not in taxonomy]
    # Most shipped names kept: the shipped taxonomy edited, whose operator may well expect the model still.
    if len(lacking) < len(DEFAULT_TAXONOMY) / 2:
        changes = [f"{verb} {', '.join(map(repr, names))}" for verb, names in (("adds", added), ("lacks", lacking))
                   if names]
        warnings.append(f"{where} differs from the shipped one ({'; '.join(changes)}), so the shipped category "
                        "model is off and every paper is classified by keyword rules (see README: Categories)")
    return warnings


def _check_ca_file(smtp: SmtpSettings, path: Path) -> None:
    """A missing CA bundle otherwise surfaced only at the first TLS handshake, mid-send."""
    if smtp.ca_file and not Path(smtp.ca_file).is_file():
        raise ConfigError(f"{path}: smtp.ca_file: {smtp.ca_file} is not a file",
                          "name the CA bundle (PEM) that signed the server's certificate, relative to the "
                          "config file's folder, or remove the key to trust the system's CAs")


def _check_smtp(smtp: SmtpSettings, path: Path) -> None:
    if smtp.security not in SMTP_SECURITY:
        raise ConfigError(f"{path}: smtp.security must be one of {', '.join(SMTP_SECURITY)}, got {smtp.security!r}",
                          "starttls for port 587, tls for port 465, none for a local relay")
    if smtp.username and not smtp.password_env:
        raise ConfigError(f"{path}: smtp.password_env is empty but smtp.username is set",
                          "name the environment variable that holds the password; it is never read from the file")
    positive = {"timeout": smtp.timeout, "connections": smtp.connections, "max_attempts": smtp.max_attempts,
                "pause_after_failures": smtp.pause_after_failures, "lease_seconds": smtp.lease_seconds}
    for key, value in positive.items():
        if value <= 0:
            raise _not_positive(path, "smtp", key, value, SmtpSettings())
    if smtp.rate_limit < 0 or smtp.retry_delay < 0 or smtp.retry_backoff < 1:
        raise ConfigError(f"{path}: smtp.rate_limit and smtp.retry_delay must be >= 0, smtp.retry_backoff >= 1",
                          "the defaults are rate_limit = 0 (no limit), retry_delay = 1.0 and retry_backoff = 2.0")
    _check_at_most(path, "smtp.timeout", smtp.timeout, 600, "seconds: a server silent for 10 minutes is gone")
    _check_at_most(path, "smtp.lease_seconds", smtp.lease_seconds, 86400, "seconds (a day)")
    _check_at_most(path, "smtp.retry_delay", smtp.retry_delay, 3600, "seconds: later tries belong to the next run")
    _check_at_most(path, "smtp.retry_backoff", smtp.retry_backoff, 10, "")
    _check_at_most(path, "smtp.max_attempts", smtp.max_attempts, 100, "")
    _check_at_most(path, "smtp.connections", smtp.connections, 100, "")
    # A live send renews its lease when half of it is left, so half a lease must outlast one SMTP
    # transaction (a few commands, each up to `timeout`); otherwise another send could take it over.
    if smtp.lease_seconds < 4 * smtp.timeout:
        raise ConfigError(f"{path}: smtp.lease_seconds ({smtp.lease_seconds}) must be at least 4 x smtp.timeout "
                          f"({smtp.timeout})", "raise lease_seconds or lower timeout")


def _check_web(web: WebSettings, path: Path) -> None:
    if not 0 < web.port < 65536:
        raise ConfigError(f"{path}: web.port must be between 1 and 65535, got {web.port}",
                          "for example port = 8080 (the default), behind a reverse proxy for HTTPS")
    if web.threads < 1 or web.trusted_proxies < 0:
        raise ConfigError(f"{path}: web.threads must be at least 1 and web.trusted_proxies at least 0",
                          "the defaults are threads = 4 and trusted_proxies = 0 (no proxy in front)")
    limits = {"subscribe_ip_burst": web.subscribe_ip_burst, "subscribe_ip_per_hour": web.subscribe_ip_per_hour,
              "subscribe_address_burst": web.subscribe_address_burst,
              "subscribe_address_per_hour": web.subscribe_address_per_hour}
    for key, value in limits.items():
        if value <= 0:
            raise _not_positive(path, "web", key, value, WebSettings())
    if web.pending_days < 1:
        raise ConfigError(f"{path}: web.pending_days must be at least 1, got {web.pending_days}",
                          "a confirmation link stays valid for 2 days; 7 gives late readers time to ask again")
    _check_at_most(path, "web.pending_days", web.pending_days, 365, "days")
    _check_at_most(path, "web.threads", web.threads, 256, "")


def _check_schedule(schedule: ScheduleSettings, path: Path) -> None:
    from newsletter.calendar import parse_cron, parse_deadline, zone

    try:
        zone(schedule.timezone)
        for key, expr in schedule.crons().items():
            if expr:
                parse_cron(expr, key)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", exc.hint) from exc
    if not (schedule.publish or schedule.send):
        raise ConfigError(f"{path}: schedule.publish and schedule.send are both empty, so nothing would be sent",
                          "set publish (ingest, feeds and send) or send to a cron expression")
    for key in ("misfire_grace_time", "recheck_minutes", "leader_lease_seconds"):
        if getattr(schedule, key) <= 0:
            raise _not_positive(path, "schedule", key, getattr(schedule, key), ScheduleSettings())
    _check_at_most(path, "schedule.misfire_grace_time", schedule.misfire_grace_time, 86400,
                   "seconds (a day): an older run belongs to another day's issue")
    _check_at_most(path, "schedule.recheck_minutes", schedule.recheck_minutes, 1440, "minutes (a day)")
    _check_at_most(path, "schedule.leader_lease_seconds", schedule.leader_lease_seconds, 600,
                   "seconds: another daemon takes over only once it has run out")
    try:
        deadline = parse_deadline(schedule.deadline)
    except ValueError as exc:
        raise ConfigError(f"{path}: schedule.deadline: {exc}",
                          "use a local time like \"12:00\" or a number of minutes after publish, like 240") from exc
    if isinstance(deadline, int) and deadline < 0:
        raise ConfigError(f"{path}: schedule.deadline must be 0 or more minutes, got {deadline}",
                          "for example deadline = 240 (the default: 4 hours after publish) or \"12:00\"")
    if isinstance(deadline, int):
        _check_at_most(path, "schedule.deadline", deadline, 1440, "minutes (a day) after the publish time")
    if schedule.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"{path}: schedule.log_level must be one of {', '.join(LOG_LEVELS)}, "
                          f"got {schedule.log_level!r}",
                          "for example log_level = \"INFO\" (the default), or DEBUG for more detail")
