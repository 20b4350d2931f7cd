"""parag's LlamaIndex store end to end: a VectorStoreIndex over real texts answers as one over
LlamaIndex's own SimpleVectorStore, filtered (every operator, nested) and not, before and after
deletes and a persist/reload."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores import SimpleVectorStore  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from parag.errors import DimensionMismatchError, InvalidArgumentError, InvalidFilterError, InvalidTypeError, ParagError  # noqa: E402
from parag.integrations.llama_index import ParagVectorStore, to_parag_filter  # noqa: E402
from parag.mmr import mmr  # noqa: E402
from parag.vectorstore import FAISSVectorStore  # noqa: E402
from tests.rag_support import Lookup, corpus, llama_index_embedding, queries  # noqa: E402

N = 300
TEXTS, META, VECTORS = corpus(N)
for i, m in enumerate(META):  # flat fields LlamaIndex's SimpleVectorStore can filter too
    m.update(first=m["package"][:1], size=len(TEXTS[i]), note="" if i % 11 == 0 else f"n{i % 3}")
    m.pop("lib")
    if i % 13 == 0:
        del m["group"]
QUERY_TEXTS, QUERY_VECTORS = queries()
EMBED = llama_index_embedding(Lookup(TEXTS + QUERY_TEXTS, np.vstack([VECTORS, QUERY_VECTORS])))


def nodes() -> list[TextNode]:
    """One node per text; three nodes per source document (ref_doc_id)."""
    return [
        TextNode(id_=f"node-{i}", text=t, metadata=dict(m), excluded_embed_metadata_keys=list(m),
                 relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i // 3}")})
        for i, (t, m) in enumerate(zip(TEXTS, META))
    ]


def index_over(vector_store) -> VectorStoreIndex:
    context = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex(nodes(), storage_context=context, embed_model=EMBED)


def leaf(key, op, value) -> MetadataFilter:
    return MetadataFilter(key=key, operator=op, value=value)


# Filters of every operator that LlamaIndex's SimpleVectorStore evaluates (one level).
FLAT = [
    MetadataFilters(filters=[leaf("group", FilterOperator.EQ, 3)]),
    MetadataFilters(filters=[leaf("group", FilterOperator.NE, 3)]),
    MetadataFilters(filters=[leaf("size", FilterOperator.GT, 30), leaf("size", FilterOperator.LTE, 45)]),
    MetadataFilters(filters=[leaf("size", FilterOperator.GTE, 40), leaf("group", FilterOperator.LT, 2)],
                    condition=FilterCondition.OR),
    MetadataFilters(filters=[leaf("first", FilterOperator.IN, ["a", "g", "x"])]),
    MetadataFilters(filters=[leaf("first", FilterOperator.NIN, ["l", "p"])]),
    MetadataFilters(filters=[leaf("tags", FilterOperator.CONTAINS, "m3")]),
    MetadataFilters(filters=[leaf("tags", FilterOperator.ANY, ["m1", "m2"])]),
    MetadataFilters(filters=[leaf("tags", FilterOperator.ALL, ["odd", "m1"])]),
    MetadataFilters(filters=[leaf("package", FilterOperator.TEXT_MATCH, "lib")]),
    MetadataFilters(filters=[leaf("note", FilterOperator.IS_EMPTY, None)]),
    MetadataFilters(filters=[leaf("group", FilterOperator.IS_EMPTY, None), leaf("first", FilterOperator.EQ, "g")],
                    condition=FilterCondition.OR),
    MetadataFilters(filters=[leaf("group", FilterOperator.EQ, 1), leaf("first", FilterOperator.EQ, "l")],
                    condition=FilterCondition.NOT),
]
NESTED = [
    MetadataFilters(filters=[
        leaf("size", FilterOperator.LT, 40),
        MetadataFilters(filters=[leaf("group", FilterOperator.IN, [1, 2]), leaf("tags", FilterOperator.CONTAINS, "m0")],
                        condition=FilterCondition.OR),
    ]),
    MetadataFilters(filters=[
        MetadataFilters(filters=[leaf("first", FilterOperator.EQ, "l"),
                                 MetadataFilters(filters=[leaf("note", FilterOperator.IS_EMPTY, None)],
                                                 condition=FilterCondition.NOT)]),
        leaf("package", FilterOperator.TEXT_MATCH, "-dev"),
    ], condition=FilterCondition.OR),
    MetadataFilters(filters=[
        MetadataFilters(filters=[leaf("group", FilterOperator.GTE, 4), leaf("tags", FilterOperator.ALL, ["even"])]),
    ], condition=FilterCondition.NOT),
]


def answers(index: VectorStoreIndex, filters=None, k: int = 8) -> list[list[tuple[str, float]]]:
    retriever = index.as_retriever(similarity_top_k=k, filters=filters)
    return [[(hit.node.node_id, round(hit.score, 4)) for hit in retriever.retrieve(q)] for q in QUERY_TEXTS[:6]]


def same(ours, theirs) -> None:
    assert [[i for i, _ in q] for q in ours] == [[i for i, _ in q] for q in theirs]
    assert [s for q in ours for _, s in q] == pytest.approx([s for q in theirs for _, s in q], abs=2e-3)


def test_a_vector_store_index_answers_as_simple_vector_store_does(tmp_path):
    theirs = index_over(SimpleVectorStore())
    ours = index_over(ParagVectorStore(metric="cosine"))
    for filters in [None, *FLAT]:
        same(answers(ours, filters), answers(theirs, filters))
        assert answers(ours, filters)[0], filters  # every filter here matches something
    for doc in ("doc-0", "doc-5", "doc-17"):
        ours.delete_ref_doc(doc)
        theirs.delete_ref_doc(doc)
    assert len(ours.vector_store.client) == N - 9
    for filters in [None, *FLAT[:4]]:
        same(answers(ours, filters), answers(theirs, filters))
    ours.vector_store.persist(str(tmp_path / "vectors"))
    again = VectorStoreIndex.from_vector_store(ParagVectorStore.from_persist_path(str(tmp_path / "vectors")),
                                               embed_model=EMBED)
    for filters in [None, *FLAT]:
        same(answers(again, filters), answers(theirs, filters))
    texts = {hit.node.node_id: hit.node.get_content() for hit in again.as_retriever(similarity_top_k=3).retrieve(QUERY_TEXTS[0])}
    assert texts == {i: TEXTS[int(i.split("-")[1])] for i in texts}


def matches(filters: MetadataFilters, meta: dict) -> bool:
    """An oracle for nested filters: LlamaIndex's own evaluation of each one-level group."""
    results = [matches(f, meta) if isinstance(f, MetadataFilters)
               else build_metadata_filter_fn(lambda _: meta, MetadataFilters(filters=[f]))("node") for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    return {FilterCondition.AND: all, FilterCondition.OR: any}.get(condition, lambda r: not any(r))(results)


@pytest.mark.parametrize("filters", FLAT + NESTED, ids=lambda f: str(to_parag_filter(f))[:60])
def test_every_operator_and_nesting_selects_what_llama_index_would(filters):
    vs = ParagVectorStore(metric="cosine")
    vs.add(nodes_with_embeddings())
    expected = [f"node-{i}" for i, m in enumerate(META) if matches(filters, m)]
    assert expected, "a filter that matches nothing proves little"
    assert [n.node_id for n in vs.get_nodes(filters=filters)] == expected
    found = vs.query(VectorStoreQuery(query_embedding=QUERY_VECTORS[0].tolist(), similarity_top_k=N, filters=filters))
    assert sorted(found.ids) == sorted(expected)


def nodes_with_embeddings() -> list[TextNode]:
    out = nodes()
    for node, vector in zip(out, VECTORS):
        node.embedding = vector.tolist()
    return out


def test_mmr_mode_picks_diverse_hits_from_the_prefetched_ones():
    vs = ParagVectorStore(dimension=VECTORS.shape[1], metric="cosine")
    vs.add(nodes_with_embeddings())
    q = QUERY_VECTORS[3]
    query = VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3)
    found = vs.query(query)
    order = np.argsort(-(VECTORS @ q), kind="stable")[:20]
    assert found.ids == [f"node-{order[p]}" for p in mmr(q, VECTORS[order], 5, 0.3)]
    assert found.ids != vs.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5)).ids


