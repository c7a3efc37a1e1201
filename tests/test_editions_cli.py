"""Cadence, weekday and followed authors through the CLI and CSV, and what `send --dry-run` plans per edition,
on the example digests (2026-11-19, a Thursday, and 2026-11-20, a Friday)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT, run, write_config

pytestmark = pytest.mark.usefixtures("store_backend")

DIGESTS = PROJECT_ROOT / "examples" / "digests"


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "digests"
    folder.mkdir()
    for name in ("2026-11-19.md", "2026-11-20.md"):
        shutil.copy(DIGESTS / name, folder / name)
    config = write_config(tmp_path)
    assert run(config, "ingest").exit_code == 0
    return config


def listed_papers(config: Path, date: str) -> list[str]:
    parsed = json.loads(run(config, "parse", str(config.parent / "digests" / f"{date}.md"), "--json").stdout)
    return [p["arxiv_id"] for day in parsed["days"] for p in day["papers"]]


def test_a_weekly_reader_on_their_weekday_gets_one_weekly_edition_with_reasons(tmp_path: Path) -> None:
    config = project(tmp_path)
    for args in (("weekly@example.org", "--cadence", "weekly", "--weekday", "fri", "--keyword", "policy"),
                 ("thursday@example.org", "--cadence", "weekly", "--weekday", "thu"),
                 ("daily@example.org", "--keyword", "policy", "--author", "Raman, Priya"),
                 ("fan@example.org", "--author", "MOREAU, Ada")):
        added = run(config, "subscribers", "add", *args)
        assert added.exit_code == 0, added.output
    assert "weekly on fri" in run(config, "subscribers", "add", "w2@example.org", "--cadence", "weekly",
                                  "--weekday", "fri").output
    result = run(config, "send", "--dry-run", "--date", "2026-11-20")
    assert result.exit_code == 0, result.output
    assert "weekly/2026-11-14..2026-11-20" in result.output and "daily/2026-11-20" in result.output
    shown = result.output.split("weekly@example.org (weekly/2026-11-14..2026-11-20)\n", 1)[1].splitlines()[0]
    # The first paper, and why: the reader filters by keyword only, so no category is a reason.
    assert "(all categories; keyword policy in the " in shown
    plan = json.loads((tmp_path / "outbox" / "2026-11-20" / "plan.json").read_text())
    by_reader = {m["to"]: m for m in plan["messages"]}
    weekly = by_reader["weekly@example.org"]
    assert [m["to"] for m in plan["messages"]].count("weekly@example.org") == 1
    assert weekly["edition"] == {"key": "weekly/2026-11-14..2026-11-20", "kind": "weekly",
                                 "first_day": "2026-11-14", "last_day": "2026-11-20"}
    both_days = set(listed_papers(config, "2026-11-19")) | set(listed_papers(config, "2026-11-20"))
    assert set(weekly["papers"]) <= both_days and len(weekly["papers"]) == len(set(weekly["papers"]))
    assert set(weekly["papers"]) - set(listed_papers(config, "2026-11-20")), "a paper of the Thursday too"
    for arxiv_id in weekly["papers"]:
        reasons = weekly["reasons"][arxiv_id]
        assert reasons[0] == "all categories" and any(r.startswith("keyword policy in the ") for r in reasons)
    everything = by_reader["w2@example.org"]
    assert sorted(everything["papers"]) == sorted(both_days)
    assert "thursday@example.org" in {s["to"] for s in plan["skipped"]}
    daily = by_reader["daily@example.org"]
    assert daily["edition"]["key"] == "daily/2026-11-20"
    # The followed author's Thursday paper is not on the Friday: no alert, since alerts are for the day's papers.
    assert all(m["edition"]["kind"] != "alert" for m in plan["messages"])

    thursday = run(config, "send", "--dry-run", "--date", "2026-11-19")
    plan = json.loads((tmp_path / "outbox" / "2026-11-19" / "plan.json").read_text())
    editions = {(m["to"], m["edition"]["kind"]) for m in plan["messages"]}
    assert ("thursday@example.org", "weekly") in editions and ("weekly@example.org", "weekly") not in editions
    alert = next(m for m in plan["messages"] if m["edition"]["kind"] == "alert")
    assert alert["to"] == "daily@example.org" and thursday.exit_code == 0
    (paper,) = alert["papers"]
    assert alert["edition"]["key"] == f"alert/{paper}" and alert["reasons"][paper] == ["author Priya Raman"]
    # Ada Moreau's paper is in the fan's daily edition (every category): marked there, no alert.
    (fan,) = [m for m in plan["messages"] if m["to"] == "fan@example.org"]
    assert fan["edition"]["kind"] == "daily" and fan["reasons"]["2611.04211"][-1] == "author Ada Moreau"
    assert fan["reasons"]["2611.04211"][0] == "all categories"
    assert all(reasons[-1] != "author Ada Moreau" for i, reasons in fan["reasons"].items() if i != "2611.04211")
    eml = (tmp_path / "outbox" / "2026-11-19" / fan["file"]).read_text()
    assert "You follow Ada Moreau, who wrote no." in " ".join(eml.replace("=\n", "").split())


def test_cadence_weekday_and_authors_round_trip_through_csv(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert run(config, "subscribers", "add", "ada@example.org", "--cadence", "weekly", "--weekday", "wed",
               "--author", "Jane Doe", "--author", "doe, jane", "--author", "kvlee").exit_code == 0
    exported = tmp_path / "out.csv"
    assert run(config, "subscribers", "export", "--output", str(exported)).exit_code == 0
    lines = exported.read_text().splitlines()
    assert lines[0] == "email,name,categories,keywords,excluded,status,cadence,weekday,authors"
    assert lines[1] == "ada@example.org,,,,,active,weekly,wed,Jane Doe;kvlee"
    again = run(config, "subscribers", "import", str(exported))
    assert "0 added, 0 changed" in again.output, again.output

    changes = tmp_path / "changes.csv"
    changes.write_text("email,cadence,weekday,authors\nada@example.org,daily,,\nbo@example.org,weekly,Friday,"
                       "Ada Moreau\ncy@example.org,monthly,,\ndi@example.org,weekly,someday,\n")
    result = run(config, "subscribers", "import", str(changes))
    assert result.exit_code == 1
    assert f"{changes}:4: unknown cadence 'monthly'" in result.output
    assert f"{changes}:5: unknown weekday 'someday'" in result.output
    lines = exported.read_text().splitlines() if run(config, "subscribers", "export", "--output",
                                                     str(exported)).exit_code == 0 else []
    assert lines[1:] == ["ada@example.org,,,,,active,daily,mon,", "bo@example.org,,,,,active,weekly,fri,Ada Moreau"]


def test_update_switches_cadence_and_authors(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert run(config, "subscribers", "add", "ada@example.org").exit_code == 0
    switched = run(config, "subscribers", "update", "ada@example.org", "--cadence", "weekly", "--weekday", "sun",
                   "--author", "Mei Tanaka")
    assert "now weekly on sun" in switched.output and "every paper by Mei Tanaka" in switched.output
    assert "all categories; and every paper by Mei Tanaka; weekly on sun" in run(config, "subscribers", "list").output
    cleared = run(config, "subscribers", "update", "ada@example.org", "--no-authors", "--author", "X Y")
    assert cleared.exit_code == 2 and "contradict" in cleared.output
    assert "bad" in run(config, "subscribers", "add", "b@example.org", "--weekday", "bad").output


def test_send_on_a_day_without_a_digest_plans_that_days_weekly_editions_or_says_none_is_due(tmp_path: Path) -> None:
    config = project(tmp_path)
    for args in (("saturday@example.org", "--cadence", "weekly", "--weekday", "sat"),
                 ("daily@example.org",)):
        assert run(config, "subscribers", "add", *args).exit_code == 0
    sunday = run(config, "send", "--dry-run", "--date", "2026-11-22")
    assert sunday.exit_code == 2
    assert "no digest for 2026-11-22 in the store, and no weekly edition is due that day" in sunday.output
    assert "the newest ingested day is 2026-11-20" in sunday.output

    saturday = run(config, "send", "--dry-run", "--date", "2026-11-21")
    assert saturday.exit_code == 0, saturday.output
    plan = json.loads((tmp_path / "outbox" / "2026-11-21" / "plan.json").read_text())
    (weekly,) = plan["messages"]
    assert weekly["to"] == "saturday@example.org"
    assert weekly["edition"] == {"key": "weekly/2026-11-15..2026-11-21", "kind": "weekly",
                                 "first_day": "2026-11-15", "last_day": "2026-11-21"}
    assert sorted(weekly["papers"]) == sorted(set(listed_papers(config, "2026-11-19"))
                                              | set(listed_papers(config, "2026-11-20")))

    sent = run(config, "send", "--date", "2026-11-21", "--plan-only")
    assert sent.exit_code == 0, sent.output
    assert "Planned 2026-11-21: 1 message in 1 rendition" in sent.output
