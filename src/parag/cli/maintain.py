"""``parag delete``, ``parag compact`` and ``parag tune``: changing a store in place.

Each loads the store, changes it through the public API and saves it atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parag.cli.options import (
    filter_option, json_option, load_store, milvus_address, milvus_store, store_argument, token_option,
    vector_column_option,
)
from parag.cli.output import emit_json, key_values, say, table
from parag.cli.readers import Vectors
from parag.cli.selection import check_selection, parse_ids


@click.command()
@store_argument
@click.argument("ids", nargs=-1)
@filter_option
@click.option("--missing-ok", is_flag=True, help="Skip ids that are not stored instead of failing.")
@json_option
def delete(store: Path, ids: tuple[str, ...], filter_: dict[str, Any] | None, missing_ok: bool, as_json: bool) -> None:
    """Delete records by id, or every record a filter selects, and save the store.

    IDs are ints, or strings for a store with string ids. An unknown id is an error that
    deletes nothing (exit code 1), unless --missing-ok.

    \b
    Examples:
      parag delete my-store 4 8 15
      parag delete my-store --filter '{"source": "old.pdf"}' --json
    """
    check_selection(ids, filter_)
    s = load_store(store)
    if filter_ is None:
        deleted = s.delete(parse_ids(s, ids), missing_ok=missing_ok)
    else:
        deleted = s.delete(filter=filter_)
    if deleted:
        s.save(store)
    if as_json:
        emit_json({"deleted": deleted, "count": len(s)})
    else:
        say(f"deleted {deleted}; {len(s)} left")


@click.command()
@store_argument
@json_option
def compact(store: Path, as_json: bool) -> None:
    """Rebuild the index without its deleted vectors, and save the store.

    Writes compact a store by themselves once enough of it is deleted (10% of a Flat or
    IVFFlat index, 50% of HNSW); this does it now. `parag info` shows the deleted count.

    \b
    Example:
      parag compact my-store
    """
    s = load_store(store)
    s.compact()
    s.save(store)
    if as_json:
        emit_json({"count": len(s)})
    else:
        say(f"compacted: {len(s)} vectors, none deleted")


@click.command()
@click.argument("store")
@click.option("--queries", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Queries like the real ones (a 2-D .npy or a .parquet list column); default: stored vectors.")
@vector_column_option
@click.option("--target-recall", default=0.95, show_default=True, help="The recall@k to reach.")
@click.option("-k", "k", default=10, show_default=True, help="Recall is measured on the top k.")
@click.option("--dry-run", is_flag=True, help="Measure and print, but leave the saved store as it was.")
@token_option
@json_option
def tune(
    store: str, queries: Path | None, vector_column: str, target_recall: float, k: int, dry_run: bool,
    token: str | None, as_json: bool,
) -> None:
    """Measure recall and latency for each ef_search (HNSW) or nprobe (IVFFlat), and make the
    smallest value that reaches the target recall the store's default (saved with it).

    A compressed store (--storage float16/sq8/pq) also tunes rerank. A float32 Flat store,
    or a store not trained yet, is exact: nothing to tune.

    STORE is a store directory or a Milvus collection, written as the server's URI with the
    collection after '#' (flush it first; the value is kept in the collection as it is chosen,
    so --dry-run is for directories only).

    \b
    Examples:
      parag tune my-store --target-recall 0.98
      parag tune my-store --queries queries.npy --dry-run --json
      parag tune http://127.0.0.1:19530#docs --token root:Milvus
    """
    address = milvus_address(store)
    if address is not None and dry_run:
        raise click.UsageError("--dry-run is for store directories: a Milvus collection keeps the tuned value as it "
                               "is chosen; MilvusVectorStore(..., ef_search=N) or nprobe=N sets another")
    q = None if queries is None else Vectors(queries, vector_column).read()
    if address is None:
        s = load_store(Path(store))
        result = s.tune(q, target_recall, k)
        if result.param is not None and not dry_run:
            s.save(Path(store))
        exact = f"{s.index_type}{'' if s.is_trained else ', not trained yet'}"
    else:
        with milvus_store().open(address[1], uri=address[0], token=token) as s:
            result = s.tune(q, target_recall, k)
            exact = s.index_type if s.index_type == "Flat" else f"{s.index_type}, under 1,024 rows: searched exhaustively"
    settings = [{"value": x.value, "recall": x.recall, "latency_ms": x.latency_ms}
                | ({} if x.rerank is None else {"rerank": x.rerank}) for x in result.settings]
    if as_json:
        emit_json({"param": result.param, "value": result.value, "rerank": result.rerank, "recall": result.recall,
                   "reached": result.reached, "saved": result.param is not None and not dry_run, "settings": settings})
        return
    if result.param is None:
        say(f"{store} is exact ({exact}): nothing to tune")
        return
    reranked = result.rerank is not None and result.param != "rerank"
    table(f"recall@{k} and median single-query latency",
          [result.param, *(["rerank"] if reranked else []), "recall", "latency ms"],
          [[x["value"], *([x["rerank"]] if reranked else []), x["recall"], x["latency_ms"]] for x in settings])
    key_values("chosen", [(result.param, result.value), *([("rerank", result.rerank)] if reranked else []),
                          ("recall", result.recall), ("reached", result.reached), ("saved", not dry_run)])
