"""Signed link tokens: what the unsubscribe, preferences and confirmation links carry.

A token signs the subscriber's stored random token (``Subscriber.token``) with a key the site keeps
secret and a salt per purpose, so a link made for one purpose never verifies for another, and a
tampered or forged one does not verify at all. Unsubscribe and preferences links never expire: an
email read months later must still work (RFC 8058 one-click, and the law in several countries). A
confirmation link expires after ``CONFIRM_MAX_AGE`` and also carries the filter asked for on the
subscribe form, which is applied only when the address owner confirms.

Every way a token can fail (bad signature, wrong purpose, expired, malformed) is one ``None``: the
web pages must not tell a forger which of them it was.

The key comes from the environment variable named by ``[web] secret_env`` or, when that is empty,
from ``[web] secret_file`` (created with mode 0600 on first use). It is never in config.toml. The
sender and the web server must use the same key, or the links in emails will not verify.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from itsdangerous import BadData, Signer, TimestampSigner, URLSafeTimedSerializer

from newsletter.config import Settings
from newsletter.errors import ConfigError

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
CONFIRM = "confirm"
CONFIRM_MAX_AGE = 48 * 3600
"""Seconds a confirmation link stays valid."""
MIN_SECRET_LENGTH = 32
_SALT = "newsletter.{}.v1"

Clock = Callable[[], float]


@dataclass(frozen=True)
class ConfirmRequest:
    """What a valid confirmation link says: whose, and the filter and name asked for on the form."""

    token: str
    categories: list[str] = field(default_factory=list)
    name: str = ""
    status_changes: int = 0
    """How many times the subscriber's status had changed when the link was made: the link works
    only while that count is unchanged, so once, and never after an unsubscribe."""
    cadence: str = "daily"
    weekday: str = "mon"
    """As asked on the form; a link made before they were asked carries neither (daily, Monday)."""


class _Signer(Signer):
    """A Signer that derives its key from the secret and salt once, not on every call (a send signs
    two links per message)."""

    @cached_property
    def _derived_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._derived_key if secret_key is None else super().derive_key(secret_key)


class _ClockedSigner(TimestampSigner):
    """Reads the time from ``clock`` instead of time.time(), so that tests can age a link."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock())


class Tokens:
    """Makes and reads the three kinds of token with one key."""

    def __init__(self, secret: bytes, clock: Clock = time.time) -> None:
        # The stored token is already URL-safe, so these links sign it as it is: no JSON, no base64.
        self._plain = {purpose: _Signer(secret, salt=_SALT.format(purpose), digest_method=hashlib.sha256)
                       for purpose in (UNSUBSCRIBE, PREFERENCES)}
        self._confirm = URLSafeTimedSerializer(secret, salt=_SALT.format(CONFIRM), signer=_ClockedSigner,
                                               signer_kwargs={"digest_method": hashlib.sha256, "clock": clock})

    def make(self, purpose: str, subscriber_token: str) -> str:
        """An unsubscribe or preferences token for the subscriber with this stored token."""
        return self._plain[purpose].sign(subscriber_token).decode()

    def read(self, purpose: str, signed: str) -> str | None:
        """The stored subscriber token in a valid ``purpose`` token, else None."""
        try:
            value = self._plain[purpose].unsign(signed).decode()
        except (BadData, UnicodeError):
            return None
        return value or None

    def make_confirm(self, request: ConfirmRequest) -> str:
        return str(self._confirm.dumps({"t": request.token, "c": list(request.categories), "n": request.name,
                                        "v": request.status_changes, "k": request.cadence, "w": request.weekday}))

    def read_confirm(self, signed: str) -> ConfirmRequest | None:
        """The request in a valid confirmation token younger than CONFIRM_MAX_AGE, else None."""
        try:
            value = self._confirm.loads(signed, max_age=CONFIRM_MAX_AGE)
        except BadData:
            return None
        if not (isinstance(value, dict) and isinstance(value.get("t"), str) and value["t"]
                and isinstance(value.get("c"), list) and all(isinstance(c, str) for c in value["c"])
                and isinstance(value.get("n"), str) and type(value.get("v", 0)) is int
                and isinstance(value.get("k", ""), str) and isinstance(value.get("w", ""), str)):
            return None
        return ConfirmRequest(value["t"], value["c"], value["n"], value.get("v", 0), value.get("k", "daily"),
                              value.get("w", "mon"))


def load_secret(settings: Settings) -> bytes:
    """The signing key: from ``$[web] secret_env`` if named, else ``[web] secret_file`` (made on first use)."""
    web = settings.web
    if web.secret_env:
        value = os.environ.get(web.secret_env, "")
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"web.secret_env names ${web.secret_env}, which is "
                + ("unset or empty" if not value else f"only {len(value)} characters long"),
                f"export {web.secret_env}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') "
                "in the environment of both `newsletter send` and `newsletter serve`",
            )
        return value.encode()
    return _key_file(settings.resolve(web.secret_file))


def _key_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        return _create_key_file(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the link-signing key {path}: {exc.strerror}",
                          "check web.secret_file, or set web.secret_env") from exc
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(f"the link-signing key {path} can be read by other users (mode "
                          f"{stat.S_IMODE(info.st_mode):o})", f"chmod 600 {path}")
    key = path.read_bytes().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"the link-signing key {path} is shorter than {MIN_SECRET_LENGTH} characters",
                          "delete it to have a new one made (links in emails already sent stop working)")
    return key


def _create_key_file(path: Path) -> bytes:
    """Write a new key with mode 0600; if another process made one first, use theirs."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another first run made it: use theirs
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"cannot create the link-signing key {path}: {exc.strerror or exc}",
                          "make its folder writable, point web.secret_file elsewhere, or set web.secret_env") from exc
    return _key_file(path)


_cache: dict[tuple[str, str, Path, Path], Tokens] = {}


def for_settings(settings: Settings) -> Tokens:
    """The Tokens for this config, loaded once per process (a send signs two links per message)."""
    web = settings.web
    # Raw values, not the resolved path: building Paths here cost a tenth of a millisecond a message.
    cache_key = (web.secret_env, os.environ.get(web.secret_env, "") if web.secret_env else "",
                 web.secret_file, settings.path)
    tokens = _cache.get(cache_key)
    if tokens is None:
        tokens = _cache[cache_key] = Tokens(load_secret(settings))
    return tokens
