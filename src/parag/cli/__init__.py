"""``parag``: build, inspect, verify, search and move vector stores from the shell.

Run ``parag --help`` for the subcommands and ``parag COMMAND --help`` for each one's options
and examples. The command needs the ``cli`` extra: ``pip install 'parag[cli]'``.

Exit codes (the same for every subcommand):

==== ==========================================================================
0    success (``verify``: the store is sound)
1    any other error: bad input data (a malformed line or file, a wrong
     dimension), an invalid index parameter, an unknown id, a failed write...
2    bad usage: an unknown option, a missing argument, malformed JSON in an
     option, an input file or output directory that does not exist (click's
     own code), one file given for two outputs
3    no store at the path given (missing, or not a parag store)
4    the store is damaged (a checksum, size or count does not match) or was
     written by a newer parag
130  interrupted (Ctrl-C): a store being written is left as it was
==== ==========================================================================
"""

from __future__ import annotations

try:
    import click
    import rich  # noqa: F401 - checked here so that every subcommand can rely on it
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from parag.errors import MissingDependencyError

    raise MissingDependencyError(
        f"the parag command line needs click and rich ({exc.name} is missing): "
        "pip install 'parag[cli]'"
    ) from exc

from parag.cli.build import build
from parag.cli.errors import ParagGroup
from parag.cli.inspect import info, verify
from parag.cli.maintain import compact, delete, tune
from parag.cli.query import get, search
from parag.cli.transfer import export, migrate

__all__ = ["cli", "main"]


@click.group(cls=ParagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parag", prog_name="parag")
def cli() -> None:
    """Build, inspect, verify, search and move parag vector stores.

    A store is a directory written by FAISSVectorStore.save. Every command that changes
    a store loads it, changes it through parag's public API and saves it atomically at
    the end: an error or Ctrl-C leaves the old store as it was.

    \b
    Examples:
      parag build my-store --vectors vectors.npy --records texts.jsonl --index HNSW --metric cosine
      parag info my-store
      parag search my-store --like 3 -k 5
      parag verify my-store --json

    \b
    Exit codes:
      0    success (verify: the store is sound)
      1    other error (bad input data, invalid parameter, unknown id...)
      2    bad usage (unknown option, malformed JSON option, missing input file)
      3    no store at the path
      4    the store is damaged, or written by a newer parag
      130  interrupted (Ctrl-C); the store is left as it was
    """


for _command in (build, info, verify, search, get, delete, compact, tune, export, migrate):
    cli.add_command(_command)


def main() -> None:
    """The ``parag`` console script."""
    cli(prog_name="parag")
