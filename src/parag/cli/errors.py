"""Exit codes, and one-line error messages instead of tracebacks."""

from __future__ import annotations

import os
from typing import Any

import click

from parag.errors import CorruptStoreError, NotAStoreError, ParagError, StoreNotFoundError

OK = 0
ERROR = 1
USAGE = 2  # click's own code for bad usage
NOT_FOUND = 3
CORRUPT = 4
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception a command raised."""
    if isinstance(exc, (StoreNotFoundError, NotAStoreError)):
        return NOT_FOUND
    if isinstance(exc, CorruptStoreError):
        return CORRUPT
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return ERROR


def one_line(exc: BaseException) -> str:
    """The exception as one line: parag's messages are sentences already."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted: nothing was saved, every store is as it was"
    text = " ".join(str(exc).split())
    if isinstance(exc, ParagError):
        return text
    if isinstance(exc, OSError):
        return f"{exc.strerror or text}: {exc.filename}" if exc.filename else text
    # Not an error parag raises on purpose: a bug. Say so, in one line all the same.
    return f"unexpected {type(exc).__name__}: {text} (a bug: please report it; PARAG_DEBUG=1 shows the traceback)"


class ParagGroup(click.Group):
    """A click group whose subcommands fail with one line on stderr and a documented code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the whole point
            if os.environ.get("PARAG_DEBUG") and not isinstance(exc, KeyboardInterrupt):
                raise
            click.echo(f"parag: error: {one_line(exc)}", err=True)
            ctx.exit(exit_code(exc))
