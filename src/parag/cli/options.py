"""What several subcommands share: the store argument, ``--json``, JSON and NAME=VALUE
options, ``--filter``, loading a store, and Milvus addresses (``--token``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

import click
import orjson

from parag.vectorstore import FAISSVectorStore

F = TypeVar("F", bound=Callable[..., Any])


class JSONParam(click.ParamType):
    """An option whose value is JSON text; malformed JSON is bad usage (exit code 2)."""

    name = "JSON"

    def __init__(self, *, expect: type | None = None) -> None:
        self.expect = expect

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            self.fail(f"not valid JSON ({exc}): {value!r}", param, ctx)
        if self.expect is not None and not isinstance(parsed, self.expect):
            self.fail(f"must be a JSON {self.expect.__name__}, got {value!r}", param, ctx)
        return parsed


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("M=32", "ef_search=64")`` -> ``{"M": 32, "ef_search": 64}``.

    Only the syntax is checked here; names and values are the store's to check (its error
    lists the valid ones). A value that is not an int is passed on as text for it to refuse.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE such as M=32, got {pair!r}", param_hint="--param")
        try:
            params[name.strip()] = int(value)
        except ValueError:
            params[name.strip()] = value
    return params


store_argument = click.argument("store", type=click.Path(path_type=Path))
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
filter_option = click.option(
    "--filter", "filter_", type=JSONParam(expect=dict), metavar="JSON",
    help='A metadata filter, e.g. \'{"source": "a", "year": {"$gte": 2020}}\' (see parag.filters).',
)
vector_column_option = click.option(
    "--vector-column", default="vector", show_default=True, help="The vectors' column in a .parquet file."
)
param_option = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE",
    help="An index parameter (repeatable): M, ef_construction, ef_search (HNSW); nlist, nprobe (IVFFlat); "
    "storage (float32, float16, sq8, pq), rerank, pq_m (any index).",
)


token_option = click.option("--token", envvar="MILVUS_TOKEN",
                            help="Milvus token ('user:password' or an API key); default $MILVUS_TOKEN.")


def milvus_address(text: str) -> tuple[str, str] | None:
    """``(uri, collection)`` for 'http(s)://host:port#collection'; None for a directory.

    Examples
    --------
    >>> milvus_address("http://127.0.0.1:19530#docs"), milvus_address("https://h:1"), milvus_address("my-store")
    (('http://127.0.0.1:19530', 'docs'), ('https://h:1', 'parag'), None)
    """
    if not text.startswith(("http://", "https://")):
        return None
    uri, _, collection = text.partition("#")
    return uri, collection or "parag"


def milvus_store() -> Any:
    """The MilvusVectorStore class (imported only when a command names a collection)."""
    from parag.vectorstore import MilvusVectorStore

    return MilvusVectorStore


def load_store(path: Path, *, read_only: bool = False) -> FAISSVectorStore:
    """Load the store at ``path``, verifying every checksum.

    A store that is only read is memory-mapped: its index takes almost no RAM.
    """
    return FAISSVectorStore.load(path, verify=True, mmap=read_only)
