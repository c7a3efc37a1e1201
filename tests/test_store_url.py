"""`NEWSLETTER_STORE_URL` replaces `[store] url`, and a password in a store URL is never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from helpers import run, write_config
from newsletter.store import Store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"


def test_the_environment_overrides_the_configured_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite only: the subject is which file the variable picks; the PostgreSQL runs of the other tests use it.
    config = write_config(tmp_path)  # var/test.db
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("NEWSLETTER_STORE_URL", f"sqlite:///{elsewhere}")

    added = run(config, "subscribers", "add", "ada@example.org")

    assert added.exit_code == 0, added.output
    assert not (tmp_path / "var" / "test.db").exists()
    with Store(f"sqlite:///{elsewhere}") as store:
        assert [s.email for s in store.subscribers()] == ["ada@example.org"]


def test_an_in_memory_store_from_the_environment_is_refused_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_STORE_URL", "sqlite://")
    result = run(write_config(tmp_path), "status")
    assert result.exit_code == 2
    assert "$NEWSLETTER_STORE_URL 'sqlite://' is an in-memory database" in result.output


def test_a_password_in_the_store_url_is_never_printed(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_url(postgres_url)
    password = url.password
    assert password, "pg_virtualenv's server has a password"
    config = write_config(tmp_path, digests=f'["{EXAMPLES}"]')
    monkeypatch.setenv("NEWSLETTER_STORE_URL", postgres_url)
    outputs = [
        run(config, "db", "upgrade"),
        run(config, "db", "current"),
        run(config, "ingest"),
        run(config, "subscribers", "add", "ada@example.org"),
        run(config, "send", "--dry-run"),
        run(config, "status"),
    ]
    wrong = url.set(password="Wr0ng-" + str(password)).render_as_string(hide_password=False)
    monkeypatch.setenv("NEWSLETTER_STORE_URL", wrong)
    refused = run(config, "status")
    unreadable = url.set(port=None).render_as_string(hide_password=False).replace(
        f"@{url.host}", f"@{url.host}:port", 1)  # a port that is not a number
    monkeypatch.setenv("NEWSLETTER_STORE_URL", unreadable)
    malformed = run(config, "db", "current")

    assert [r.exit_code for r in outputs] == [0] * len(outputs), [r.output for r in outputs]
    assert "postgresql+psycopg://" in outputs[1].output and ":***@" in outputs[1].output
    assert refused.exit_code == 1 and "cannot open the store at" in refused.output and ":***@" in refused.output
    assert malformed.exit_code == 1 and "cannot use store URL" in malformed.output
    for result in [*outputs, refused, malformed]:
        assert str(password) not in result.output