def test_mmr_mode_keeps_to_node_ids():
    vs = ParagVectorStore(metric="cosine", index_type="HNSW")
    vs.add(nodes_with_embeddings())
    rows = np.arange(0, N, 7)
    q = QUERY_VECTORS[3]
    query = VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5, node_ids=[f"node-{i}" for i in rows],
                             mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3)
    order = rows[np.argsort(-(VECTORS[rows] @ q), kind="stable")[:20]]
    assert vs.query(query).ids == [f"node-{order[p]}" for p in mmr(q, VECTORS[order], 5, 0.3)]


def test_nodes_deletes_and_async():
    vs = ParagVectorStore(store=FAISSVectorStore(dimension=VECTORS.shape[1], index_type="HNSW", metric="cosine"))
    vs.add(nodes_with_embeddings())
    got = vs.get_nodes(["node-4", "missing", "node-2"])
    assert [(n.node_id, n.get_content(), n.metadata, n.ref_doc_id) for n in got] == [
        ("node-4", TEXTS[4], META[4], "doc-1"), ("node-2", TEXTS[2], META[2], "doc-0")]
    vs.delete("doc-0")
    assert [n.node_id for n in vs.get_nodes(["node-0", "node-1", "node-3"])] == ["node-3"]
    evens = MetadataFilters(filters=[leaf("tags", FilterOperator.CONTAINS, "even")])
    vs.delete_nodes(["node-3", "node-4", "node-5"], filters=evens)
    assert [n.node_id for n in vs.get_nodes(["node-3", "node-4", "node-5"])] == ["node-3", "node-5"]

    async def run():
        await vs.adelete_nodes(filters=MetadataFilters(filters=[leaf("group", FilterOperator.EQ, 6)]))
        await vs.adelete("doc-2")
        q = VectorStoreQuery(query_embedding=QUERY_VECTORS[0].tolist(), similarity_top_k=3)
        return await vs.aquery(q), await vs.aget_nodes(["node-6", "node-9"])

    found, got = asyncio.run(run())
    assert len(found.ids) == 3 and [n.node_id for n in got] == ["node-9"]
    assert all(m.get("group") != 6 for m in vs.client.get().metadata)
    vs.clear()
    assert len(vs.client) == 0


