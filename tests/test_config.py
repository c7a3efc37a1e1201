from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT_CONFIG, run, write_config
from newsletter.config import DEFAULT_TAXONOMY, load_settings
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


@pytest.mark.parametrize("command", [("status", "--config"), ("subscribers", "list", "--config"),
                                     ("subscribers", "--config")])
def test_config_given_after_the_command_says_where_it_goes(tmp_path: Path, command: tuple[str, ...]):
    config = write_config(tmp_path)
    result = run(None, *command, str(config))
    assert result.exit_code == 2
    assert f"--config goes before the command: newsletter --config PATH {' '.join(command[:-1])}" in result.stderr


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


DIGEST = str(PROJECT_ROOT_CONFIG.parent / "examples" / "digests" / "2026-11-19.md")
# The commands that run without a config file, on built-in defaults, when ./config.toml is absent.
LABELS = str(PROJECT_ROOT_CONFIG.parent / "tests" / "data" / "categories-labels.csv")
WITHOUT_CONFIG = {"parse": ["parse", DIGEST], "categories eval": ["categories", "eval", LABELS]}


@pytest.mark.parametrize("command", WITHOUT_CONFIG)
def test_a_missing_config_named_by_the_environment_is_an_error_for_commands_that_need_none(
        tmp_path, monkeypatch, command):
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "nope.toml"))
    result = run(None, *WITHOUT_CONFIG[command])
    assert result.exit_code == 2, result.output
    assert f"config file {tmp_path / 'nope.toml'} not found (the path comes from $NEWSLETTER_CONFIG)" in result.stderr


@pytest.mark.parametrize("command", WITHOUT_CONFIG)
def test_a_missing_config_named_by_the_option_is_an_error_for_commands_that_need_none(tmp_path, command):
    result = run(tmp_path / "nope.toml", *WITHOUT_CONFIG[command])
    assert result.exit_code == 2, result.output
    assert f"config file {tmp_path / 'nope.toml'} not found" in result.stderr


def test_parse_needs_no_config_when_none_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.toml here: built-in defaults
    result = run(None, "parse", DIGEST)
    assert result.exit_code == 0, result.output


def taxonomy_config(folder: Path, taxonomy: dict[str, list[str]]) -> Path:
    lines = "\n".join(f"{json.dumps(name)} = {json.dumps(keywords)}" for name, keywords in taxonomy.items())
    return write_config(folder, extra=f"\n[categories]\nfallback = \"Machine Learning\"\n\n"
                                      f"[categories.taxonomy]\n{lines}\n")


def test_a_category_without_keywords_beside_the_shipped_ones_is_warned_of_twice_over(tmp_path):
    config = taxonomy_config(tmp_path, {**DEFAULT_TAXONOMY, "Robotics": []})
    result = run(config, "parse", DIGEST)
    assert result.exit_code == 0, result.output
    assert (f'warning: {config}: categories.taxonomy."Robotics" has no keywords, so it can never match'
            in result.stderr)
    assert (f"warning: {config}: categories.taxonomy differs from the shipped one (adds 'Robotics'), so the "
            "shipped category model is off") in result.stderr
    assert result.stderr.count("shipped category model is off") == 1


def test_taxonomy_warnings_go_into_the_json(tmp_path):
    taxonomy = {name: keywords for name, keywords in DEFAULT_TAXONOMY.items() if name != "Multi-Modal"}
    config = taxonomy_config(tmp_path, taxonomy)
    result = run(config, "parse", DIGEST, "--json")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["config_warnings"]
    assert any("differs from the shipped one (lacks 'Multi-Modal')" in warning for warning in warnings), warnings


@pytest.mark.parametrize("taxonomy", [
    DEFAULT_TAXONOMY,
    {**DEFAULT_TAXONOMY, "Machine Learning": []},  # the shipped model needs no keywords
    {"Robots": ["robot"], "Machine Learning": []},  # the fallback is given without keywords
], ids=["shipped", "shipped-without-keywords", "own-with-fallback"])
def test_taxonomies_that_work_as_they_read_give_no_taxonomy_warning(tmp_path, taxonomy):
    result = run(taxonomy_config(tmp_path, taxonomy), "parse", DIGEST)
    assert result.exit_code == 0, result.output
    assert "categories.taxonomy" not in result.stderr


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
