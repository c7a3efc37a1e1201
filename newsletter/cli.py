"""The ``newsletter`` command line: a thin click layer over the pipeline stages.

Every command's docstring is its ``--help``. Domain errors (NewsletterError) become
``click.ClickException`` here and nowhere else; config and usage errors exit 2, failed work 1.
Stage modules are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter import __version__
from newsletter.config import CONFIG_ENV, Settings, default_config_path, load_settings
from newsletter.errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])


class NewsletterClickError(click.ClickException):
    """A domain error shown to the operator, with the exit code its class asks for."""

    def __init__(self, error: NewsletterError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            raise NewsletterClickError(exc) from exc

    return wrapper  # type: ignore[return-value]


class AppContext:
    """Loads the config once, on first use, so that commands which need none never fail on it."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except NewsletterError as exc:
                raise NewsletterClickError(exc) from exc
        return self._settings


pass_app = click.make_pass_decorator(AppContext)


def parse_date(_ctx: click.Context | None, _param: click.Parameter | None, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file. Default: ${CONFIG_ENV}, else ./config.toml.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Turn daily AI-paper digests into Atom feeds and category-filtered daily emails."""
    ctx.obj = AppContext(config_path or default_config_path())


def main() -> None:
    cli(prog_name="newsletter")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def echo_warnings(warnings: list[Any]) -> None:
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
