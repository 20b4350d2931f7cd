"""LangChain's own standard vector-store suite (sync and async) on parag's LangChain store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from parag.integrations.langchain import ParagVectorStore  # noqa: E402


class TestParagFlat(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Iterator[ParagVectorStore]:
        yield ParagVectorStore(self.get_embeddings())


class TestParagHNSWCosine(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Iterator[ParagVectorStore]:
        yield ParagVectorStore(self.get_embeddings(), index_type="HNSW", metric="cosine")
