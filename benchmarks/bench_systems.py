"""One adapter per system, each used through its public API with precomputed vectors.

An adapter builds a store from vectors and metadata, searches a batch, one query, one query
with a metadata filter, saves and loads. Ids are row numbers of the dataset everywhere.
``set_search_param`` changes ``ef_search`` / ``nprobe`` for the recall-QPS sweeps.

Parameters are identical where the systems share them: HNSW M=32, ef_construction=40,
ef_search=64 (parag's defaults) for parag, raw FAISS and hnswlib; IVF nlist=256 (scaled down
for small sets), nprobe=64. LangChain's and LlamaIndex's FAISS stores are exact (IndexFlat),
as their documentation builds them; Chroma runs its own HNSW with its defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

HNSW = {"M": 32, "ef_construction": 40, "ef_search": 64}
MILVUS_URI, MILVUS_TOKEN = "PARAG_BENCH_MILVUS_URI", "PARAG_BENCH_MILVUS_TOKEN"  # the server of the run


def ivf_params(n: int) -> dict[str, int]:
    """nlist 256 (nprobe 64) where there are enough vectors to train it, else fewer lists."""
    nlist = 256 if n >= 39 * 256 else max(1, n // 39)
    return {"nlist": nlist, "nprobe": max(1, nlist // 4)}


class System:
    """The interface every adapter implements."""

    name = ""
    index_type = ""  # Flat, IVFFlat or HNSW: which parag index it compares with
    sweep_param: str | None = None
    saves = True  # False: persists as it goes, there is no save step
    batch_loop = False  # True: no batch search in the API, the benchmark loops over queries

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        self.d, self.metric, self.index_type, self.n = d, metric, index_type, n

    def build(self, x: np.ndarray, metadata: list[dict]) -> None: ...
    def search_batch(self, q: np.ndarray, k: int) -> np.ndarray: ...
    def search_one(self, q: np.ndarray, k: int) -> list[int]: ...
    def search_filtered(self, q: np.ndarray, k: int, selectivity: str) -> list[int] | None:
        return None  # not supported

    def save(self, path: Path) -> None: ...
    def load(self, path: Path) -> None: ...
    def set_search_param(self, value: int) -> None: ...
    def describe(self) -> str:
        return f"{self.name} {self.index_type}"


class Parag(System):
    name = "parag"

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        from parag import FAISSVectorStore

        self.cls = FAISSVectorStore
        self.params = {"HNSW": HNSW, "IVFFlat": ivf_params(n), "Flat": {}}[index_type]
        self.store = FAISSVectorStore(d, index_type, metric, **self.params)
        self.sweep_param = {"HNSW": "ef_search", "IVFFlat": "nprobe"}.get(index_type)
        self.overrides: dict[str, int] = {}

    def build(self, x, metadata):
        self.store.add(x, metadata)

    def search_batch(self, q, k):
        return np.asarray(self.store.search(q, k, **self.overrides).ids)

    def search_one(self, q, k):
        return self.store.search(q, k).ids

    def search_filtered(self, q, k, selectivity):
        from bench_data import FILTERS

        return self.store.search(q, k, filter=FILTERS[selectivity]).ids

    def save(self, path):
        self.store.save(path)

    def load(self, path):
        self.store = self.cls.load(path)

    def set_search_param(self, value):
        self.overrides = {self.sweep_param: value}

    def describe(self):
        return f"parag {self.index_type} " + " ".join(f"{k}={v}" for k, v in self.params.items())


class RawFaiss(System):
    """FAISS alone: the same index type and parameters, metadata kept in a Python list."""

    name = "faiss"

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        import faiss

        self.faiss = faiss
        m = faiss.METRIC_INNER_PRODUCT if metric == "IP" else faiss.METRIC_L2
        if index_type == "HNSW":
            self.index = faiss.IndexHNSWFlat(d, HNSW["M"], m)
            self.index.hnsw.efConstruction = HNSW["ef_construction"]
            self.index.hnsw.efSearch = HNSW["ef_search"]
            self.sweep_param = "ef_search"
        elif index_type == "IVFFlat":
            p = ivf_params(n)
            self.index = faiss.IndexIVFFlat(faiss.IndexFlat(d, m), d, p["nlist"], m)
            self.index.nprobe = p["nprobe"]
            self.sweep_param = "nprobe"
        else:
            self.index = faiss.IndexFlat(d, m)
        self.params: Any = None
        self.masks: dict[str, Any] = {}

    def build(self, x, metadata):
        if self.index_type == "IVFFlat":
            self.index.train(x)
        self.index.add(x)
        self.metadata = metadata

    def search_batch(self, q, k):
        return self.index.search(q, k, params=self.params)[1]

    def search_one(self, q, k):
        return self.index.search(q[None, :], k)[1][0].tolist()

    def search_filtered(self, q, k, selectivity):
        # What a FAISS user writes: a selector of the allowed ids, the index's own parameters.
        sel = self.masks[selectivity]
        if self.index_type == "HNSW":
            params = self.faiss.SearchParametersHNSW(sel=sel, efSearch=self.index.hnsw.efSearch)
        elif self.index_type == "IVFFlat":
            params = self.faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
        else:
            params = self.faiss.SearchParameters(sel=sel)
        labels = self.index.search(q[None, :], k, params=params)[1][0]
        return [int(i) for i in labels if i >= 0]

    def prepare_filter(self, selectivity: str, mask: np.ndarray) -> None:
        """Build the selector outside the timed search (parag computes its mask inside)."""
        self.masks[selectivity] = self.faiss.IDSelectorBatch(np.flatnonzero(mask).astype(np.int64))

    def save(self, path):
        path.mkdir()
        self.faiss.write_index(self.index, str(path / "index.faiss"))
        with open(path / "metadata.json", "w") as f:
            json.dump(self.metadata, f)

    def load(self, path):
        self.index = self.faiss.read_index(str(path / "index.faiss"))
        with open(path / "metadata.json") as f:
            self.metadata = json.load(f)

    def set_search_param(self, value):
        if self.index_type == "HNSW":
            self.params = self.faiss.SearchParametersHNSW(efSearch=value)
        else:
            self.params = self.faiss.SearchParametersIVF(nprobe=value)

    def describe(self):
        return f"raw FAISS {type(self.index).__name__}"


class Hnswlib(System):
    name = "hnswlib"
    sweep_param = "ef_search"

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        import hnswlib

        self.hnswlib = hnswlib
        self.space = "ip" if metric == "IP" else "l2"
        self.index = hnswlib.Index(space=self.space, dim=d)
        self.masks: dict[str, np.ndarray] = {}

    def build(self, x, metadata):
        self.index.init_index(max_elements=len(x), M=HNSW["M"], ef_construction=HNSW["ef_construction"])
        self.index.add_items(x, np.arange(len(x)))
        self.index.set_ef(HNSW["ef_search"])
        self.metadata = metadata

    def search_batch(self, q, k):
        return self.index.knn_query(q, k)[0]

    def search_one(self, q, k):
        return self.index.knn_query(q, k, num_threads=1)[0][0].tolist()

    def prepare_filter(self, selectivity: str, mask: np.ndarray) -> None:
        self.masks[selectivity] = mask

    def search_filtered(self, q, k, selectivity):
        mask = self.masks[selectivity]
        try:
            labels = self.index.knn_query(q, k, num_threads=1, filter=lambda i: bool(mask[i]))[0][0]
        except RuntimeError:  # "Cannot return the results in a contiguous 2D array": fewer than k found
            return []
        return labels.tolist()

    def save(self, path):
        path.mkdir()
        self.index.save_index(str(path / "index.bin"))
        with open(path / "metadata.json", "w") as f:
            json.dump(self.metadata, f)

    def load(self, path):
        self.index = self.hnswlib.Index(space=self.space, dim=self.d)
        self.index.load_index(str(path / "index.bin"))
        self.index.set_ef(HNSW["ef_search"])
        with open(path / "metadata.json") as f:
            self.metadata = json.load(f)

    def set_search_param(self, value):
        self.index.set_ef(value)

    def describe(self):
        return f"hnswlib {self.space} M{HNSW['M']} efC{HNSW['ef_construction']} ef{HNSW['ef_search']}"


class LangChain(System):
    """langchain-community's FAISS store (IndexFlat, docstore of Documents, pickled on save)."""

    name = "langchain"
    batch_loop = True

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy
        from langchain_core.embeddings import Embeddings

        class Precomputed(Embeddings):  # the vectors are given; nothing is ever embedded
            def embed_documents(self, texts):
                raise NotImplementedError

            def embed_query(self, text):
                raise NotImplementedError

        self.cls, self.embeddings = FAISS, Precomputed()
        self.strategy = DistanceStrategy.MAX_INNER_PRODUCT if metric == "IP" else DistanceStrategy.EUCLIDEAN_DISTANCE

    def build(self, x, metadata):
        pairs = [(str(m["doc_id"]), v) for m, v in zip(metadata, x.tolist())]
        self.store = self.cls.from_embeddings(pairs, self.embeddings, metadatas=metadata, distance_strategy=self.strategy)

    def search_batch(self, q, k):  # no batch search in the API: one call per query
        return np.asarray([self.search_one(row, k) for row in q])

    def _search(self, q, k, **kwargs):
        hits = self.store.similarity_search_with_score_by_vector(q.tolist(), k=k, **kwargs)
        return [doc.metadata["doc_id"] for doc, _ in hits]

    def search_one(self, q, k):
        return self._search(q, k)

    def search_filtered(self, q, k, selectivity):
        from bench_data import FILTERS

        return self._search(q, k, filter=FILTERS[selectivity])

    def save(self, path):
        self.store.save_local(str(path))

    def load(self, path):
        self.store = self.cls.load_local(str(path), self.embeddings, allow_dangerous_deserialization=True,
                                         distance_strategy=self.strategy)

    def describe(self):
        return "LangChain FAISS (IndexFlat)"


