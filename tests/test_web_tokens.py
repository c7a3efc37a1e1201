"""Signed link tokens: purposes kept apart, the key's origin, and confirmation links that expire (faked clock)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from helpers import run
from newsletter import tokens
from newsletter.config import Settings, load_settings, settings_from_dict
from newsletter.errors import ConfigError
from newsletter.store import Store
from newsletter.web import create_app
from smtp_helpers import smtp_server
from web_support import (
    SECRET,
    SECRET_ENV,
    Inbox,
    follow_confirmation,
    link_in,
    local,
    thread_server,
    web_config,
)

KEY = b"k" * 40


def test_each_purpose_verifies_only_its_own_tokens() -> None:
    signed = tokens.Tokens(KEY)
    unsubscribe, preferences = signed.make("unsubscribe", "abc"), signed.make("preferences", "abc")
    assert signed.read("unsubscribe", unsubscribe) == "abc" and signed.read("preferences", preferences) == "abc"
    assert signed.read("preferences", unsubscribe) is None and signed.read("unsubscribe", preferences) is None
    assert signed.read_confirm(unsubscribe) is None
    confirm = signed.make_confirm(tokens.ConfirmRequest("abc", ["Computer Vision"], "Ann"))
    assert signed.read_confirm(confirm) == tokens.ConfirmRequest("abc", ["Computer Vision"], "Ann")
    assert signed.read("unsubscribe", confirm) is None
    assert tokens.Tokens(b"j" * 40).read("unsubscribe", unsubscribe) is None
    for broken in ("", ".", "abc", "abc.", unsubscribe + "x", unsubscribe.replace("abc", "abd"), "é.é"):
        assert signed.read("unsubscribe", broken) is None


def test_confirmation_links_expire_after_48_hours() -> None:
    now = [1_000_000.0]
    signed = tokens.Tokens(KEY, clock=lambda: now[0])
    token = signed.make_confirm(tokens.ConfirmRequest("abc"))
    now[0] += tokens.CONFIRM_MAX_AGE
    assert signed.read_confirm(token) is not None
    now[0] += 1
    assert signed.read_confirm(token) is None
    # Unsubscribe links never expire.
    unsubscribe = signed.make("unsubscribe", "abc")
    now[0] += 10 * 365 * 86400
    assert signed.read("unsubscribe", unsubscribe) == "abc"


def settings_in(folder: Path, web: dict[str, object] | None = None) -> Settings:
    return settings_from_dict({"web": web or {}}, folder / "config.toml")


def test_key_file_is_made_once_with_mode_0600_and_shared(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    key = tokens.load_secret(settings)
    path = tmp_path / "var" / "web-secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= tokens.MIN_SECRET_LENGTH and tokens.load_secret(settings) == key
    assert list((tmp_path / "var").iterdir()) == [path]  # no temporary file left behind
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        tokens.load_secret(settings)


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_in(tmp_path, {"secret_env": "NEWSLETTER_TEST_KEY"})
    monkeypatch.delenv("NEWSLETTER_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"NEWSLETTER_TEST_KEY.*unset"):
        tokens.load_secret(settings)
    monkeypatch.setenv("NEWSLETTER_TEST_KEY", "short")
    with pytest.raises(ConfigError, match="only 5 characters"):
        tokens.load_secret(settings)
    monkeypatch.setenv("NEWSLETTER_TEST_KEY", "e" * 40)
    assert tokens.load_secret(settings) == b"e" * 40
    assert not (tmp_path / "var").exists()


# -- an expired confirmation link against the running app, its clock faked --------------------------

@pytest.fixture
def clocked_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 store_backend: str) -> Iterator[tuple[str, Inbox, list[float], Path]]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    now = [1_750_000_000.0]
    with smtp_server(Inbox()) as smtp:
        config = web_config(tmp_path, smtp.port)
        assert run(config, "ingest").exit_code == 0
        settings = load_settings(config)
        with Store.from_settings(settings) as store, thread_server(create_app(settings, store=store,
                                                                              clock=lambda: now[0]), settings) as base:
            yield base, smtp.handler, now, config


def test_expired_confirmation_gets_the_unknown_answer(clocked_site: tuple[str, Inbox, list[float], Path]) -> None:
    base, inbox, now, config = clocked_site
    unknown = requests.get(f"{base}/confirm/nothing", timeout=10)
    for address in ("late@example.org", "in-time@example.org"):
        assert requests.post(f"{base}/subscribe", data={"email": address}, timeout=10).status_code == 200
    late = local(link_in(inbox.wait_for("late@example.org")[0], "confirm"), base)
    in_time = local(link_in(inbox.wait_for("in-time@example.org")[0], "confirm"), base)

    now[0] += 48 * 3600 - 60
    assert follow_confirmation(in_time).status_code == 200
    now[0] += 61
    expired = requests.get(late, timeout=10)
    assert (expired.status_code, expired.text) == (404, unknown.text)
    with Store.from_settings(load_settings(config)) as store:
        assert store.get_subscriber("late@example.org").status == "pending"  # type: ignore[union-attr]
        assert store.get_subscriber("in-time@example.org").status == "active"  # type: ignore[union-attr]
