"""Config values that cannot work are refused when the config is loaded, by the real CLI, with exit 2 and
the key named; the shipped example.org values load with a warning, not an error; a closed output pipe
ends a command quietly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT_CONFIG, run, write_config


def config_with(folder: Path, section: str, line: str) -> Path:
    """The test config with ``line`` added to ``[section]`` (made when the config has none)."""
    path = write_config(folder)
    text = path.read_text(encoding="utf-8")
    header, key = f"[{section}]\n", line.partition("=")[0].strip()
    existing = re.compile(rf"^{re.escape(key)} = .*$", re.MULTILINE)
    if existing.search(text.partition(header)[2]):  # both tables the test config has hold distinct keys
        text = existing.sub(lambda _match: line, text, count=1)
    elif header in text:
        text = text.replace(header, header + line + "\n", 1)
    else:
        text += f"\n{header}{line}\n"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("section", "line", "key"), [
    ("smtp", "timeout = nan", "smtp.timeout"),
    ("smtp", "rate_limit = inf", "smtp.rate_limit"),
    ("smtp", "retry_backoff = nan", "smtp.retry_backoff"),
    ("web", "subscribe_ip_per_hour = nan", "web.subscribe_ip_per_hour"),
    ("web", "subscribe_address_per_hour = inf", "web.subscribe_address_per_hour"),
    ("smtp", "timeout = 1e9\nlease_seconds = 1e10", "smtp.timeout"),
    ("smtp", "lease_seconds = 1e12", "smtp.lease_seconds"),
    ("smtp", "retry_delay = 1e9", "smtp.retry_delay"),
    ("schedule", "misfire_grace_time = 10000000000", "schedule.misfire_grace_time"),
    ("schedule", "recheck_minutes = 1000000000", "schedule.recheck_minutes"),
    ("schedule", "deadline = 100000000", "schedule.deadline"),
    ("feeds", "window_days = 1000000000", "feeds.window_days"),
    ("web", "pending_days = 0", "web.pending_days"),
    ("web", "pending_days = 100000", "web.pending_days"),
    ("store", 'url = "sqlite://"', "store.url"),
    ("store", 'url = "sqlite:///:memory:"', "store.url"),
    ("store", 'url = "sqlite:///file:db?mode=memory&uri=true"', "store.url"),
])
def test_a_value_that_cannot_work_exits_2_naming_the_key(tmp_path: Path, section: str, line: str, key: str) -> None:
    result = run(config_with(tmp_path, section, line), "status")
    assert result.exit_code == 2, result.output
    assert key in result.stderr


@pytest.mark.parametrize(("section", "line", "key"), [
    ("email", r'from = "Papers <papers@example.org>\r\nBcc: victim@example.net"', "email.from"),
    ("email", r'reply_to = "help@example.org\nBcc: victim@example.net"', "email.reply_to"),
    ("email", r'list_id = "papers.example.org\r\nBcc: victim@example.net"', "email.list_id"),
    ("email", r'subject = "{title}\r\nBcc: victim@example.net"', "email.subject"),
    ("email", r'unsubscribe_mailto = "out@example.org\r\n"', "email.unsubscribe_mailto"),
    ("smtp", r'envelope_from = "bounces@example.org\nBcc: victim@example.net"', "smtp.envelope_from"),
    ("site", r'author = "Papers\u2028Bcc: victim@example.net"', "site.author"),
])
def test_a_line_break_in_a_header_value_exits_2_naming_the_key(tmp_path: Path, section: str, line: str,
                                                              key: str) -> None:
    result = run(config_with(tmp_path, section, line), "status")
    assert result.exit_code == 2, result.output
    assert key in result.stderr and "control character" in result.stderr


@pytest.mark.usefixtures("store_backend")
def test_a_multi_line_postal_address_is_still_fine(tmp_path: Path) -> None:
    config = config_with(tmp_path, "email", r'postal_address = "Daily AI Papers\n1 Main Street\nSpringfield"')
    assert run(config, "status").exit_code == 0


@pytest.mark.parametrize("value", ["not an address", "Papers <papers@example.org>, other@example.org", "",
                                   "papers@localhost", "Papers <papers@>"])
def test_email_from_must_be_one_valid_address(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('from = "Test Papers <papers@example.org>"', f"from = {value!r}"))
    result = run(config, "status")
    assert result.exit_code == 2, result.output
    assert "email.from" in result.stderr and "not a valid address" in result.stderr


def test_parse_which_sends_no_mail_reads_digests_whatever_the_mail_addresses(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text().replace('from = "Test Papers <papers@example.org>"', 'from = "not an address"')
    config.write_text(text)
    digest = tmp_path / "day.md"
    digest.write_text("## Papers for 2031-07-01\n\n| Title | Authors | Summary |\n|---|---|---|\n"
                      "| A paper (https://arxiv.org/abs/3107.00001) | Ada | About it. |\n", encoding="utf-8")
    parsed = run(config, "parse", str(digest))
    assert parsed.exit_code == 0, parsed.output
    assert "3107.00001" in parsed.stdout
    assert run(config, "status").exit_code == 2  # a command that may mail still refuses it


@pytest.mark.usefixtures("store_backend")
def test_the_shipped_example_domain_is_a_warning_once_not_an_error(tmp_path: Path) -> None:
    result = run(write_config(tmp_path), "status")
    assert result.exit_code == 0
    assert result.stderr.count("warning:") == 1
    assert "site.base_url" in result.stderr and "email.from" in result.stderr and "example" in result.stderr
    assert "warning" not in result.stdout

    # The README's quick start: the shipped config, as it is, still works.
    shipped = run(PROJECT_ROOT_CONFIG, "parse", str(PROJECT_ROOT_CONFIG.parent / "examples" / "digests"))
    assert shipped.exit_code == 0 and "site.base_url" in shipped.stderr


@pytest.mark.usefixtures("store_backend")
def test_own_domains_bring_no_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("example.org", "papers.my-lab.net"))
    result = run(config, "status")
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.usefixtures("store_backend")
def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """`newsletter status | head -1`: the reader left before the output came. Not "the disk is full"."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("example.org", "papers.my-lab.net"))
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "status"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command can print anything: its first write meets a closed pipe
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, errors
    assert errors == ""


