"""``parag export`` and ``parag migrate``: moving records out of a store, or into another."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson

from parag.cli.options import (
    json_option, load_store, milvus_address, milvus_store, param_option, parse_params, store_argument, token_option,
)
from parag.cli.output import emit_json, key_values, progress
from parag.cli.readers import pyarrow_parquet
from parag.errors import InvalidArgumentError
from parag.migration import migrate as parag_migrate
from parag.vectorstore import FAISSVectorStore, GetResult

CHUNK = 50_000  # records read from the store at a time

class OutputFile(click.Path):
    """A file to write, in a directory that exists (else bad usage, exit code 2, naming the
    directory rather than the temporary file the write would fail on)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if not path.parent.is_dir():
            self.fail(f"the directory {str(path.parent)!r} does not exist: create it first", param, ctx)
        return path


output_file = OutputFile()


def chunks(store: FAISSVectorStore, with_vectors: bool) -> Iterator[GetResult]:
    """Every record of ``store``, ``CHUNK`` at a time, oldest first."""
    ids = store.ids()
    with progress("reading", len(ids)) as advance:
        for start in range(0, len(ids), CHUNK):
            yield store.get(ids[start : start + CHUNK], include_vectors=with_vectors)
            advance(min(CHUNK, len(ids) - start))


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A temporary path that becomes ``path`` only if the block completes."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@click.command()
@store_argument
@click.argument("out", type=output_file)
@click.option("--vectors", "vectors_out", type=output_file, help="Also write the vectors, in the same order, to this .npy.")
@json_option
def export(store: Path, out: Path, vectors_out: Path | None, as_json: bool) -> None:
    """Write every record of a store to OUT: .jsonl or .parquet (needs pyarrow).

    Each .jsonl line is {"id": ..., "metadata": {...}, "document": ...}; a .parquet file
    has the columns id, metadata (as JSON text) and document. Both are what `parag build --records` reads, so
    export + build round-trips a store. Vectors of a cosine store come out normalised, as
    stored. Files appear only once complete; OUT and --vectors must be two files, outside STORE.

    \b
    Examples:
      parag export my-store records.jsonl --vectors vectors.npy
      parag build copy --records records.jsonl --vectors vectors.npy --index HNSW --metric cosine
    """
    if out.suffix not in (".jsonl", ".parquet"):
        raise click.BadParameter(f"OUT must end in .jsonl or .parquet, got {out.name!r}", param_hint="OUT")
    if vectors_out is not None and _same_file(out, vectors_out):
        raise click.BadParameter(f"{vectors_out} is OUT ({out}) itself: give the vectors a file of their own, "
                                 "e.g. vectors.npy", param_hint="--vectors")
    for path, hint in ((out, "OUT"), (vectors_out, "--vectors")):
        if path is not None and _inside(path, store):  # it could replace one of the store's own files
            raise click.BadParameter(f"{path} is inside the store {store}: write it outside", param_hint=hint)
    with ExitStack() as stack:
        s = stack.enter_context(load_store(store, read_only=True))
        tmp_out = stack.enter_context(replaced(out))
        write = _parquet_writer(tmp_out) if out.suffix == ".parquet" else _jsonl_writer(tmp_out)
        vectors = None if vectors_out is None else stack.enter_context(_npy_writer(vectors_out, len(s), s.dimension))
        row = 0
        for got in chunks(s, with_vectors=vectors is not None):
            write(got)
            if vectors is not None:
                vectors.write(np.ascontiguousarray(got.vectors, dtype="<f4").data)
            row += len(got.ids)
        write(None)
    summary = {"exported": row, "records": str(out), "vectors": None if vectors_out is None else str(vectors_out)}
    emit_json(summary) if as_json else key_values(f"exported {store}", summary.items())


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: spelled differently, through a symlink, or hard-linked."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _inside(path: Path, directory: Path) -> bool:
    """Whether writing ``path`` (os.replace puts it in its resolved parent) writes inside ``directory``."""
    where, top = path.parent.resolve(), directory.resolve()
    return where == top or top in where.parents


@contextmanager
def _npy_writer(path: Path, rows: int, dimension: int) -> Iterator[Any]:
    """A file of a ``rows`` x ``dimension`` float32 .npy array, its rows to be written in
    order. Plain writes, not a memory map: a full disk is an OSError, not a SIGBUS."""
    with replaced(path) as tmp, open(tmp, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (rows, dimension)}
        np.lib.format.write_array_header_1_0(f, header)
        yield f


