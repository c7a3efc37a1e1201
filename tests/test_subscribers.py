"""Subscribers: validation, the store API and the CSV format, on a real SQLite file."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.config import DEFAULT_TAXONOMY
from newsletter.errors import InvalidSubscriberError, SubscriberExistsError, SubscriberNotFoundError, UsageError
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.subscriber_csv import import_csv, parse_csv, read_csv, write_csv
from newsletter.subscribers import normalize_email, validated

TAXONOMY = list(DEFAULT_TAXONOMY)


@pytest.fixture
def store(store_url: str) -> Store:
    """On SQLite and on PostgreSQL (see conftest's store_url)."""
    with Store(store_url) as opened:
        yield opened


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- validation ---------------------------------------------------------------------------------


def test_addresses_are_normalised_keeping_the_local_part() -> None:
    assert normalize_email("  Ada.Lovelace@Example.ORG ") == "Ada.Lovelace@example.org"
    assert normalize_email("ada@bücher.example") == "ada@xn--bcher-kva.example"


@pytest.mark.parametrize("address", ["", "ada", "ada@", "@example.org", "ada@@example.org", "a b@example.org",
                                     "ada@example", "ädä@example.org"])
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidSubscriberError):
        normalize_email(address)


def test_an_address_with_a_name_says_where_the_name_goes() -> None:
    with pytest.raises(InvalidSubscriberError) as refused:
        normalize_email("Ada Lovelace <ada@example.org>")
    assert refused.value.hint == ("give the address alone, ada@example.org, and the name apart: "
                                  "--name, or the CSV's name column")


@pytest.mark.parametrize("field", ["email", "name"])
@pytest.mark.parametrize("control", ["\r", "\n", "\r\n", "\x00", "\t", "\x85", "\u2028"])
def test_header_injection_is_refused(field: str, control: str) -> None:
    values = {"email": "ada@example.org", "name": "Ada"}
    values[field] = values[field] + control + "Bcc: victim@example.com"
    with pytest.raises(InvalidSubscriberError, match="would inject mail headers"):
        validated(Subscriber(**values))


@settings(max_examples=150)
@given(st.text(max_size=40))
def test_any_accepted_name_is_one_clean_line(name: str) -> None:
    try:
        sub = validated(Subscriber(email="ada@example.org", name=name))
    except InvalidSubscriberError as exc:
        assert "would inject mail headers" in exc.message
        assert re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", name)
        return
    assert sub.name == sub.name.strip()
    assert len(sub.name.splitlines()) <= 1


def test_categories_match_the_taxonomy_case_insensitively() -> None:
    sub = validated(Subscriber(email="ada@example.org", categories=["computer vision", "Multi-Modal"]), TAXONOMY)
    assert sub.categories == ["Multi-Modal", "Computer Vision"]  # taxonomy order, taxonomy spelling


def test_unknown_category_names_the_valid_ones() -> None:
    with pytest.raises(InvalidSubscriberError) as caught:
        validated(Subscriber(email="ada@example.org", categories=["Robotics"]), TAXONOMY)
    assert caught.value.exit_code == 2
    assert "'Robotics'" in caught.value.message
    assert all(name in (caught.value.hint or "") for name in TAXONOMY)


def test_keywords_are_trimmed_and_deduplicated() -> None:
    sub = validated(Subscriber(email="ada@example.org", keywords=[" RL ", "rl", "", "agents"],
                               excluded_keywords=["survey"]))
    assert sub.keywords == ["RL", "agents"]
    with pytest.raises(InvalidSubscriberError, match="';'"):
        validated(Subscriber(email="ada@example.org", keywords=["a;b"]))
    with pytest.raises(InvalidSubscriberError, match="would match every paper"):
        validated(Subscriber(email="ada@example.org", excluded_keywords=["*"]))


def test_unknown_status_is_refused() -> None:
    with pytest.raises(InvalidSubscriberError, match="valid statuses"):
        validated(Subscriber(email="ada@example.org", status="deleted"))


# --- store --------------------------------------------------------------------------------------


def test_add_gives_a_token_and_a_creation_time(store: Store) -> None:
    added = store.add_subscriber(Subscriber("Ada@Example.org", name="Ada", categories=["Computer Vision"]))
    assert added.id is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", added.token)
    assert added.created_at is not None and added.created_at.tzinfo is not None
    assert store.get_subscriber("ada@example.org") == added
    assert store.get_subscriber("ADA@EXAMPLE.ORG") == added
    assert store.get_subscriber_by_token(added.token) == added
    assert store.get_subscriber_by_token("") is None


