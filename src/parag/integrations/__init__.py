"""parag inside the RAG frameworks: a LangChain and a LlamaIndex vector store over any parag
:class:`~parag.vectorstore.base.VectorStore`, and a pickle-free import of LangChain FAISS folders.

Each framework is an optional extra, imported only by its own module:

- ``parag.integrations.langchain.ParagVectorStore``: ``pip install 'parag[langchain]'``;
- ``parag.integrations.llama_index.ParagVectorStore``: ``pip install 'parag[llama-index]'``;
- ``parag.integrations.langchain_faiss_import.read_langchain_faiss``: parag alone.
"""