def _jsonl_writer(path: Path) -> Any:
    f = open(path, "wb")  # noqa: SIM115 - closed by the final write(None)

    def write(got: GetResult | None) -> None:
        if got is None:
            f.close()
            return
        f.writelines(orjson.dumps(row) + b"\n" for row in _rows(got))

    return write


def _rows(got: GetResult) -> Iterator[dict[str, Any]]:
    """The records as export writes them: id, metadata and document, in the order build reads."""
    for i, m, d in zip(got.ids, got.metadata, got.documents):
        yield {"id": i, "metadata": m, "document": d}


def _parquet_writer(path: Path) -> Any:
    pq = pyarrow_parquet()
    import pyarrow as pa

    writer = None

    def open_writer(id_type: Any) -> Any:
        return pq.ParquetWriter(path, pa.schema([("id", id_type), ("metadata", pa.string()), ("document", pa.string())]))

    def write(got: GetResult | None) -> None:
        nonlocal writer
        if got is None:
            (writer or open_writer(pa.int64())).close()  # an empty store: an empty file
            return
        if writer is None:  # the id column's type is the store's kind of id, seen in its first chunk
            writer = open_writer(pa.string() if got.ids and isinstance(got.ids[0], str) else pa.int64())
        text = [orjson.dumps(m).decode() for m in got.metadata]
        writer.write_table(pa.table({"id": got.ids, "metadata": text, "document": got.documents}, schema=writer.schema))

    return write


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option("--index", "index_type", help="Index of the new store (default: SRC's).")
@click.option("--metric", help="Metric of the new store (default: SRC's).")
@token_option
@param_option
@json_option
def migrate(src: str, dst: str, index_type: str | None, metric: str | None, token: str | None,
            params: tuple[str, ...], as_json: bool) -> None:
    """Copy every record of the store SRC into a new store DST, optionally with another
    index, metric or parameters.

    SRC and DST are store directories or Milvus collections, written as the server's URI
    with the collection after '#' (default collection: parag), e.g.
    http://127.0.0.1:19530#docs. A DST directory must not exist or be empty; a DST
    collection is created, or must have the same configuration. Ids and metadata are kept
    (DST generates ids above the largest it holds, not SRC's next id: see README, Deletes and
    ids); copying is idempotent (upsert), so an interrupted migrate can be rerun. Parameters are
    SRC's when the index type stays, else the new index's defaults, unless given with
    --param; those nobody set on SRC (they follow its size) are left to DST to choose. A
    cosine store holds unit vectors: migrating it to another metric uses them.

    \b
    Examples:
      parag migrate flat-store hnsw-store --index HNSW --param M=16
      parag migrate my-store http://127.0.0.1:19530#docs --token root:Milvus
      parag migrate https://xyz.zillizcloud.com#docs backup-store --json
    """
    with ExitStack() as stack:  # both stores closed at the end, also on an error
        if milvus_address(src) is None:
            source: Any = stack.enter_context(load_store(Path(src), read_only=True))
        else:
            uri, collection = milvus_address(src)  # type: ignore[misc]
            source = stack.enter_context(milvus_store().open(collection, uri=uri, token=token))
        same_index = index_type is None or index_type.lower() == source.index_type.lower()
        fixed = {k: v for k, v in source.params.items() if k not in source.auto_params}  # the rest follow the size
        config = {**(fixed if same_index else {}), **parse_params(params)}
        shape = (source.dimension, index_type or source.index_type, metric or source.metric)
        address = milvus_address(dst)
        if address is None:
            dst_path = Path(dst)
            if dst_path.exists() and not (dst_path.is_dir() and not any(dst_path.iterdir())):
                raise InvalidArgumentError(f"{dst} exists and is not an empty directory: migrate writes a new store")
            target: Any = stack.enter_context(FAISSVectorStore(*shape, **config))
        else:
            target = stack.enter_context(
                milvus_store()(*shape, uri=address[0], token=token, collection=address[1], **config)
            )
        count = parag_migrate(source, target, progress=not as_json)
        if address is None:
            target.save(dst_path)
        summary = {"source": src, "store": dst, "count": count, "index_type": target.index_type,
                   "metric": target.metric, "params": target.params}
    emit_json(summary) if as_json else key_values(f"migrated {src} -> {dst}", summary.items())

