"""Malformed input and output files: every one a one-line error that names the file (and the
column and row of a .parquet file), the documented exit code, never "unexpected ... (a bug)",
and nothing written: no store, no output, no temporary file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.cli_support import N, assert_one_line_error, inputs, invoke, run  # noqa: F401 - inputs is a fixture
from tests.conftest import oracle


def fails(*args, code: int = 1) -> str:
    """Run ``parag ARGS`` expecting exit ``code``; return its one-line error, which is not
    the CLI's message for an unexpected exception."""
    line = assert_one_line_error(invoke(*args, code=code).stderr)
    assert "a bug" not in line, line
    return line


def write_npy(path: Path, make: str) -> None:
    """One malformed (or not-a-vectors) .npy input, by name."""
    arrays = {
        "1-D": np.ones(8, np.float32), "3-D": np.ones((2, 2, 8), np.float32), "bool": np.ones((2, 8), bool),
        "complex": np.ones((2, 8), complex), "strings": np.full((2, 8), "a"), "no columns": np.ones((3, 0), np.float32),
        "NaN": np.array([[1.0] * 8, [np.nan] * 8], np.float32), "inf": np.array([[np.inf] * 8], np.float64),
    }
    if make == "empty":
        path.write_bytes(b"")
    elif make == "npz":
        np.savez(path.with_suffix(".npz"), a=np.ones((2, 8), np.float32))
        os.replace(path.with_suffix(".npz"), path)
    elif make == "text":
        path.write_text("1,2,3,4,5,6,7,8\n")
    elif make == "header only":
        path.write_bytes(np.lib.format.MAGIC_PREFIX + b"\x01\x00")
    else:
        np.save(path, arrays[make])


NPY_CASES = {  # what the message says, besides the file's name
    "empty": "empty", "npz": "npz archive", "text": "not a .npy file", "header only": "not a readable .npy",
    "1-D": "2-D array", "3-D": "2-D array", "bool": "2-D array", "complex": "2-D array", "strings": "2-D array",
    "no columns": "no numbers", "NaN": "NaN", "inf": "infinity",
}


@pytest.mark.parametrize("make", NPY_CASES)
def test_bad_vectors_npy(inputs, make):
    path = inputs["dir"] / "x.npy"
    write_npy(path, make)
    line = fails("build", inputs["store"], "--vectors", path)
    assert str(path) in line and NPY_CASES[make] in line, line
    assert not inputs["store"].exists()


@pytest.mark.parametrize("make", ["empty", "npz", "text", "1-D", "strings"])
def test_bad_query_npy_for_search_and_tune(inputs, make):
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy")
    path = inputs["dir"] / "q.npy"
    write_npy(path, make)
    assert str(path) in fails("search", inputs["store"], "--vectors", path)
    assert str(path) in fails("tune", inputs["store"], "--queries", path, "--dry-run")


@pytest.mark.parametrize("ids, message", [
    (b"", "empty"), (np.arange(N, dtype=float), "1-D array of ids"), (np.arange(N).reshape(-1, 1), "1-D array of ids"),
    (-np.arange(N), "ids[1] is -1"), (np.array([0, 2**64 - 1] * (N // 2), np.uint64), "ids[1] is 18446744073709551615"),
])
def test_bad_ids_npy(inputs, ids, message):
    path = inputs["dir"] / "ids.npy"
    path.write_bytes(ids) if isinstance(ids, bytes) else np.save(path, ids)
    line = fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--ids", path)
    assert str(path) in line and message in line, line
    assert not inputs["store"].exists()


VECTOR_COLUMNS = {  # a "vector" column (rows of dimension 2), and what the message says
    "null first": ([None, [1.0, 2.0]], "row 1 is null"),
    "null later": ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], None], "row 4 is null"),
    "empty first": ([[], [1.0, 2.0]], "row 1 is an empty list"),
    "ragged": ([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0]], "row 3 has 3 numbers"),
    "numbers": ([1.5, 2.5], "holds double"),
    "strings": (["ab", "cd"], "holds string"),
    "lists of strings": ([["a", "b"]], "holds list"),
    "no rows": ([], "no rows"),
    "null inside": ([[1.0, 2.0], [1.0, None]], "NaN"),
}


@pytest.mark.parametrize("case", VECTOR_COLUMNS)
def test_bad_parquet_vector_column(inputs, case):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows, message = VECTOR_COLUMNS[case]
    path = inputs["dir"] / "v.parquet"
    kind = pa.list_(pa.float64()) if case in ("no rows", "null first") else None
    pq.write_table(pa.table({"vector": pa.array(rows, type=kind)}), path)
    line = fails("build", inputs["store"], "--vectors", path, "--batch-size", 2)
    assert str(path) in line and message in line, line
    if "row" in message:
        assert "'vector'" in line
    assert not inputs["store"].exists()


