"""``parag build``: a store from vector and record files, streamed in batches."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from parag.cli.options import (
    json_option, load_store, param_option, parse_params, store_argument, vector_column_option,
)
from parag.cli.output import emit_json, key_values, progress
from parag.cli.readers import Record, Vectors, read_ids, read_records
from parag.errors import DimensionMismatchError, InvalidArgumentError, ParagError, StoreNotFoundError
from parag.vectorstore import FAISSVectorStore

input_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@store_argument
@click.option("--vectors", "vectors_path", required=True, type=input_file,
              help="Vectors: a 2-D .npy array (read in batches), or a .parquet file with a list column.")
@click.option("--records", "records_path", type=input_file,
              help="One record per vector row (.jsonl or .parquet): {\"id\": 7, \"metadata\": {...}, \"document\": "
                   "\"...\"}, or a flat object whose fields other than the id are the metadata. Ids are ints or strings.")
@click.option("--metadata", "metadata_path", type=input_file,
              help="One metadata object per vector row (.jsonl or .parquet); ids from --ids, or generated.")
@click.option("--ids", "ids_path", type=input_file, help="Ids: a 1-D .npy array of non-negative ints or of strings, one per row.")
@click.option("--id-field", default="id", show_default=True, help="The id's field in --records.")
@click.option("--documents-field", metavar="NAME",
              help="A flat record's field NAME is its document (text, stored apart from the metadata). "
                   "A nested record's \"document\" is stored without this option.")
@vector_column_option
@click.option("--index", "index_type", help="Index of a new store: Flat (default), IVFFlat or HNSW.")
@click.option("--metric", help="Metric of a new store: L2 (default), IP or cosine.")
@click.option("--storage", help="Vector storage of a new store: float32 (default), float16, sq8 or pq "
              "(same as --param storage=...; see also --param rerank=N, pq_m=M).")
@param_option
@click.option("--batch-size", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Rows read and added at a time.")
@json_option
def build(
    store: Path, vectors_path: Path, records_path: Path | None, metadata_path: Path | None,
    ids_path: Path | None, id_field: str, documents_field: str | None, vector_column: str,
    index_type: str | None, metric: str | None, storage: str | None, params: tuple[str, ...], batch_size: int,
    as_json: bool,
) -> None:
    """Build a store from files, or append to an existing one.

    Rows are read and added BATCH_SIZE at a time (a progress bar shows on a terminal), and
    the store is saved once, atomically, at the end: an error or Ctrl-C leaves an existing
    store exactly as it was. Ids (ints, or strings: a store holds one kind) come from --ids,
    from the records' id field, or are generated (ints above every id the store ever held,
    uuid4 hex strings in a string-id store). Documents are stored apart from the metadata:
    a nested record's "document", or a flat record's --documents-field.

    \b
    Examples:
      parag build my-store --vectors vectors.npy --records texts.jsonl --index HNSW --metric cosine
      parag build my-store --vectors more.npy --metadata more.jsonl        # append
      parag build my-store --vectors x.npy --ids ids.npy --index HNSW --param M=16 --param ef_search=128
      parag build my-store --vectors table.parquet --records table.parquet  # a vector column + fields
      parag build my-store --vectors x.npy --index HNSW --storage sq8       # 8-bit codes, exact re-ranking
    """
    if records_path and metadata_path:
        raise click.UsageError("give --records or --metadata, not both")
    if documents_field and not records_path:
        raise click.UsageError("--documents-field needs --records")
    started = time.perf_counter()
    vectors = Vectors(vectors_path, vector_column)
    options = parse_params(params) | ({"storage": storage} if storage else {})
    target = _open_target(store, vectors.dimension, index_type, metric, options)
    before = len(target)
    records = None
    if records_path or metadata_path:
        records = read_records(
            records_path or metadata_path, flat_metadata=metadata_path is not None, id_field=id_field,
            documents_field=documents_field, skip_column=vector_column,
        )
    ids = read_ids(ids_path) if ids_path else None
    inputs = " and ".join(dict.fromkeys(str(p) for p in (vectors_path, records_path or metadata_path, ids_path) if p))
    first = 0  # the batch's first row (a .parquet file's batches may be shorter than batch_size)
    with progress("adding", vectors.rows) as advance:
        for x in vectors.batches(batch_size):
            batch = None if records is None else _take(records, len(x), first, vectors)
            batch_ids = _record_ids(batch)
            if ids is not None:
                if batch_ids is not None:
                    raise click.UsageError(f"the records carry ids ({batch[0].where}) and --ids gives them too: drop one")
                batch_ids = list(itertools.islice(ids, len(x)))
            try:
                target.add(x, None if batch is None else [r.metadata for r in batch], batch_ids,
                           None if batch is None else [r.document for r in batch])
            except ParagError as exc:  # say which rows of which files; every such error means bad input (exit code 1)
                raise InvalidArgumentError(f"rows {first}-{first + len(x) - 1} of {inputs}: {exc}") from exc
            advance(len(x))
            first += len(x)
    for leftover, path, what in ((records, records_path or metadata_path, "records"), (ids, ids_path, "ids")):
        if leftover is not None and next(leftover, None) is not None:
            raise InvalidArgumentError(f"{path} has more {what} than {vectors_path} has rows ({vectors.rows})")
    target.save(store)
    summary = {
        "store": str(store), "added": len(target) - before, "count": len(target),
        "index_type": target.index_type, "metric": target.metric, "params": target.params,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        emit_json(summary)
    else:
        key_values(f"built {store}", summary.items())


def _open_target(
    path: Path, dimension: int, index_type: str | None, metric: str | None, params: dict[str, Any]
) -> FAISSVectorStore:
    """The store at ``path`` to append to, or a new one configured by the options."""
    if path.is_dir() and not any(path.iterdir()):
        existing = None
    else:
        try:
            existing = load_store(path)
        except StoreNotFoundError:
            existing = None
    if existing is None:
        return FAISSVectorStore(dimension, index_type or "Flat", metric, **params)
    asked = {"--index": (index_type, existing.index_type), "--metric": (metric, existing.metric)}
    asked.update({f"--param {k}": (v, existing.params.get(k)) for k, v in params.items()})
    for option, (given, actual) in asked.items():
        if given is not None and str(given).lower() != str(actual).lower():
            raise InvalidArgumentError(
                f"{path} is a {existing.index_type} {existing.metric} store with {existing.params or 'no parameters'}; "
                f"{option} {given} cannot change it when appending (parag migrate rebuilds a store with other settings)"
            )
    if existing.dimension != dimension:
        raise DimensionMismatchError(f"the vectors have dimension {dimension} but the store {path} has {existing.dimension}")
    return existing


def _take(records: Iterator[Record], n: int, first: int, vectors: Vectors) -> list[Record]:
    batch = list(itertools.islice(records, n))
    if len(batch) < n:
        raise InvalidArgumentError(
            f"there are {first + len(batch)} records for the {vectors.rows} rows of {vectors.path}: one per row is needed"
        )
    return batch


def _record_ids(batch: list[Record] | None) -> list[int | str] | None:
    """The batch's ids if its records carry them (all or none must)."""
    if not batch or batch[0].id is None:
        missing = next((r for r in batch or [] if r.id is not None), None)
    else:
        missing = next((r for r in batch if r.id is None), None)
    if missing is not None:
        raise InvalidArgumentError(f"{missing.where}: every record must have an id, or none may (this one differs from the first)")
    return None if not batch or batch[0].id is None else [r.id for r in batch]