class ParagLangChain(System):
    """parag's LangChain store (parag.integrations.langchain) over a parag Flat store: what a
    LangChain user of parag calls, beside LangChain's own FAISS store."""

    name = "parag-langchain"
    batch_loop = True

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        from langchain_core.embeddings import Embeddings

        from parag.integrations.langchain import ParagVectorStore

        pending: list[np.ndarray] = []

        class Precomputed(Embeddings):  # add_texts embeds: hand it the given vectors
            def embed_documents(self, texts):
                return pending.pop()

            def embed_query(self, text):
                raise NotImplementedError

        self.cls, self.embeddings, self.pending = ParagVectorStore, Precomputed(), pending
        self.options = {"index_type": index_type, "metric": metric, **{"HNSW": HNSW}.get(index_type, {})}

    def build(self, x, metadata):
        self.store = self.cls(self.embeddings, **self.options)
        self.pending.append(x)
        self.store.add_texts([""] * len(x), metadata, ids=[str(m["doc_id"]) for m in metadata])

    def search_batch(self, q, k):  # LangChain's API has no batch search
        return np.asarray([self.search_one(row, k) for row in q])

    def _search(self, q, k, **kwargs):
        hits = self.store.similarity_search_with_score_by_vector(q.tolist(), k=k, **kwargs)
        return [int(doc.id) for doc, _ in hits]

    def search_one(self, q, k):
        return self._search(q, k)

    def search_filtered(self, q, k, selectivity):
        from bench_data import FILTERS

        return self._search(q, k, filter=FILTERS[selectivity])

    def save(self, path):
        self.store.save_local(path)

    def load(self, path):
        self.store = self.cls.load_local(path, self.embeddings)

    def describe(self):
        return f"parag's LangChain store ({self.index_type})"


