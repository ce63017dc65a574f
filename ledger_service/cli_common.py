"""What every command line module shares: one way to fail, one way to choose a report's language."""

from __future__ import annotations

import sys

import click

from . import i18n
from .errors import Refusal


def _use_language(_ctx, _param, value: str | None) -> str:
    """The report's language: --lang, else zh when $LC_ALL/$LC_MESSAGES/$LANG says zh, else en."""
    language = i18n.report_language(value)
    i18n.use(language)
    return language


lang_option = click.option("--lang", type=click.Choice(i18n.LANGUAGES), default=None, callback=_use_language,
                           help="The report's language, zh or en (default: zh when $LANG is zh_*, else en); "
                                "JSON and exit codes are the same in every language.")


def fail(exc: Exception) -> None:
    """One unstyled line on stderr (grep-able, never wrapped), exit code 2."""
    from .store.db import redact  # heavy (SQLAlchemy): imported only when a command fails

    if isinstance(exc, Refusal):
        click.echo(redact(f"refused [{exc.rule}] {exc.detail}"), err=True)
    else:  # a KeyError's str() is its repr ('…' in quotes): say its message as a plain sentence
        text = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        click.echo(redact(f"error: {text}"), err=True)  # a URL's password never reaches the terminal
    sys.exit(2)
