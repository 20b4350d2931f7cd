"""Printing: JSON for scripts, rich tables for people, progress bars on stderr."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

METADATA_WIDTH = 80  # characters of metadata JSON shown in a table cell
DOCUMENT_WIDTH = 60  # characters of a document shown in a table cell


def stdout() -> Console:
    # Made per call, so that click's test runner, which swaps sys.stdout, sees the output.
    return Console(soft_wrap=False, highlight=False)


def emit_json(value: Any) -> None:
    """``value`` as JSON on stdout, one document, numpy numbers included."""
    click.echo(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2).decode())


def say(text: str) -> None:
    stdout().print(text)


def clip(text: str, width: int = METADATA_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def compact_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print ``rows`` as a table; numbers right-aligned."""
    t = Table(title=title, title_justify="left")
    rows = [list(r) for r in rows]
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
        t.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        t.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r))
    stdout().print(t)


def key_values(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print a bold title, then ``name  value`` lines in two aligned columns."""
    t = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    t.add_column(style="bold")
    t.add_column()
    for name, value in pairs:
        shown = compact_json(value) if isinstance(value, (dict, list)) else value
        t.add_row(name, f"{shown:.4f}" if isinstance(shown, float) else str(shown))
    console = stdout()
    console.print(f"[bold]{title}[/bold]")
    console.print(t)


def records_table(title: str | None, records: Sequence[dict[str, Any]]) -> None:
    """Hits or records (``id``, optional ``score``, ``document``, ``metadata``) as a table;
    the document column only when some record has one."""
    scored = bool(records) and "score" in records[0]
    documented = any(r.get("document") is not None for r in records)
    columns = ["id", *(["score"] if scored else []), *(["document"] if documented else []), "metadata"]
    rows = [
        [r["id"], *([r["score"]] if scored else []), *([clip(r["document"] or "", DOCUMENT_WIDTH)] if documented else []),
         clip(compact_json(r["metadata"]))]
        for r in records
    ]
    table(title, columns, rows)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr, drawn only when stderr is a terminal.

    Yields ``advance(n)``.
    """
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
