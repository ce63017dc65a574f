"""What every command line module shares: one way to fail."""

from __future__ import annotations

import sys

import click

from .errors import Refusal


def fail(exc: Exception) -> None:
    """One unstyled line on stderr (grep-able, never wrapped), exit code 2."""
    if isinstance(exc, Refusal):
        click.echo(f"refused [{exc.rule}] {exc.detail}", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(2)
