from __future__ import annotations

from pathlib import Path

import pytest

from helpers import PROJECT_ROOT_CONFIG, run, write_config
from newsletter.config import load_settings
from newsletter.errors import ConfigError


def test_shipped_config_loads_with_the_five_seed_categories():
    settings = load_settings(PROJECT_ROOT_CONFIG)
    assert {"Multi-Modal", "Natural Language Processing", "Computer Vision", "Machine Learning",
            "Reinforcement Learning"} <= set(settings.categories.taxonomy)
    assert settings.site.base_url.startswith("https://")


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    monkeypatch.chdir("/")
    settings = load_settings(config)
    assert settings.resolve(settings.feeds.dir) == tmp_path / "feeds"
    assert settings.digest_paths() == [str(tmp_path / "digests")]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("[smtp]\nhots = 'x'\n", "smtp.hots"),
        ("[smtp]\nport = 'twenty-five'\n", "smtp.port"),
        ("[smtp]\nport = true\n", "smtp.port"),
        ("[nonsense]\nx = 1\n", "[nonsense]"),
        ("[categories]\nfallback = 'Astrology'\n", "categories.fallback"),
        ("[categories.taxonomy]\n'Vision' = 'image'\n", "categories.taxonomy.Vision"),
    ],
)
def test_bad_keys_exit_2_naming_the_key_and_the_file(tmp_path, extra, named):
    config = write_config(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert named in str(caught.value)
    assert str(config) in str(caught.value)
    result = run(config, "ingest")
    assert result.exit_code == 2
    assert named in result.stderr


def test_invalid_toml_names_the_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[site\ntitle = 1\n")
    result = run(config, "ingest")
    assert result.exit_code == 2
    assert str(config) in result.stderr


def test_missing_config_exits_2(tmp_path):
    result = run(tmp_path / "absent.toml", "ingest")
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_config_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    config = write_config(tmp_path, digests='["nowhere/*.md"]')
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(config))
    result = run(None, "ingest")
    assert result.exit_code == 2
    assert "digests.paths" in result.stderr and str(config) in result.stderr


def test_every_command_has_help_and_the_version_prints():
    from newsletter.cli import cli

    assert run(None, "--version").output.startswith("newsletter, version")
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        result = run(None, name, "--help")
        assert result.exit_code == 0, name
        assert "Usage:" in result.output


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "newsletter", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "ingest" in done.stdout


def test_unknown_option_is_a_usage_error(tmp_path: Path):
    assert run(write_config(tmp_path), "ingest", "--bogus").exit_code == 2


@pytest.mark.usefixtures("store_backend")
def test_an_unwritable_output_path_is_a_clear_error_not_a_traceback(tmp_path):
    config = write_config(tmp_path)
    result = run(config, "subscribers", "export", "--output", str(tmp_path / "missing" / "dir" / "x.csv"))
    assert result.exit_code == 1
    assert "cannot read or write" in result.stderr and "missing/dir/x.csv" in result.stderr


def test_a_missing_ca_file_is_a_config_error_naming_the_key_and_the_resolved_path(tmp_path):
    config = write_config(tmp_path, "[smtp]\nsecurity = 'starttls'\nca_file = 'certs/nope.pem'\n")
    for command in (("send",), ("worker", "--exit-when-idle"), ("publish",)):
        result = run(config, *command)
        assert result.exit_code == 2, result.output
        assert f"{config}: smtp.ca_file: {tmp_path / 'certs' / 'nope.pem'} is not a file" in result.stderr
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "nope.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    assert load_settings(config).smtp.ca_file == str(tmp_path / "certs" / "nope.pem")  # wherever the command runs


def test_a_missing_config_named_by_the_environment_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "nope.toml"))
    result = run(None, "status")
    assert result.exit_code == 2
    assert f"config file {tmp_path / 'nope.toml'} not found (the path comes from $NEWSLETTER_CONFIG)" in result.stderr
    assert "unset $NEWSLETTER_CONFIG" in result.stderr


def leaf_commands(group, path=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_has_an_example_in_its_help():
    from newsletter.cli import cli

    missing = []
    for path, _command in leaf_commands(cli):
        shown = run(None, *path, "--help")
        assert shown.exit_code == 0, path
        body = shown.output.partition("Options:")[0]
        if f"newsletter {' '.join(path)}" not in body:
            missing.append(" ".join(path))
    assert not missing, f"give these commands an example in their docstring: {missing}"


def test_help_names_no_schema_revision():
    import re

    for path in (("db", "current"), ("db", "upgrade")):
        assert not re.search(r"revision \d{4}", run(None, *path, "--help").output), path