def test_addresses_are_unique_case_insensitively(store: Store) -> None:
    store.add_subscriber(Subscriber("Ada@example.org"))
    with pytest.raises(SubscriberExistsError):
        store.add_subscriber(Subscriber("ada@EXAMPLE.org"))
    assert [s.email for s in store.subscribers()] == ["Ada@example.org"]


def test_tokens_are_unique(store: Store) -> None:
    added = [store.add_subscriber(Subscriber(f"user{i}@example.org")) for i in range(200)]
    assert len({s.token for s in added}) == 200


def test_an_invalid_subscriber_writes_nothing(store: Store) -> None:
    with pytest.raises(InvalidSubscriberError):
        store.upsert_subscribers([Subscriber("ok@example.org"), Subscriber("bad@example.org", name="x\ny")])
    assert store.subscribers(status=None) == []


def test_upsert_is_idempotent_and_keeps_status_and_token(store: Store) -> None:
    [(first, created)] = store.upsert_subscribers([Subscriber("ada@example.org", name="Ada")])
    assert created
    store.set_subscriber_status("ada@example.org", "unsubscribed")
    [(again, changed)] = store.upsert_subscribers([Subscriber("ada@example.org", name="Ada", status="active")])
    assert not changed
    assert again.status == "unsubscribed" and again.token == first.token
    [(renamed, changed)] = store.upsert_subscribers([Subscriber("ADA@example.org", name="Ada L.")])
    assert changed and renamed.name == "Ada L." and renamed.email == "ADA@example.org"
    assert renamed.created_at == first.created_at


def test_update_and_status(store: Store) -> None:
    ada = store.add_subscriber(Subscriber("ada@example.org"))
    bob = store.add_subscriber(Subscriber("bob@example.org"))
    ada.keywords = ["diffusion"]
    store.update_subscriber(ada)
    assert store.get_subscriber("ada@example.org").keywords == ["diffusion"]
    bob.email = "ADA@example.org"
    with pytest.raises(SubscriberExistsError):
        store.update_subscriber(bob)
    with pytest.raises(SubscriberNotFoundError):
        store.update_subscriber(Subscriber("carol@example.org"))
    assert store.set_subscriber_status(bob.id, "bounced")
    assert not store.set_subscriber_status("nobody@example.org", "bounced")
    with pytest.raises(InvalidSubscriberError):
        store.set_subscriber_status(bob.id, "gone")
    assert [s.email for s in store.subscribers()] == ["ada@example.org"]
    assert [s.email for s in store.subscribers("bounced")] == ["bob@example.org"]
    assert [s.email for s in store.subscribers(None)] == ["ada@example.org", "bob@example.org"]


def test_remove_deletes(store: Store) -> None:
    store.add_subscriber(Subscriber("ada@example.org"))
    assert store.remove_subscriber("Ada@Example.org")
    assert not store.remove_subscriber("ada@example.org")
    assert store.get_subscriber("ada@example.org") is None
    store.add_subscriber(Subscriber("ada@example.org"))  # the address is free again


# --- CSV ----------------------------------------------------------------------------------------


def test_import_is_idempotent(store: Store, tmp_path: Path) -> None:
    csv_file = write(tmp_path / "subs.csv",
                     "email,name,categories\n"
                     "ada@example.org,Ada,Computer Vision;Multi-Modal\n"
                     "bob@example.org,,\n")
    first = import_csv(store, csv_file, TAXONOMY)
    assert (first.added, first.changed, first.unchanged, first.errors) == (2, 0, 0, [])
    second = import_csv(store, csv_file, TAXONOMY)
    assert (second.added, second.changed, second.unchanged, second.errors) == (0, 0, 2, [])
    ada = store.get_subscriber("ada@example.org")
    assert ada.categories == ["Multi-Modal", "Computer Vision"]


def test_import_keeps_columns_the_file_lacks(store: Store, tmp_path: Path) -> None:
    store.add_subscriber(Subscriber("ada@example.org", keywords=["agents"], status="active"))
    store.set_subscriber_status("ada@example.org", "unsubscribed")
    report = import_csv(store, write(tmp_path / "s.csv", "email,name\nada@example.org,Ada\n"), TAXONOMY)
    assert (report.added, report.changed) == (0, 1)
    ada = store.get_subscriber("ada@example.org")
    assert (ada.name, ada.keywords, ada.status) == ("Ada", ["agents"], "unsubscribed")


