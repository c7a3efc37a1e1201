"""`newsletter subscribers ...` run for real through click, against a SQLite file beside a config and a real
PostgreSQL server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.config import DEFAULT_TAXONOMY

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "config.toml"
    url = "sqlite:///var/test.db" if store_url.startswith("sqlite") else store_url  # relative: beside the config
    path.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    return path


@pytest.fixture
def run(config: Path):
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args], catch_exceptions=False)

    return invoke


def listed(run) -> list[dict]:
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["subscribers"]


def test_add_list_remove(run, config: Path, store_url: str) -> None:
    result = run("add", "Ada@Example.org", "--name", "Ada", "--category", "computer vision",
                 "--keyword", "diffusion", "--exclude", "survey")
    assert result.exit_code == 0, result.output
    assert "added Ada@example.org" in result.stdout
    if store_url.startswith("sqlite"):
        assert (config.parent / "var" / "test.db").is_file()  # the store URL resolved against the config folder
    assert listed(run) == [{
        "email": "Ada@example.org", "name": "Ada", "categories": ["Computer Vision"], "keywords": ["diffusion"],
        "excluded": ["survey"], "status": "active", "cadence": "daily", "weekday": "mon", "authors": [],
        "created_at": listed(run)[0]["created_at"],
    }]
    table = run("list").stdout
    assert "Ada@example.org" in table and "Computer Vision" in table and "1 subscriber" in table

    assert run("add", "ada@example.org").exit_code == 1  # taken, case-insensitively
    assert run("remove", "ADA@example.org").exit_code == 0
    assert listed(run) == []
    missing = run("remove", "ada@example.org")
    assert missing.exit_code == 1 and "not subscribed" in missing.output


def test_unsubscribe_keeps_the_address_so_an_older_csv_does_not_bring_it_back(run, tmp_path: Path) -> None:
    old_csv = tmp_path / "old.csv"
    old_csv.write_text("email,name,categories\nada@example.org,Ada,Computer Vision\n", encoding="utf-8")
    assert run("import", str(old_csv)).exit_code == 0

    done = run("unsubscribe", "ADA@example.org")  # as written in the mail that asked for it
    assert done.exit_code == 0 and "unsubscribed ada@example.org (was active)" in done.stdout
    again = run("unsubscribe", "ada@example.org")
    assert again.exit_code == 0 and "already unsubscribed" in again.stdout

    reimported = run("import", str(old_csv))
    assert reimported.exit_code == 0 and "0 added" in reimported.stdout
    assert [(s["email"], s["status"]) for s in listed(run)] == [("ada@example.org", "unsubscribed")]

    unknown = run("unsubscribe", "nobody@example.org")
    assert unknown.exit_code == 1 and "nobody@example.org is not a subscriber" in unknown.output


def test_unknown_category_exits_2_listing_the_valid_ones(run) -> None:
    result = run("add", "ada@example.org", "--category", "Robotics")
    assert result.exit_code == 2
    assert "'Robotics'" in result.output
    for name in DEFAULT_TAXONOMY:
        assert name in result.output
    assert listed(run) == []


@pytest.mark.parametrize("args", [["ada@example.org\r\nBcc: all@example.com"],
                                  ["ada@example.org", "--name", "Ada\nBcc: all@example.com"]])
def test_header_injection_is_refused(run, args: list[str]) -> None:
    result = run("add", *args)
    assert result.exit_code == 2
    assert "would inject mail headers" in result.output
    assert listed(run) == []


def test_invalid_address_exits_2(run) -> None:
    result = run("add", "ada-at-example.org")
    assert result.exit_code == 2 and "not a valid address" in result.output


def test_list_filters_by_status(run) -> None:
    run("add", "ada@example.org")
    assert [s["email"] for s in listed(run)] == ["ada@example.org"]
    assert "no subscribers with status bounced" in run("list", "--status", "bounced").stdout
    assert run("list", "--status", "gone").exit_code == 2


def test_status_cadence_and_weekday_are_read_as_loosely_in_a_csv_as_on_the_command_line(run, tmp_path: Path) -> None:
    sheet = tmp_path / "from-a-spreadsheet.csv"
    sheet.write_text("email,cadence,weekday,status\nada@example.org,Weekly,Tue, Active\n", encoding="utf-8")
    imported = run("import", str(sheet))
    assert imported.exit_code == 0, imported.output
    added = run("add", "bob@example.org", "--cadence", "Weekly", "--weekday", "TUE")
    assert added.exit_code == 0, added.output
    assert run("update", "bob@example.org", "--status", "Bounced").exit_code == 0
    assert [(s["cadence"], s["weekday"], s["status"]) for s in listed(run)] == [
        ("weekly", "tue", "active"), ("weekly", "tue", "bounced")]


def test_import_twice_then_export_round_trip(run, tmp_path: Path) -> None:
    sample = PROJECT_ROOT / "examples" / "subscribers.csv"
    first = run("import", str(sample))
    assert first.exit_code == 0, first.output
    rows = sum(1 for _ in csv.DictReader(io.StringIO(sample.read_text(encoding="utf-8"))))
    assert f"{rows} added, 0 changed, 0 unchanged" in first.stdout
    second = run("import", str(sample))
    assert f"0 added, 0 changed, {rows} unchanged" in second.stdout

    exported = run("export").stdout
    out_file = tmp_path / "out.csv"
    assert run("export", "--output", str(out_file)).exit_code == 0
    assert out_file.read_text(encoding="utf-8") == exported
    again = run("import", str(out_file))
    assert f"0 added, 0 changed, {rows} unchanged" in again.stdout


def test_import_reports_bad_rows_and_exits_1(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name,categories\n"
                   "ada@example.org,Ada,Computer Vision\n"
                   "bob@example.org,Bob,Astrology\n"
                   '"eve@example.org","Eve\r\nBcc: all@example.com",\n', encoding="utf-8")
    result = run("import", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3: unknown category 'Astrology'" in result.stderr
    assert f"{bad}:4: name" in result.stderr and "would inject mail headers" in result.stderr
    assert "1 added, 0 changed, 0 unchanged, 2 rejected" in result.stdout
    assert [s["email"] for s in listed(run)] == ["ada@example.org"]


def test_import_with_a_bad_header_exits_2(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("mail,name\nada@example.org,Ada\n", encoding="utf-8")
    result = run("import", str(bad))
    assert result.exit_code == 2 and f"{bad}:1:" in result.output


def test_show_and_list_carry_every_column_that_export_writes(run) -> None:
    added = run("add", "wk@example.org", "--name", "Wendy", "--category", "Computer Vision", "--keyword", "diffusion",
                "--exclude", "survey", "--author", "Doe, Jane", "--cadence", "weekly", "--weekday", "thu")
    assert added.exit_code == 0, added.output
    (exported,) = csv.DictReader(io.StringIO(run("export").stdout))
    shown = json.loads(run("show", "wk@example.org", "--json").stdout)
    (in_list,) = listed(run)
    for found in (shown, in_list):
        assert set(exported) <= set(found), set(exported) - set(found)
        for column, cell in exported.items():
            value = found[column]
            assert (";".join(value) if isinstance(value, list) else value) == cell, column
    text = run("show", "wk@example.org").stdout
    assert "cadence:    weekly on thu" in text
    assert "Computer Vision" in text and "diffusion" in text and "survey" in text and "Doe, Jane" in text
    assert "weekly on thu" in run("list").stdout


@pytest.mark.parametrize("command", [["add", "wk@example.org", "--weekday", "thu"],
                                     ["update", "ada@example.org", "--weekday", "thu"],
                                     ["update", "bo@example.org", "--cadence", "daily", "--weekday", "thu"]])
def test_a_weekday_for_a_daily_reader_is_a_usage_error(run, command: list[str]) -> None:
    run("add", "ada@example.org")
    run("add", "bo@example.org", "--cadence", "weekly", "--weekday", "fri")
    before = listed(run)
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert "--weekday thu applies to weekly readers only" in result.output and "add --cadence weekly" in result.output
    assert listed(run) == before


def test_a_weekday_with_weekly_cadence_or_for_a_weekly_reader_is_taken(run) -> None:
    assert run("add", "ada@example.org", "--cadence", "weekly", "--weekday", "thu").exit_code == 0
    assert "now weekly on fri" in run("update", "ada@example.org", "--weekday", "fri").stdout
    assert run("add", "bo@example.org").exit_code == 0
    assert "now weekly on tue" in run("update", "bo@example.org", "--cadence", "weekly", "--weekday", "tue").stdout


def test_an_address_without_at_sign_reads_as_one_sentence(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nada-at-example.org,Ada\n", encoding="utf-8")
    result = run("import", str(bad))
    assert result.exit_code == 1
    assert "must have an @-sign; check the spelling" in result.stderr
    assert ".;" not in result.stderr


def test_counts_of_one_are_singular(run, tmp_path: Path) -> None:
    run("add", "ada@example.org")
    assert run("list").stdout.splitlines()[-1] == "1 subscriber"
    assert "wrote 1 subscriber to" in run("export", "--output", str(tmp_path / "out.csv")).stderr


def test_import_help_names_every_column_the_import_reads() -> None:
    from newsletter.subscriber_csv import CSV_COLUMNS

    shown = " ".join(CliRunner().invoke(cli, ["subscribers", "import", "--help"]).output.split())
    assert [column for column in CSV_COLUMNS if column not in shown] == []