class LlamaIndex(System):
    """llama-index-vector-stores-faiss FaissVectorStore over an IndexFlat (it keeps no metadata)."""

    name = "llamaindex"
    batch_loop = True

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        import faiss
        from llama_index.core.schema import TextNode
        from llama_index.core.vector_stores.types import VectorStoreQuery
        from llama_index.vector_stores.faiss import FaissVectorStore

        self.cls, self.node, self.query = FaissVectorStore, TextNode, VectorStoreQuery
        self.store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(d) if metric == "IP" else faiss.IndexFlatL2(d))

    def build(self, x, metadata):
        nodes = [self.node(text="", metadata=m, embedding=v) for m, v in zip(metadata, x.tolist())]
        self.store.add(nodes)

    def search_batch(self, q, k):  # no batch search in the API
        return np.asarray([self.search_one(row, k) for row in q])

    def search_one(self, q, k):
        result = self.store.query(self.query(query_embedding=q.tolist(), similarity_top_k=k))
        return [int(i) for i in result.ids]

    def save(self, path):
        path.mkdir()
        self.store.persist(persist_path=str(path / "vector_store.json"))

    def load(self, path):
        self.store = self.cls.from_persist_path(str(path / "vector_store.json"))

    def describe(self):
        return "LlamaIndex FaissVectorStore (IndexFlat)"