def test_bad_rows_are_reported_with_their_line_and_the_rest_go_in(store: Store, tmp_path: Path) -> None:
    csv_file = write(tmp_path / "subs.csv",
                     "email,name,categories\n"
                     "ada@example.org,Ada,\n"
                     "not-an-address,Bob,\n"
                     '"eve@example.org","Eve\nBcc: all@example.com",\n'
                     "carol@example.org,Carol,Robotics\n"
                     "ADA@example.org,Ada again,\n"
                     "dan@example.org,Dan\n"
                     "\n"
                     "erin@example.org,Erin,computer vision\n")
    report = import_csv(store, csv_file, TAXONOMY)
    found = {e.line: e.message for e in report.errors}
    assert set(found) == {3, 4, 6, 7, 8}
    assert "not a valid address" in found[3]
    assert "would inject mail headers" in found[4]
    assert "'Robotics'" in found[6] and "Computer Vision" in found[6]
    assert "already on line 2" in found[7]
    assert "2 cells" in found[8]
    assert all(str(e).startswith(f"{csv_file}:{e.line}: ") for e in report.errors)
    assert report.added == 2
    assert [s.email for s in store.subscribers()] == ["ada@example.org", "erin@example.org"]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("name,categories\nAda,\n", "no 'email' column"),
    ("email,name,tags\n", "unknown column 'tags'"),
    ("email,email\n", "repeated"),
])
def test_an_unusable_header_is_a_usage_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        read_csv(write(tmp_path / "s.csv", text), TAXONOMY)
    assert caught.value.exit_code == 2
    assert ":1:" in caught.value.message


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,name\nada@example.org,Ada\nbob@example.org,Bj\xf6rn\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"latin1.csv:3: not UTF-8"):
        read_csv(path, TAXONOMY)


def test_excel_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("email,name\r\nada@example.org,Ada\r\n".encode("utf-8-sig"))
    rows = read_csv(path, TAXONOMY)
    assert [(line, s.email) for line, s in rows.rows] == [(2, "ada@example.org")]


def test_export_then_import_round_trips(store: Store, tmp_path: Path) -> None:
    store.add_subscriber(Subscriber("Ada@example.org", name='Ada "the first", Countess',
                                    categories=["Computer Vision"], keywords=["diffusion", "3D"],
                                    excluded_keywords=["survey"]))
    store.add_subscriber(Subscriber("bob@example.org", name="Bøb"))
    store.set_subscriber_status("bob@example.org", "bounced")
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as fh:
        assert write_csv(store.subscribers(None), fh) == 2

    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        report = import_csv(other, exported, TAXONOMY)
        assert (report.added, report.errors) == (2, [])

        def profile(s: Subscriber) -> tuple:
            return s.email, s.name, s.categories, s.keywords, s.excluded_keywords, s.status

        assert [profile(s) for s in other.subscribers(None)] == [profile(s) for s in store.subscribers(None)]
    again = import_csv(store, exported, TAXONOMY)
    assert (again.added, again.changed, again.unchanged) == (0, 0, 2)


def test_parse_csv_reports_the_starting_line_of_multiline_rows() -> None:
    text = 'email,name\n"ada@example.org","Ada\nLovelace"\nnope,Bob\n'
    rows = parse_csv(io.StringIO(text, newline=""), "mem.csv", TAXONOMY)
    assert [(e.line, "inject" in e.message) for e in rows.errors] == [(2, True), (4, False)]


def test_creation_times_are_stored_as_the_same_instant_in_utc(store: Store) -> None:
    """SQLite keeps no offset: a time given in another zone must be converted, not relabelled."""
    paris_noon = dt.datetime(2025, 5, 13, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    store.add_subscriber(Subscriber(email="ada@example.org"), now=paris_noon)
    store.upsert_subscribers([Subscriber(email="bob@example.org", created_at=paris_noon)])
    for address in ("ada@example.org", "bob@example.org"):
        stored = store.get_subscriber(address)
        assert stored is not None and stored.created_at == paris_noon
        assert stored.created_at.utcoffset() == dt.timedelta(0)
