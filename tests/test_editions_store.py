"""The delivery log keyed by edition, on SQLite and PostgreSQL: the upgrade from the day-keyed log, and
the history a plan reads (days covered, alerts sent)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from helpers import run, write_config
from legacy_schema import back_to_day_keyed
from newsletter import links
from newsletter.clock import utc_now
from newsletter.models import Edition, PlannedMessage, Subscriber
from newsletter.store import Store
from newsletter.store.migrations import head

DAY = dt.date(2026, 11, 19)


def planned(sub: Subscriber, edition: Edition, date: dt.date = DAY) -> PlannedMessage:
    return PlannedMessage(date=date, subscriber=sub, papers=(), rendition_key="r",
                          message_id=links.edition_message_id(edition, sub, "example.org"), edition=edition)


def test_the_upgrade_keeps_each_days_message_id_so_a_resend_is_the_same_message(tmp_path: Path,
                                                                                 store_url: str) -> None:
    with Store(store_url) as store:
        ada = store.add_subscriber(Subscriber("ada@example.org", name="Ada"))
        old_id = links.message_id(DAY, ada, "example.org")
        with store.engine.begin() as conn:
            back_to_day_keyed(conn)
            conn.exec_driver_sql(
                "INSERT INTO deliveries (date, subscriber_id, email, message_id, state, attempts, updated_at) "
                f"VALUES ('{DAY}', {ada.id}, 'ada@example.org', '{old_id}', 'sent', 1, '2026-11-19 07:00:00')")
            conn.exec_driver_sql("INSERT INTO day_notes (date, reason, recorded_at) "
                                 "VALUES ('2026-11-18', 'no digest', '2026-11-18 12:00:00')")
    upgraded = run(write_config(tmp_path, store_url=store_url), "db", "upgrade")
    assert upgraded.exit_code == 0 and f"now at revision {head()}" in upgraded.output, upgraded.output
    with Store(store_url) as store:
        [stored] = store.subscribers()
        assert (stored.cadence, stored.weekday, stored.authors, stored.name) == ("daily", "mon", [], "Ada")
        daily = planned(stored, Edition.daily(DAY))
        assert daily.message_id == old_id
        assert store.create_deliveries([daily], utc_now()) == 0  # the row from before the upgrade is this message
        assert store.edition_counts([DAY]) == {DAY: {"daily/2026-11-19": {"sent": 1}}}
        earlier = DAY - dt.timedelta(days=1)
        assert store.no_issue_notes() == {earlier: "no digest"}  # the day's note, now its daily edition's
        store.clear_no_issue(earlier)
        assert store.no_issue_notes() == {}
        assert store.coverage_before(DAY + dt.timedelta(days=1)) == {stored.id: (DAY, DAY)}
        assert store.coverage_before(DAY) == {}
        # The same reader may now get more than one edition on a day.
        alert = Edition("alert", DAY, DAY, paper="2511.00001")
        assert store.create_deliveries([planned(stored, alert)], utc_now()) == 1
        assert planned(stored, alert).message_id != old_id


def test_history_counts_digest_days_and_alerts_before_the_day_only(store_url: str) -> None:
    with Store(store_url) as store:
        ada = store.add_subscriber(Subscriber("ada@example.org", cadence="weekly", weekday="thu"))
        bob = store.add_subscriber(Subscriber("bob@example.org"))
        week = Edition("weekly", DAY - dt.timedelta(days=6), DAY)
        later = DAY + dt.timedelta(days=1)
        now = utc_now()
        store.create_deliveries([planned(ada, week), planned(ada, Edition("alert", DAY, DAY, paper="2511.00001")),
                                 planned(bob, Edition.daily(DAY)),
                                 planned(bob, Edition.daily(later), later)], now)
        assert store.coverage_before(later) == {ada.id: (week.first_day, DAY), bob.id: (DAY, DAY)}
        assert store.alerted_before(later, ["2511.00001", "2511.00002"]) == {ada.id: {"2511.00001"}}
        assert store.alerted_before(DAY, ["2511.00001"]) == {}
        assert bob.id is not None
        store.cancel_deliveries(later, set(), "gone", now)  # a cancelled edition covers nothing
        assert store.coverage_before(later + dt.timedelta(days=1))[bob.id] == (DAY, DAY)