class Chroma(System):
    """chromadb PersistentClient, its HNSW with default parameters (M16, efC100, ef100)."""

    name = "chroma"
    saves = False

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        super().__init__(d, metric, index_type, n)
        import chromadb

        self.chromadb = chromadb
        self.space = "ip" if metric == "IP" else "l2"

    def _client(self, path: Path):
        from chromadb.config import Settings

        return self.chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))

    def build(self, x, metadata):
        # Chroma persists as it goes: the store lives in its directory from the start.
        self.path = Path(os.environ["BENCH_TMP"]) / "chroma"
        client = self._client(self.path)
        self.collection = client.create_collection(
            "bench", configuration={"hnsw": {"space": self.space}}, embedding_function=None
        )
        batch = client.get_max_batch_size()
        for start in range(0, len(x), batch):
            stop = start + batch
            self.collection.add(
                ids=[str(i) for i in range(start, min(stop, len(x)))], embeddings=x[start:stop], metadatas=metadata[start:stop]
            )

    def _query(self, q, k, where=None):
        result = self.collection.query(query_embeddings=q, n_results=k, where=where, include=[])
        return [[int(i) for i in row] for row in result["ids"]]

    def search_batch(self, q, k):
        return np.asarray(self._query(q, k))

    def search_one(self, q, k):
        return self._query(q[None, :], k)[0]

    def search_filtered(self, q, k, selectivity):
        from bench_data import FILTERS

        return self._query(q[None, :], k, where=FILTERS[selectivity])[0]

    def save(self, path):
        pass  # persisted on every add

    def saved_path(self) -> Path:
        return self.path

    def load(self, path):
        self.collection = self._client(self.path).get_collection("bench", embedding_function=None)

    def describe(self):
        return "Chroma PersistentClient (its HNSW defaults)"


class Milvus(Parag):
    """parag's MilvusVectorStore on a Milvus server, with parag's index parameters: the server
    run.py started on 127.0.0.1 (PyPI's ``milvus`` 2.3.5 standalone, tests/milvus_server.py)
    or one given with ``--milvus-uri``, named by ``$PARAG_BENCH_MILVUS_URI`` / ``_TOKEN``
    (never in the job, so a token is never written to the results). The build includes the
    flush that seals and indexes the rows; "load" reopens the collection. RSS figures are the
    client's only (the server is another process); the server's disk use is not measured."""

    name = "milvus"
    saves = False

    def __init__(self, d: int, metric: str, index_type: str, n: int) -> None:
        System.__init__(self, d, metric, index_type, n)
        import atexit

        from parag.vectorstore import MilvusVectorStore

        if not os.environ.get(MILVUS_URI):
            raise RuntimeError(f"no Milvus server: ${MILVUS_URI} is not set (benchmarks/run.py sets it)")
        self.params = {"HNSW": HNSW, "IVFFlat": ivf_params(n), "Flat": {}}[index_type]
        connection = {"uri": os.environ[MILVUS_URI], "token": os.environ.get(MILVUS_TOKEN) or None}
        name = f"parag_bench_{os.getpid()}"  # one per worker process: runs never share a collection
        self.open = lambda: MilvusVectorStore(d, index_type, metric, collection=name, **connection, **self.params)
        self.store = self.open()
        atexit.register(lambda: self.store.drop())
        self.sweep_param = {"HNSW": "ef_search", "IVFFlat": "nprobe"}.get(index_type)
        self.overrides = {}

    def build(self, x, metadata):
        self.store.add(x, metadata)
        self.store.flush()

    def save(self, path):
        pass  # the server persists as it goes

    def saved_path(self) -> None:
        return None  # on the server, not measured

    def load(self, path):
        self.store = self.open()  # reopen the collection

    def describe(self):
        return "parag MilvusVectorStore " + super().describe().removeprefix("parag ")


SYSTEMS: dict[str, type[System]] = {
    "parag": Parag,
    "faiss": RawFaiss,
    "hnswlib": Hnswlib,
    "langchain": LangChain,
    "parag-langchain": ParagLangChain,
    "llamaindex": LlamaIndex,
    "chroma": Chroma,
    "milvus": Milvus,
}
# Which index types each system runs (the others are fixed by what the system is).
INDEX_TYPES = {
    "parag": ("Flat", "IVFFlat", "HNSW"),
    "faiss": ("Flat", "IVFFlat", "HNSW"),
    "hnswlib": ("HNSW",),
    "langchain": ("Flat",),
    "parag-langchain": ("Flat",),
    "llamaindex": ("Flat",),
    "chroma": ("HNSW",),
    "milvus": ("HNSW",),
}
# The Python module each needs (for a clean "not installed" skip).
MODULES = {
    "parag": "parag",
    "faiss": "faiss",
    "hnswlib": "hnswlib",
    "langchain": "langchain_community",
    "parag-langchain": "langchain_core",
    "llamaindex": "llama_index.vector_stores.faiss",
    "chroma": "chromadb",
    "milvus": "pymilvus",  # the client; run.py starts the server (or is given one)
}
