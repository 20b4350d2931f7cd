"""The LangChain and LlamaIndex stores' per-query overhead over parag direct (issue 12's target:
at most 10% on single queries).

Usage: flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_adapters.py [--repeats 3]

On the very same parag store (HNSW on debian-minilm, Flat on siftsmall; for LlamaIndex, the
store its adapter filled), single queries alternate between the framework call and
``store.search(q, 10)``; for each figure it prints
the median over repeats of the ratio of their p50s:

- LangChain: ``vs.similarity_search_with_score_by_vector(q.tolist(), k=10)`` (Documents with
  text and metadata);
- LlamaIndex: ``vs.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10))``
  (nodes rebuilt from their stored metadata).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_overhead import interleaved  # noqa: E402
from bench_systems import HNSW  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402


def framework_calls(store: FAISSVectorStore, vectors: np.ndarray) -> dict:
    """Each installed framework's single-query call, and the parag store it answers from."""
    calls = {}
    try:
        from langchain_core.embeddings import FakeEmbeddings

        from parag.integrations.langchain import ParagVectorStore as LangChainStore

        lc = LangChainStore(FakeEmbeddings(size=store.dimension), store=store)
        calls["LangChain"] = (store, lambda q: lc.similarity_search_with_score_by_vector(q.tolist(), k=10))
    except ImportError:
        print("LangChain not installed: pip install 'parag[langchain]'", file=sys.stderr)
    try:
        from llama_index.core.schema import TextNode
        from llama_index.core.vector_stores.types import VectorStoreQuery

        from parag.integrations.llama_index import ParagVectorStore as LlamaIndexStore

        # LlamaIndex rebuilds nodes from what its store kept: add them through it
        li = LlamaIndexStore(index_type=store.index_type, metric=store.metric, **store.params)
        got = store.get()
        li.add([TextNode(id_=i, text=d, metadata=m, embedding=v.tolist())
                for i, d, m, v in zip(got.ids, got.documents, got.metadata, vectors)])
        calls["LlamaIndex"] = (li.client, lambda q: li.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10)))
    except ImportError:
        print("LlamaIndex not installed: pip install 'parag[llama-index]'", file=sys.stderr)
    return calls


def text_store(dataset: str, index_type: str) -> tuple[FAISSVectorStore, np.ndarray, np.ndarray]:
    """A store of the dataset as the frameworks keep one: string ids, a document per vector."""
    data = bench_data.load(dataset)
    store = FAISSVectorStore(data.d, index_type, data.metric, **(HNSW if index_type == "HNSW" else {}))
    ids = [f"doc-{i}" for i in range(data.n)]
    store.add(data.base, bench_data.metadata(data.n)[0], ids=ids, documents=[f"text of {i}" for i in ids])
    return store, data.base, data.queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-single", type=int, default=1000)
    args = parser.parse_args()
    rows: dict[str, list] = {}
    for dataset, index_type in (("debian-minilm", "HNSW"), ("siftsmall", "Flat")):
        store, base, queries = text_store(dataset, index_type)
        for framework, (used, call) in framework_calls(store, base).items():
            name = f"{framework} single-query p50, {index_type} ({dataset})"
            direct = lambda q, used=used: used.search(q, 10)  # noqa: E731
            for _ in range(args.repeats):
                adapter, parag = interleaved([call, direct], queries, args.n_single)
                rows.setdefault(name, []).append((adapter / parag, adapter, parag))
    print("| figure | adapter / parag direct (median of %d) | adapter | parag direct |" % args.repeats)
    print("|---|---|---|---|")
    for name, runs in rows.items():
        ratio, a, p = (float(np.median([run[i] for run in runs])) for i in range(3))
        print(f"| {name} | {ratio:.3f} | {a:.1f} us | {p:.1f} us |")


if __name__ == "__main__":
    main()
