"""What every command line module shares: one way to fail."""

from __future__ import annotations

import sys

import click

from .errors import Refusal


def fail(exc: Exception) -> None:
    """One unstyled line on stderr (grep-able, never wrapped), exit code 2."""
    from .store.db import redact  # heavy (SQLAlchemy): imported only when a command fails

    if isinstance(exc, Refusal):
        click.echo(redact(f"refused [{exc.rule}] {exc.detail}"), err=True)
    else:  # a KeyError's str() is its repr ('…' in quotes): say its message as a plain sentence
        text = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        click.echo(redact(f"error: {text}"), err=True)  # a URL's password never reaches the terminal
    sys.exit(2)
