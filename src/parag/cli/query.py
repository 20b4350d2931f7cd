"""``parag search`` and ``parag get``: reading a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parag.cli.options import JSONParam, filter_option, json_option, load_store, store_argument, vector_column_option
from parag.cli.output import emit_json, records_table
from parag.cli.readers import Vectors
from parag.cli.selection import check_selection, parse_ids


@click.command()
@store_argument
@click.option("--vector", type=JSONParam(expect=list), metavar="JSON", help="One query vector, e.g. '[0.1, 0.2, ...]'.")
@click.option("--vectors", "vectors_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A batch of queries: a 2-D .npy array, or a .parquet file with a list column; one result list per row.")
@vector_column_option
@click.option("--like", metavar="ID", help="Use the stored vector of ID as the query (ID itself is left out).")
@click.option("-k", "k", default=10, show_default=True, help="Hits per query.")
@filter_option
@click.option("--ef-search", type=int, help="HNSW: candidates examined, for this search only.")
@click.option("--nprobe", type=int, help="IVFFlat: clusters probed, for this search only.")
@json_option
def search(
    store: Path, vector: list[Any] | None, vectors_path: Path | None, vector_column: str, like: str | None, k: int,
    filter_: dict[str, Any] | None, ef_search: int | None, nprobe: int | None, as_json: bool,
) -> None:
    """Search a store: the K nearest vectors to a query, best first.

    Give the query as --vector, --vectors (a batch) or --like. Scores are squared L2
    distances (smaller is closer), inner products or cosine similarities (larger is closer).
    The table shows each hit's document (shortened) when the store keeps documents.
    --json prints a list of {id, score, document, metadata} for one query, a list of such
    lists for --vectors.

    \b
    Examples:
      parag search my-store --like 3 -k 5
      parag search my-store --vector '[0.1, 0.3, 0.2, 0.9]' --filter '{"source": "a"}'
      parag search my-store --vectors queries.npy -k 10 --ef-search 128 --json
    """
    if sum(x is not None for x in (vector, vectors_path, like)) != 1:
        raise click.UsageError("give exactly one query: --vector, --vectors or --like")
    if vector is not None and any(isinstance(x, (list, dict)) for x in vector):
        raise click.BadParameter(f"one query vector is a flat JSON list of numbers, got {vector!r:.80}; "
                                 "give a batch of queries as --vectors FILE", param_hint="--vector")
    extra = {"filter": filter_, "ef_search": ef_search, "nprobe": nprobe}
    with load_store(store, read_only=True) as s:
        if vectors_path is not None:
            queries = Vectors(vectors_path, vector_column)
            results = [hits for q in queries.batches(1024) for hits in s.search(q, k, **extra).records()]
        elif like is not None:
            like_id = parse_ids(s, (like,))[0]
            query = s.get([like_id], include_vectors=True).vectors[0]
            hits = s.search(query, k + 1, **extra).records()
            results = [[h for h in hits if h["id"] != like_id][:k]]
        else:
            results = [s.search(vector, k, **extra).records()]  # the store checks the numbers
    if as_json:
        emit_json(results if vectors_path is not None else results[0])
        return
    for i, hits in enumerate(results):
        records_table(f"query {i}" if vectors_path is not None else None, hits)


@click.command()
@store_argument
@click.argument("ids", nargs=-1)
@filter_option
@click.option("--vectors", "with_vectors", is_flag=True, help="Include the stored vectors (--json only).")
@json_option
def get(store: Path, ids: tuple[str, ...], filter_: dict[str, Any] | None, with_vectors: bool, as_json: bool) -> None:
    """Show stored records by id, or every record a filter selects.

    IDs are ints, or strings for a store with string ids. An unknown id is an error (exit
    code 1). --json prints a list of {id, document, metadata} (and vector, with --vectors).

    \b
    Examples:
      parag get my-store 0 1 2
      parag get my-store --filter '{"package": {"$in": ["0ad", "3dchess"]}}' --json
    """
    check_selection(ids, filter_)
    with load_store(store, read_only=True) as s:
        got = s.get(None if filter_ is not None else parse_ids(s, ids), filter=filter_, include_vectors=with_vectors)
        records = got.records()  # with_vectors: each has its "vector", a numpy row
    if as_json:
        emit_json(records)
    else:
        records_table(None, records)