def test_not_a_parquet_file_or_a_missing_column(inputs):
    pytest.importorskip("pyarrow")
    path = inputs["dir"] / "v.parquet"
    for data in (b"", b"id,vector\n1,2\n"):
        path.write_bytes(data)
        assert "not a readable .parquet file" in fails("build", inputs["store"], "--vectors", path)
        assert str(path) in fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--records", path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"emb": [[1.0, 2.0]]}), path)
    assert "'emb'" in fails("build", inputs["store"], "--vectors", path)
    assert not inputs["store"].exists()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_export_refuses_one_file_for_records_and_vectors(inputs):
    d = inputs["dir"]
    run("build", inputs["store"], "--vectors", d / "vectors.npy")
    (d / "sub").mkdir()
    (d / "old.jsonl").write_text("keep\n")
    os.symlink(d / "old.jsonl", d / "link.npy")
    os.link(d / "old.jsonl", d / "hard.npy")
    for out, vectors in [(d / "same.jsonl", d / "same.jsonl"), (d / "same.jsonl", d / "sub" / ".." / "same.jsonl"),
                         (d / "old.jsonl", d / "link.npy"), (d / "old.jsonl", d / "hard.npy")]:
        done = run("export", inputs["store"], out, "--vectors", vectors, code=2)  # a process: the old code died of SIGBUS
        assert "--vectors" in assert_one_line_error(done.stderr)
    assert not (d / "same.jsonl").exists() and (d / "old.jsonl").read_text() == "keep\n"
    assert leftovers(d) == []


def test_export_into_a_missing_directory_names_it_and_leaves_no_files(inputs):
    d = inputs["dir"]
    invoke("build", inputs["store"], "--vectors", d / "vectors.npy")
    for args in [(d / "missing" / "out.jsonl",), (d / "out.jsonl", "--vectors", d / "missing" / "v.npy")]:
        line = fails("export", inputs["store"], *args, code=2)
        assert f"the directory '{d / 'missing'}' does not exist" in line and ".tmp-" not in line
    assert not (d / "out.jsonl").exists() and not (d / "missing").exists() and leftovers(d) == []


def test_search_and_tune_read_queries_from_a_parquet_column(inputs):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--index", "IVFFlat", "--param", "nlist=4")
    q = inputs["x"][:5] + 0.01
    path = inputs["dir"] / "q.parquet"
    pq.write_table(pa.table({"emb": q.tolist()}), path)
    assert "'emb'" in fails("search", inputs["store"], "--vectors", path)  # no column 'vector': the message lists them
    hits = json.loads(invoke("search", inputs["store"], "--vectors", path, "--vector-column", "emb", "-k", 3,
                             "--nprobe", 4, "--json").stdout)
    assert [[h["id"] for h in row] for row in hits] == oracle(inputs["x"], q, 3, "L2")[1].tolist()
    tuned = json.loads(invoke("tune", inputs["store"], "--queries", path, "--vector-column", "emb", "--dry-run", "--json").stdout)
    assert tuned["param"] == "nprobe" and not tuned["saved"]


def test_search_vector_is_one_flat_list(inputs):
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy")
    for vector in ([[0.5] * 8], [{"a": 1}] * 8):
        assert "--vectors" in fails("search", inputs["store"], "--vector", json.dumps(vector), code=2)


def test_export_refuses_to_write_inside_the_store(inputs):
    d, store = inputs["dir"], inputs["store"]
    invoke("build", store, "--vectors", d / "vectors.npy")
    ids_file = next(store.glob("ids.*"))
    (d / "sub").mkdir()
    os.symlink(store, d / "sub" / "link")
    for args in [(store / "out.jsonl",), (d / "out.jsonl", "--vectors", ids_file),
                 (d / "out.jsonl", "--vectors", d / "sub" / "link" / ids_file.name)]:
        assert "inside the store" in fails("export", store, *args, code=2)
    assert json.loads(invoke("verify", store, "--json").stdout)["sound"]  # the old code overwrote the ids file
    assert not (d / "out.jsonl").exists() and not (store / "out.jsonl").exists()
    (d / "empty").mkdir()  # refused before the store is read: the paths alone decide
    assert "inside the store" in fails("export", d / "empty", d / "empty" / "out.jsonl", code=2)


def test_a_batch_the_store_refuses_names_every_file_it_came_from(inputs):
    d = inputs["dir"]
    np.save(d / "ids.npy", np.array([f"id{i}" if i != 2 else "" for i in range(N)]))
    line = fails("build", inputs["store"], "--vectors", d / "vectors.npy", "--ids", d / "ids.npy", "--batch-size", 100)
    assert f"rows 0-99 of {d / 'vectors.npy'} and {d / 'ids.npy'}: " in line and "empty string" in line