@pytest.mark.parametrize(("section", "line", "message", "example"), [
    ("schedule", "log_level = 'LOUD'", "schedule.log_level must be one of", 'log_level = "INFO"'),
    ("feeds", "window_days = -1", "feeds.window_days must be 0 (no window) or more, got -1", "window_days = 30"),
    ("smtp", "connections = 0", "smtp.connections must be greater than 0, got 0", "connections = 1"),
    ("web", "port = 0", "web.port must be between 1 and 65535", "port = 8080"),
    ("smtp", "port = 70000", "smtp.port must be between 1 and 65535", "587"),
    ("web", "subscribe_ip_burst = 0", "web.subscribe_ip_burst must be greater than 0", "subscribe_ip_burst = 10"),
    ("schedule", "recheck_minutes = 0", "schedule.recheck_minutes must be greater than 0", "recheck_minutes = 15"),
])
def test_a_value_out_of_range_comes_with_a_hint_giving_a_good_value(
        tmp_path: Path, section: str, line: str, message: str, example: str) -> None:
    config = config_with(tmp_path, section, line)
    result = run(config, "status")
    assert result.exit_code == 2
    assert f"{config}: {message}" in result.stderr
    assert example in result.stderr.partition("hint: ")[2], result.stderr


@pytest.mark.parametrize(("section", "line", "want"), [
    ("smtp", "port = 'twenty-five'", "write smtp.port in config.toml as an integer, for example port = 25"),
    ("feeds", "rss = 'yes'", "as true or false, for example rss = true"),
    ("smtp", "timeout = 'long'", "as a number, for example timeout = 30.0"),
    ("digests", "paths = 'examples'", 'as an array, for example paths = ["examples"]'),
    ("digests", "paths = [1]", 'write digests.paths[0] in config.toml as a string, for example "text"'),
    ("schedule", "deadline = 1.5", "as a string or an integer, for example deadline = 240"),
    ("site", "templates = 1", "as a path string, for example"),
])
def test_a_value_of_the_wrong_type_says_the_type_wanted_and_shows_one(
        tmp_path: Path, section: str, line: str, want: str) -> None:
    result = run(config_with(tmp_path, section, line), "status")
    assert result.exit_code == 2
    assert want in result.stderr, result.stderr
