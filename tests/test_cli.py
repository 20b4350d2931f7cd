"""Every ``parag`` subcommand through click's test runner, its ``--json`` output checked
against independent answers: the input files, numpy brute force, and the library."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parag import persistence
from parag.vectorstore import FAISSVectorStore
from tests.cli_support import D, N, inputs, invoke, invoke_json, record  # noqa: F401 - inputs is a fixture
from tests.conftest import oracle


@pytest.fixture
def built(inputs):
    """A Flat L2 store built by ``parag build`` from records.jsonl."""
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy",
           "--records", inputs["dir"] / "records.jsonl", "--batch-size", 64)
    return inputs


def test_build_stores_every_row_with_its_id_and_metadata(built):
    store = FAISSVectorStore.load(built["store"])
    assert store.ids() == built["ids"]
    got = store.get(built["ids"], include_vectors=True)
    assert got.metadata == [record(i) for i in range(N)]
    np.testing.assert_array_equal(got.vectors, built["x"])


def test_build_appends_with_generated_ids_and_flat_metadata(built):
    summary = invoke_json("build", built["store"], "--vectors", built["dir"] / "vectors.npy",
                          "--metadata", built["dir"] / "flat.jsonl")
    assert summary["added"] == N and summary["count"] == 2 * N
    store = FAISSVectorStore.load(built["store"])
    new = store.ids()[N:]
    assert new == list(range(1000 + N, 1000 + 2 * N))  # generated above every stored id
    assert store.get(new).metadata == [record(i) for i in range(N)]


def test_build_hnsw_cosine_with_params_and_documents_field(inputs):
    summary = invoke_json("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy",
                          "--records", inputs["dir"] / "flat.jsonl", "--documents-field", "tag",
                          "--index", "hnsw", "--metric", "cosine", "--param", "M=8", "--param", "ef_search=20")
    assert (summary["index_type"], summary["metric"]) == ("HNSW", "cosine")
    assert summary["params"] == {"M": 8, "ef_construction": 40, "ef_search": 20}
    got = FAISSVectorStore.load(inputs["store"]).get([0, 1])
    # the field is the document, stored apart: the metadata keeps the other fields
    assert got.documents == [record(0)["tag"], record(1)["tag"]]
    assert got.metadata == [{"n": 0}, {"n": 1}]


@pytest.fixture
def documented(inputs):
    """A string-id store built from a .jsonl of nested records with string ids and documents,
    and the same records added through the library (the oracle)."""
    ids = [f"doc-{i}.md#{i % 4}" for i in range(N)]
    docs = [f"text of chunk {i}" + " long" * 30 * (i == 0) for i in range(N)]
    with open(inputs["dir"] / "docs.jsonl", "w") as f:
        f.writelines(json.dumps({"id": ids[i], "metadata": record(i), "document": docs[i]}) + "\n" for i in range(N))
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy",
           "--records", inputs["dir"] / "docs.jsonl", "--batch-size", 64)
    library = FAISSVectorStore(D)
    library.add(inputs["x"], [record(i) for i in range(N)], ids=ids, documents=docs)
    return {**inputs, "ids": ids, "docs": docs, "library": library}


def test_build_string_ids_and_documents_from_jsonl(documented):
    store = FAISSVectorStore.load(documented["store"])
    assert store.ids() == documented["ids"]
    got = store.get(documented["ids"])
    assert got.documents == documented["docs"] and got.metadata == [record(i) for i in range(N)]


def test_string_ids_get_delete_and_search_like(documented):
    store, library, ids = documented["store"], documented["library"], documented["ids"]
    assert invoke_json("get", store, ids[5], ids[2]) == library.get([ids[5], ids[2]]).records()
    like = invoke_json("search", store, "--like", ids[0], "-k", 4)
    want = [h for h in library.search(documented["x"][0], 5).records() if h["id"] != ids[0]][:4]
    assert [h["id"] for h in like] == [h["id"] for h in want]
    assert [h["document"] for h in like] == [h["document"] for h in want]
    assert invoke_json("delete", store, ids[1], ids[3])["deleted"] == 2
    library.delete([ids[1], ids[3]])
    assert FAISSVectorStore.load(store).ids() == library.ids()
    invoke("get", store, ids[1], code=1)  # deleted: unknown


def test_get_and_delete_by_filter_match_the_library(documented):
    store, library = documented["store"], documented["library"]
    where = {"$or": [{"tag": "a"}, {"$document": {"$contains": "chunk 29"}}]}
    assert invoke_json("get", store, "--filter", json.dumps(where)) == library.get(filter=where).records()
    assert invoke_json("delete", store, "--filter", json.dumps(where))["deleted"] == library.delete(filter=where)
    assert FAISSVectorStore.load(store).ids() == library.ids()


def test_search_shows_documents_in_json_and_table(documented):
    q = json.dumps(documented["x"][0].tolist())
    hits = invoke_json("search", documented["store"], "--vector", q, "-k", 3)
    assert hits == documented["library"].search(documented["x"][0], 3).records()
    assert hits[0]["document"] == documented["docs"][0]
    shown = invoke("search", documented["store"], "--vector", q, "-k", 3).stdout
    assert "document" in shown and "text of chunk 0 long" in shown
    assert documented["docs"][0] not in shown  # a long document is shortened


def test_build_with_compressed_storage(inputs):
    summary = invoke_json("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy",
                          "--index", "flat", "--param", "storage=float16", "--param", "rerank=3")
    assert summary["params"] == {"storage": "float16", "rerank": 3}
    assert FAISSVectorStore.load(inputs["store"]).storage == "float16"


def test_build_storage_flag(inputs):
    summary = invoke_json("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy",
                          "--index", "flat", "--storage", "sq8")
    assert summary["params"]["storage"] == "sq8"
    assert FAISSVectorStore.load(inputs["store"]).storage == "sq8"


def test_search_matches_numpy_brute_force(built):
    q = built["x"][:5] + 0.01
    np.save(built["dir"] / "q.npy", q)
    results = invoke_json("search", built["store"], "--vectors", built["dir"] / "q.npy", "-k", 7)
    scores, rows = oracle(built["x"], q, 7, "L2")
    for hits, want_rows, want_scores in zip(results, rows, scores):
        assert [h["id"] for h in hits] == [built["ids"][r] for r in want_rows]
        np.testing.assert_allclose([h["score"] for h in hits], want_scores, rtol=1e-4, atol=1e-4)
        assert [h["metadata"] for h in hits] == [record(r) for r in want_rows]


def test_search_single_vector_with_filter_and_like(built):
    q = built["x"][10]
    hits = invoke_json("search", built["store"], "--vector", json.dumps(q.tolist()), "-k", 4,
                       "--filter", '{"tag": "a"}')
    rows = [i for i in range(N) if record(i)["tag"] == "a"]
    _, order = oracle(built["x"][rows], q, 4, "L2")
    assert [h["id"] for h in hits] == [built["ids"][rows[r]] for r in order[0]]
    like = invoke_json("search", built["store"], "--like", built["ids"][10], "-k", 3)
    _, order = oracle(built["x"], q, 4, "L2")
    assert [h["id"] for h in like] == [built["ids"][r] for r in order[0][1:]]  # itself left out


def test_search_table_shows_ids_and_metadata(built):
    out = invoke("search", built["store"], "--like", 1000, "-k", 2).stdout
    assert "score" in out and '"tag"' in out


def test_get_by_ids_and_by_filter(built):
    got = invoke_json("get", built["store"], 1003, 1000, "--vectors")
    assert [r["id"] for r in got] == [1003, 1000]
    assert [r["metadata"] for r in got] == [record(3), record(0)]
    np.testing.assert_allclose(got[0]["vector"], built["x"][3], rtol=1e-6)
    selected = invoke_json("get", built["store"], "--filter", '{"$or": [{"tag": "a"}, {"n": {"$gte": 290}}]}')
    want = [i for i in range(N) if record(i)["tag"] == "a" or i >= 290]
    assert [r["id"] for r in selected] == [1000 + i for i in want]


def test_delete_by_ids_and_filter_then_compact(built):
    assert invoke_json("delete", built["store"], 1000, 1001)["deleted"] == 2
    assert invoke_json("delete", built["store"], "--filter", '{"n": {"$lt": 10}}')["deleted"] == 8
    assert invoke_json("delete", built["store"], 1000, "--missing-ok")["deleted"] == 0
    store = FAISSVectorStore.load(built["store"])
    assert store.ids() == built["ids"][10:]
    assert invoke_json("info", built["store"])["deleted"] in (0, 10)  # Flat compacts itself at 10%
    assert invoke_json("compact", built["store"])["count"] == N - 10
    info = invoke_json("info", built["store"])
    assert (info["count"], info["deleted"]) == (N - 10, 0)
    assert FAISSVectorStore.load(built["store"]).get([1299]).metadata == [record(299)]


def test_info_reports_configuration_counts_and_metadata_keys(built):
    info = invoke_json("info", built["store"])
    assert (info["dimension"], info["index_type"], info["metric"], info["count"]) == (8, "Flat", "L2", N)
    assert info["format_version"] == persistence.FORMAT_VERSION and info["disk_bytes"] > N * 8 * 4
    assert info["metadata_keys"]["tag"]["types"] == ["string"]
    assert info["metadata_keys"]["n"] == {"count": N, "types": ["int"], "examples": ["0", "1", "2"]}
    assert "metadata keys" in invoke("info", built["store"]).stdout


def test_tune_sets_and_saves_the_chosen_value(inputs):
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--index", "HNSW")
    dry = invoke_json("tune", inputs["store"], "--target-recall", 0.9, "--dry-run")
    assert dry["param"] == "ef_search" and not dry["saved"] and dry["settings"]
    assert FAISSVectorStore.load(inputs["store"]).params["ef_search"] == 64  # unchanged
    np.save(inputs["dir"] / "q.npy", inputs["x"][:20] + 0.01)
    result = invoke_json("tune", inputs["store"], "--queries", inputs["dir"] / "q.npy", "--target-recall", 0.9)
    assert result["saved"] and result["recall"] >= 0.9
    assert FAISSVectorStore.load(inputs["store"]).params["ef_search"] == result["value"]
    assert "recall" in invoke("tune", inputs["store"], "--dry-run").stdout


def test_tune_flat_store_has_nothing_to_tune(built):
    assert invoke_json("tune", built["store"])["param"] is None


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_then_build_round_trips(built, suffix):
    pytest.importorskip("pyarrow") if suffix == ".parquet" else None
    out, vectors = built["dir"] / f"out{suffix}", built["dir"] / "out.npy"
    assert invoke_json("export", built["store"], out, "--vectors", vectors)["exported"] == N
    np.testing.assert_array_equal(np.load(vectors), built["x"])
    copy = built["dir"] / "copy"
    invoke("build", copy, "--vectors", vectors, "--records", out)
    store = FAISSVectorStore.load(copy)
    assert store.ids() == built["ids"] and store.get(built["ids"]).metadata == [record(i) for i in range(N)]


def test_export_then_build_of_a_cosine_store_gives_back_the_same_vectors(inputs):
    d = inputs["dir"]
    invoke("build", inputs["store"], "--vectors", d / "vectors.npy", "--metric", "cosine")
    invoke("export", inputs["store"], d / "out.jsonl", "--vectors", d / "out.npy")
    invoke("build", d / "copy", "--vectors", d / "out.npy", "--records", d / "out.jsonl", "--metric", "cosine")
    got = [FAISSVectorStore.load(p).get(include_vectors=True).vectors for p in (inputs["store"], d / "copy")]
    x = inputs["x"].astype(np.float64)
    np.testing.assert_allclose(got[0], x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[1], got[0])  # bit for bit: re-normalising moved rows by an ulp


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_then_build_round_trips_string_ids_and_documents(documented, suffix):
    pytest.importorskip("pyarrow") if suffix == ".parquet" else None
    out, vectors, copy = documented["dir"] / f"out{suffix}", documented["dir"] / "out.npy", documented["dir"] / "copy"
    invoke("export", documented["store"], out, "--vectors", vectors)
    invoke("build", copy, "--vectors", vectors, "--records", out)
    got = FAISSVectorStore.load(copy).get()
    want = documented["library"].get()
    assert (got.ids, got.metadata, got.documents) == (want.ids, want.metadata, want.documents)


def test_migrate_to_another_index_keeps_ids_metadata_and_vectors(built):
    dst = built["dir"] / "hnsw"
    summary = invoke_json("migrate", built["store"], dst, "--index", "HNSW", "--param", "M=8")
    assert (summary["index_type"], summary["params"]["M"], summary["count"]) == ("HNSW", 8, N)
    store = FAISSVectorStore.load(dst)
    got = store.get(built["ids"], include_vectors=True)
    assert store.ids() == built["ids"] and got.metadata == [record(i) for i in range(N)]
    np.testing.assert_array_equal(got.vectors, built["x"])


def test_migrate_keeps_which_parameters_follow_the_size(inputs):
    for index, given in (("HNSW", {"M": 8}), ("IVFFlat", {"nprobe": 3})):
        src, dst = inputs["dir"] / f"src-{index}", inputs["dir"] / f"dst-{index}"
        store = FAISSVectorStore(D, index, **given)
        store.add(inputs["x"])
        store.save(src)
        invoke("migrate", src, dst)
        auto = [json.loads((path / "manifest.json").read_bytes()).get("auto_params") for path in (src, dst)]
        assert auto[0] == auto[1] == sorted(set(store.params) - set(given) - {"storage"})  # the old code froze them all
        copy = FAISSVectorStore.load(dst)
        assert copy.params == store.params and copy.auto_params == store.auto_params


def test_verify_sound_store(built):
    assert invoke_json("verify", built["store"]) == {"store": str(built["store"]), "sound": True, "problems": {}}


def test_help_lists_every_subcommand_and_each_has_examples():
    out = invoke("--help").stdout
    commands = ["build", "info", "verify", "search", "get", "delete", "compact", "tune", "export", "migrate"]
    assert all(c in out for c in commands) and "Exit codes" in out
    for command in commands:
        assert "Example" in invoke(command, "--help").stdout


def test_build_from_one_parquet_file_with_a_vector_column(inputs):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": inputs["ids"], "vector": inputs["x"].tolist(),
                      "tag": [record(i)["tag"] for i in range(N)], "n": list(range(N))})
    pq.write_table(table, inputs["dir"] / "t.parquet")
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "t.parquet", "--records", inputs["dir"] / "t.parquet",
           "--batch-size", 100)
    store = FAISSVectorStore.load(inputs["store"])
    got = store.get(inputs["ids"], include_vectors=True)
    assert store.ids() == inputs["ids"] and got.metadata == [record(i) for i in range(N)]
    np.testing.assert_array_equal(got.vectors, inputs["x"])