def among_query(embedding: list[float], mode: str = "default"):
    """A query restricted to node_ids (scored by parag from the stored vectors, not by FAISS)."""
    vs = ParagVectorStore(dimension=2)
    vs.add([TextNode(id_="n", text="n", embedding=[1.0, 0.0])])
    return vs.query(VectorStoreQuery(query_embedding=embedding, similarity_top_k=1, node_ids=["n"], mode=mode))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ParagVectorStore(store=FAISSVectorStore(2), dimension=2), InvalidArgumentError, "not both"),
        (lambda: ParagVectorStore(index_type="Nope"), InvalidArgumentError, "index_type"),
        (lambda: to_parag_filter(MetadataFilters(filters=[leaf("a", FilterOperator.TEXT_MATCH_INSENSITIVE, "x")])),
         InvalidFilterError, "TEXT_MATCH_INSENSITIVE"),
        (lambda: ParagVectorStore(dimension=2).query(VectorStoreQuery(similarity_top_k=1)), InvalidArgumentError,
         "query_embedding"),
        (lambda: ParagVectorStore().persist("never-written"), InvalidArgumentError, "nothing to persist"),
        (lambda: ParagVectorStore(dimension=2).add([TextNode(id_="e", text="e")]), InvalidArgumentError,
         r"nodes \['e'\] have no embedding"),
        (lambda: ParagVectorStore(dimension=2).query(VectorStoreQuery(query_embedding=[1, 0], mode="mmr"),
                                                     mmr_prefetch_factor="x"), InvalidArgumentError, "mmr_prefetch_factor"),
        (lambda: among_query([1.0, 0.0, 0.0]), DimensionMismatchError, "query must have dimension 2"),
        (lambda: among_query([float("nan"), 0.0]), InvalidArgumentError, "query contain NaN"),
        (lambda: among_query([1.0], mode="mmr"), DimensionMismatchError, "query must have dimension 2"),
    ],
)
def test_bad_input_is_a_parag_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert issubclass(error, ParagError)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda vs: vs.delete_nodes("n1"), r"node_ids must be a list of string ids, got the string 'n1': pass \['n1'\]"),
        (lambda vs: vs.get_nodes("n1"), "node_ids must be a list of string ids"),
        (lambda vs: vs.delete_nodes(["n1", 5]), r"node_ids\[1\] is 5 \(int\)"),
        (lambda vs: vs.delete_nodes(5), "node_ids must be a list of string ids, got int"),
        (lambda vs: vs.delete(5), "ref_doc_id must be a str, got int"),
    ],
)
def test_node_ids_are_a_list_of_strings(call, match):
    """A bare string would be read as its characters: node "n" deleted, "n1" kept."""
    vs = ParagVectorStore(dimension=2)
    vs.add([TextNode(id_="n1", text="a", embedding=[1.0, 0.0]), TextNode(id_="n", text="b", embedding=[0.0, 1.0])])
    with pytest.raises(InvalidTypeError, match=match):
        call(vs)
    assert sorted(n.node_id for n in vs.get_nodes(["n1", "n"])) == ["n", "n1"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda vs: vs.add("x"), "nodes must be a list of LlamaIndex nodes, got str"),
        (lambda vs: vs.add(TextNode(id_="x", text="x", embedding=[1.0, 1.0])), r"got TextNode: pass \[node\]"),
        (lambda vs: vs.add(["x"]), r"nodes\[0\] is 'x' \(str\): each must be a LlamaIndex node"),
        (lambda vs: vs.query(None), "query must be a LlamaIndex VectorStoreQuery, got NoneType"),
        (lambda vs: to_parag_filter(5), "filters must be LlamaIndex MetadataFilters or None, got int"),
        (lambda vs: vs.get_nodes(["n1"], filters={"k": 1}), "filters must be LlamaIndex MetadataFilters"),
    ],
)
def test_arguments_of_the_wrong_type_are_named(call, match):
    vs = ParagVectorStore(dimension=2)
    vs.add([TextNode(id_="n1", text="a", embedding=[1.0, 0.0])])
    with pytest.raises(InvalidTypeError, match=match):
        call(vs)
    assert vs.client.ids() == ["n1"]


def test_doc_ids_restrict_a_query():
    vs = ParagVectorStore(metric="cosine")
    vs.add(nodes_with_embeddings())
    found = vs.query(VectorStoreQuery(query_embedding=QUERY_VECTORS[0].tolist(), similarity_top_k=10, doc_ids=["doc-4", "doc-9"]))
    assert sorted(found.ids) == sorted(f"node-{i}" for i in itertools.chain(range(12, 15), range(27, 30)))


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
def test_node_ids_restrict_a_query_exactly(metric):
    vs = ParagVectorStore(metric=metric, index_type="HNSW")
    vs.add(nodes_with_embeddings())
    allowed = [f"node-{i}" for i in range(0, N, 7)]
    q = QUERY_VECTORS[1]
    found = vs.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5, node_ids=allowed + ["missing"]))
    rows = np.arange(0, N, 7)
    scores = ((VECTORS[rows] - q) ** 2).sum(1) if metric == "L2" else -(VECTORS[rows] @ q)
    assert found.ids == [f"node-{rows[j]}" for j in np.argsort(scores, kind="stable")[:5]]
