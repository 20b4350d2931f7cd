"""Exit codes, and one-line error messages instead of tracebacks."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

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


EPILOG = "Exit codes: 0 success, 1 error, 2 bad usage, 3 no store at the path, 4 damaged store, 130 interrupted."


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"parag: error: {message}", err=True)
    sys.exit(code)


class ParagGroup(click.Group):
    """A click group whose errors, usage errors included, are one line on stderr and exit
    with a documented code."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> NoReturn:
        extra["standalone_mode"] = False  # errors are reported here, one line each
        try:
            code = super().main(args, prog_name, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            fail(one_line(KeyboardInterrupt()), INTERRUPTED)
        sys.exit(code if isinstance(code, int) else OK)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.epilog = cmd.epilog or EPILOG  # every subcommand's --help ends with the exit codes
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the whole point
            if os.environ.get("PARAG_DEBUG") and not isinstance(exc, KeyboardInterrupt):
                raise
            fail(one_line(exc), exit_code(exc))
