"""`NEWSLETTER_STORE_URL` replaces `[store] url`, and a password in a store URL is never printed."""

from __future__ import annotations

import socket
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


@pytest.mark.parametrize(("url", "said"), [
    ("sqlite://", "$NEWSLETTER_STORE_URL 'sqlite://' is an in-memory database"),
    ("mysql://news:S3cret-pw@db.example.org/news",
     "$NEWSLETTER_STORE_URL: cannot use store URL: mysql:// databases are not supported"),
])
def test_a_store_url_from_the_environment_that_cannot_work_is_refused_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str) -> None:
    monkeypatch.setenv("NEWSLETTER_STORE_URL", url)
    result = run(write_config(tmp_path), "status")
    assert result.exit_code == 2
    assert said in result.output
    assert "S3cret-pw" not in result.output


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
    # A URL that cannot be read is a config error (exit 2), as every bad [store] url is; it was 1 before.
    assert malformed.exit_code == 2 and "cannot use store URL" in malformed.output
    for result in [*outputs, refused, malformed]:
        assert str(password) not in result.output


STORE_URL_HINT = "sqlite:///var/newsletter.db"


@pytest.mark.parametrize(("url", "problem"), [
    ("notaurl", "it is not a database URL"),
    ("mysql://x@y/z", "mysql:// databases are not supported"),
    ("postgresql+psycopg://news@db.example.org:fivefour/news", "its port is not a number"),
    # Two slashes make "var" a host: the store was 'sqlite://var//abs/folder/newsletter.db', unexplained.
    ("sqlite://var/newsletter.db", "sqlite://var/... names a host, which a SQLite file has none of"),
    (" sqlite:///var/test.db", "it has spaces or tabs around it"),
])
def test_a_bad_store_url_is_a_config_error_naming_the_file_and_key(tmp_path: Path, url: str, problem: str) -> None:
    config = write_config(tmp_path, store_url=url)
    for command in (("status",), ("subscribers", "list"), ("db", "current")):
        result = run(config, *command)
        assert result.exit_code == 2, result.output
        assert f"{config}: store.url: cannot use store URL: {problem}" in result.output
        assert STORE_URL_HINT in result.output and "postgresql+psycopg://" in result.output


def test_a_store_url_whose_driver_is_missing_is_named_before_sqlalchemy_is_asked(tmp_path: Path) -> None:
    # postgresql:// means psycopg2, which the postgres extra does not install (it brings psycopg 3).
    result = run(write_config(tmp_path, store_url="postgresql://news@db.example.org/news"), "status")
    assert result.exit_code == 2
    assert "store.url: cannot use store URL: its driver psycopg2 is not installed" in result.output


def test_a_server_that_refuses_the_store_url_is_named_with_the_key_and_what_to_check(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_url(postgres_url)
    wrong_password = url.set(password="Wr0ng-pw").render_as_string(hide_password=False)
    missing_database = url.set(database="no_such_newsletter_db").render_as_string(hide_password=False)
    with socket.socket() as probe:  # a port nothing listens on: the server is down
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server_down = url.set(host="127.0.0.1", port=closed_port).render_as_string(hide_password=False)
    config = write_config(tmp_path)
    (tmp_path / "from-file").mkdir()

    monkeypatch.setenv("NEWSLETTER_STORE_URL", wrong_password)
    refused = [run(config, "status"), run(config, "db", "current"), run(config, "db", "upgrade")]
    monkeypatch.setenv("NEWSLETTER_STORE_URL", server_down)
    down = run(config, "status")
    monkeypatch.delenv("NEWSLETTER_STORE_URL")
    missing = run(write_config(tmp_path / "from-file", store_url=missing_database), "status")

    for result in [*refused, down]:
        assert result.exit_code == 1, result.output
        assert "hint: check $NEWSLETTER_STORE_URL" in result.output
    assert "password authentication failed" in refused[0].output
    assert "user, password and database name" in refused[0].output
    assert f"127.0.0.1:{closed_port}" in down.output.split("hint:")[1]
    assert missing.exit_code == 1, missing.output
    assert f"hint: check {tmp_path / 'from-file' / 'config.toml'}: store.url" in missing.output
    assert "createdb" in missing.output
