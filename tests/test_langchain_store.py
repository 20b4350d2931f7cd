"""parag's LangChain store on real texts: searches, filters, MMR and relevance scores against a
numpy oracle; adds by id, deletes, files and errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

from parag.errors import IdNotFoundError, InvalidArgumentError, InvalidTypeError, ParagError  # noqa: E402
from parag.integrations.langchain import ParagVectorStore  # noqa: E402
from parag.mmr import mmr  # noqa: E402
from parag.vectorstore import FAISSVectorStore  # noqa: E402
from tests.conftest import oracle  # noqa: E402
from tests.rag_support import Lookup, corpus, langchain_embeddings, queries  # noqa: E402

N = 400
TEXTS, META, VECTORS = corpus(N)
IDS = [f"doc-{i}" for i in range(N)]
QUERY_TEXTS, QUERY_VECTORS = queries()
EMBEDDINGS = langchain_embeddings(Lookup(TEXTS + QUERY_TEXTS, np.vstack([VECTORS, QUERY_VECTORS])))


def build(**options) -> ParagVectorStore:
    return ParagVectorStore.from_texts(TEXTS, EMBEDDINGS, META, ids=IDS, **options)


def expected(query: np.ndarray, k: int, metric: str, keep=lambda meta: True) -> list[str]:
    rows = [i for i in range(N) if keep(META[i])]
    _, order = oracle(VECTORS[rows], query, k, metric)
    return [IDS[rows[j]] for j in order[0]]


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
def test_search_and_filtered_search_match_numpy(metric):
    vs = build(metric=metric)
    for text, query in zip(QUERY_TEXTS[:5], QUERY_VECTORS[:5]):
        assert [d.id for d in vs.similarity_search(text, k=10)] == expected(query, 10, metric)
        found = vs.similarity_search(text, k=10, filter={"group": {"$in": [1, 3]}, "lib": False})
        assert [d.id for d in found] == expected(query, 10, metric, lambda m: m["group"] in (1, 3) and not m["lib"])
        found = vs.similarity_search_by_vector(query.tolist(), k=5, filter={"tags": {"$contains": "m4"}})
        assert [d.id for d in found] == expected(query, 5, metric, lambda m: "m4" in m["tags"])


def test_documents_come_back_whole_with_their_ids_and_store_scores():
    vs = build()
    hits = vs.similarity_search_with_score(QUERY_TEXTS[0], k=3)
    for doc, score in hits:
        i = IDS.index(doc.id)
        assert doc == Document(id=IDS[i], page_content=TEXTS[i], metadata=META[i])
        assert score == pytest.approx(float(((VECTORS[i] - QUERY_VECTORS[0]) ** 2).sum()), abs=1e-4)
    assert vs.get_by_ids(["doc-3", "missing", "doc-1"]) == [
        Document(id="doc-3", page_content=TEXTS[3], metadata=META[3]),
        Document(id="doc-1", page_content=TEXTS[1], metadata=META[1]),
    ]


def test_relevance_scores_are_the_same_in_0_1_on_every_metric_for_unit_vectors():
    cosine = (QUERY_VECTORS[0] @ VECTORS.T).astype(np.float64)
    for metric in ("L2", "IP", "cosine"):
        hits = build(metric=metric).similarity_search_with_relevance_scores(QUERY_TEXTS[0], k=8)
        for doc, relevance in hits:
            assert 0 <= relevance <= 1
            assert relevance == pytest.approx((1 + cosine[IDS.index(doc.id)]) / 2, abs=1e-3)
    strict = build().similarity_search_with_relevance_scores(QUERY_TEXTS[0], k=8, score_threshold=hits[2][1])
    assert [d.id for d, _ in strict] == [d.id for d, _ in hits[:3]]


def test_mmr_picks_from_the_filtered_nearest_by_their_stored_vectors():
    vs = build(metric="cosine")
    keep = lambda m: m["group"] != 0  # noqa: E731
    candidates = expected(QUERY_VECTORS[1], 20, "cosine", keep)
    picks = mmr(QUERY_VECTORS[1], VECTORS[[IDS.index(i) for i in candidates]], 5, 0.3)
    found = vs.max_marginal_relevance_search(QUERY_TEXTS[1], k=5, fetch_k=20, lambda_mult=0.3, filter={"group": {"$ne": 0}})
    assert [d.id for d in found] == [candidates[p] for p in picks]
    assert [d.id for d in vs.max_marginal_relevance_search(QUERY_TEXTS[1], k=5, lambda_mult=1.0)] == expected(
        QUERY_VECTORS[1], 5, "cosine"
    )


def test_retriever_async_and_documents():
    vs = ParagVectorStore.from_documents(
        [Document(page_content=t, metadata=m, id=i) for t, m, i in zip(TEXTS, META, IDS)], EMBEDDINGS, index_type="HNSW"
    )
    retriever = vs.as_retriever(search_kwargs={"k": 4, "filter": {"group": 2}, "ef_search": 128})
    assert [d.id for d in retriever.invoke(QUERY_TEXTS[2])] == expected(QUERY_VECTORS[2], 4, "L2", lambda m: m["group"] == 2)
    mmr_retriever = vs.as_retriever(search_type="mmr", search_kwargs={"k": 3})
    assert len(mmr_retriever.invoke(QUERY_TEXTS[2])) == 3

    async def run():
        found = await vs.asimilarity_search(QUERY_TEXTS[2], k=4, filter={"group": 2})
        diverse = await vs.amax_marginal_relevance_search(QUERY_TEXTS[2], k=3)
        await vs.adelete(["doc-0"])
        return found, diverse, await vs.aget_by_ids(["doc-0", "doc-1"])

    found, diverse, got = asyncio.run(run())
    assert [d.id for d in found] == expected(QUERY_VECTORS[2], 4, "L2", lambda m: m["group"] == 2)
    assert [d.id for d in diverse] == [d.id for d in mmr_retriever.invoke(QUERY_TEXTS[2])]
    assert [d.id for d in got] == ["doc-1"]


def test_adds_are_upserts_and_delete_takes_ids_or_a_filter():
    vs = build()
    vs.add_texts(["replaced"], [{"group": 99}], ids=["doc-5"])
    assert vs.get_by_ids(["doc-5"])[0] == Document(id="doc-5", page_content="replaced", metadata={"group": 99})
    assert len(vs.store) == N
    generated = vs.add_texts(["new one", "new two"]) + vs.add_texts(["new three"], ids=[])
    assert len(set(generated)) == 3 and all(len(i) == 32 for i in generated)
    given, unnamed = vs.add_documents([Document(page_content="given", id="doc-5"), Document(page_content="no id", id="")])
    assert given == "doc-5" and len(unnamed) == 32 and vs.get_by_ids([unnamed])[0].page_content == "no id"
    vs.delete([unnamed])
    vs.delete(["doc-1", "not-there"])
    vs.delete(filter={"group": 3})
    assert len(vs.store) == N + 3 - 1 - sum(1 for i, m in enumerate(META) if m["group"] == 3 and i != 1 and i != 5)
    assert vs.get_by_ids(["doc-1"]) == []
    with pytest.raises(InvalidArgumentError, match="ids or filter, not both"):
        vs.delete(["doc-2"], filter={"group": 1})
    assert vs.get_by_ids(["doc-2"]) != []


def test_delete_without_ids_deletes_everything_as_langchains_contract_says():
    vs = build()
    assert vs.delete() is True and len(vs.store) == 0 and vs.similarity_search(QUERY_TEXTS[0]) == []
    assert vs.add_texts(TEXTS[:2], ids=IDS[:2]) == IDS[:2] and len(vs.store) == 2


def int_id_store() -> FAISSVectorStore:
    store = FAISSVectorStore(dimension=VECTORS.shape[1])
    store.add(VECTORS[:2])
    return store


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda vs: vs.add_texts(["a", "b"], ids=["fresh", 2]), r"ids\[1\] is 2 \(int\)"),
        (lambda vs: vs.add_documents([Document(page_content="a", id="fresh")], ids=[7]), r"ids\[0\] is 7"),
        (lambda vs: vs.delete([IDS[0], 5]), r"ids\[1\] is 5"),
        (lambda vs: vs.delete(IDS[0]), "a list of string ids"),
        (lambda vs: vs.get_by_ids([IDS[0], 5]), r"ids\[1\] is 5"),
        (lambda vs: ParagVectorStore(EMBEDDINGS, store=int_id_store()), "int ids"),
    ],
)
def test_ids_are_strings_in_every_method(call, match):
    """An int id would come back as a str Document.id that no later call could use: refused."""
    vs = build()
    with pytest.raises(InvalidTypeError, match=match):
        call(vs)
    assert sorted(vs.store.ids()) == sorted(IDS)


class Ragged(Embeddings):
    """A broken embedding model: each text's vector one longer than the last's."""

    def embed_documents(self, texts):
        return [[0.1] * (VECTORS.shape[1] + i) for i in range(len(texts))]

    def embed_query(self, text):
        return [0.1] * VECTORS.shape[1]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda vs: vs.add_texts("abc"), InvalidTypeError,
         r"texts must be a list of strings, got the string 'abc': pass \['abc'\]"),
        (lambda vs: ParagVectorStore.from_texts("abc", EMBEDDINGS, store=vs.store), InvalidTypeError,
         "got the string 'abc'"),
        (lambda vs: vs.add_texts(["a", 5]), InvalidTypeError, r"texts\[1\] is 5 \(int\)"),
        (lambda vs: vs.add_texts(5), InvalidTypeError, "texts must be a list of strings, got int"),
        (lambda vs: vs.add_texts(["a"], metadatas=["x"]), InvalidArgumentError,
         r"metadatas\[0\] must be a dict \(or None\), got str 'x'"),
        (lambda vs: vs.add_texts(["a", "b"], metadatas=[{}, 5]), InvalidArgumentError,
         r"metadatas\[1\] must be a dict \(or None\), got int"),
        (lambda vs: vs.add_texts(["a"], metadatas=[[("k", 1)]]), InvalidArgumentError, r"metadatas\[0\] must be a dict"),
        (lambda vs: vs.add_texts(["ab"], metadatas={"k": 1}), InvalidArgumentError,
         "metadatas must be a list of dicts, one per text, got dict"),
        (lambda vs: ParagVectorStore.from_texts(["a"], EMBEDDINGS, ["x"], store=vs.store), InvalidArgumentError,
         r"metadatas\[0\]"),
        (lambda vs: ParagVectorStore(Ragged(), store=vs.store).add_texts(["a", "b"]), InvalidArgumentError,
         "the embedding model returned vectors of different lengths"),
    ],
)
def test_bad_texts_metadatas_or_embeddings_are_named(call, error, match):
    """Each refused with its name, the store unchanged (a bare string would have been stored
    as its characters: "a", "b", "c")."""
    vs = build()
    with pytest.raises(error, match=match):
        call(vs)
    assert sorted(vs.store.ids()) == sorted(IDS)


def test_save_local_and_load_local_use_parags_format(tmp_path):
    vs = build(index_type="HNSW", metric="cosine")
    vs.save_local(tmp_path / "lc")
    assert not list((tmp_path / "lc").glob("*.pkl"))
    again = ParagVectorStore.load_local(tmp_path / "lc", EMBEDDINGS)
    for text in QUERY_TEXTS[:3]:
        assert again.similarity_search_with_score(text, k=5, filter={"lib": True}) == vs.similarity_search_with_score(
            text, k=5, filter={"lib": True}
        )
    assert again.store.index_type == "HNSW"


def test_any_parag_store_underneath():
    store = FAISSVectorStore(dimension=VECTORS.shape[1], metric="IP")
    vs = ParagVectorStore(EMBEDDINGS, store=store)
    vs.add_texts(TEXTS[:50], META[:50], ids=IDS[:50])
    assert len(store) == 50 and vs.store is store


def test_an_empty_store_answers_nothing():
    vs = ParagVectorStore(EMBEDDINGS)
    assert vs.similarity_search("anything") == [] and vs.max_marginal_relevance_search("anything") == []
    assert vs.get_by_ids(["x"]) == [] and vs.delete(["x"]) is True and vs.store is None
    with pytest.raises(InvalidTypeError, match="got the string 'x'"):  # the same checks as on a filled store
        vs.delete("x")
    with pytest.raises(InvalidArgumentError, match="nothing to save"):
        vs.save_local("nowhere")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ParagVectorStore(EMBEDDINGS, index_type="Nope"), "index_type"),
        (lambda: ParagVectorStore(EMBEDDINGS, dimension=3), "dimension"),
        (lambda: ParagVectorStore(EMBEDDINGS, store=FAISSVectorStore(2), metric="IP"), "store_options"),
        (lambda: ParagVectorStore(EMBEDDINGS, store="a folder"), "parag VectorStore"),
        (lambda: build().similarity_search("x", k=2, efsearch=3), "efsearch"),
        (lambda: build().similarity_search("x", k=2, filter={"group": {"$bad": 1}}), r"\$bad"),
        (lambda: build().add_texts(["a", "b"], [{}]), "2 texts, 1 metadatas"),
        (lambda: build().max_marginal_relevance_search("x", lambda_mult=2), "lambda_mult"),
        (lambda: build().max_marginal_relevance_search("x", lambda_mult="0.5"), "lambda_mult must be a float"),
        (lambda: build().max_marginal_relevance_search("x", fetch_k="20"), "fetch_k must be a positive int"),
        (lambda: build().max_marginal_relevance_search("x", fetch_k=0), "fetch_k must be a positive int, got 0"),
        (lambda: build().max_marginal_relevance_search("x", k=0), "k must be a positive int, got 0"),
        (lambda: ParagVectorStore(EMBEDDINGS).similarity_search("x", k=0), "k must be a positive int, got 0"),
        (lambda: build().similarity_search_by_vector(["x"] * VECTORS.shape[1]), "query must be real numbers"),
        (lambda: build().similarity_search_by_vector([[1, 2], [3]]), "query must be a rectangular array"),
        (lambda: build().similarity_search_by_vector([1.0, 2.0]), "dimension"),
        (lambda: build().max_marginal_relevance_search_by_vector(["x"] * VECTORS.shape[1]), "query must be real"),
    ],
)
def test_bad_input_is_a_parag_error_and_changes_nothing(call, match):
    with pytest.raises(ParagError, match=match):
        call()


def test_a_failed_add_changes_nothing():
    vs = build()
    with pytest.raises(ParagError, match="metadata"):
        vs.add_texts(["a", "b"], [{"ok": 1}, {"bad": object()}], ids=["doc-0", "fresh"])
    assert vs.get_by_ids(["doc-0"])[0].page_content == TEXTS[0] and vs.get_by_ids(["fresh"]) == []
    with pytest.raises(IdNotFoundError):
        vs.store.get(["fresh"])


def test_a_missing_framework_names_the_pip_command(tmp_path):
    """In a fresh interpreter where langchain_core cannot be imported."""
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n    import parag.integrations.langchain\n"
        "except ImportError as e:\n    print(type(e).__name__, e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "MissingDependencyError this parag integration needs langchain-core: pip install 'parag[langchain]'"


def test_threads_add_and_search_at_once():
    """Concurrent first adds make one store; searches run while adds do, and see whole adds."""
    vs = ParagVectorStore(EMBEDDINGS, index_type="HNSW")
    chunks = [range(i, N, 4) for i in range(4)]
    errors = []

    def add(rows):
        try:
            for i in rows:
                vs.add_texts([TEXTS[i]], [META[i]], ids=[IDS[i]])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def search():
        try:
            for text in QUERY_TEXTS * 5:
                for doc in vs.similarity_search(text, k=5):
                    assert doc.page_content == TEXTS[IDS.index(doc.id)]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=add, args=(rows,)) for rows in chunks] + [threading.Thread(target=search)
                                                                                 for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(vs.store.ids()) == sorted(IDS)
