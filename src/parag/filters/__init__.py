"""Metadata filters: the dict language users know from Chroma, MongoDB and LangChain.

A filter is parsed once per search (:func:`parse`) into a small immutable tree, then
evaluated (:func:`evaluate`) by numpy over the store's metadata columns into a boolean mask
over its slots; the search takes the top-k among the slots the mask allows (a
pre-filter: exact on Flat and for narrow filters, as approximate as the index for broad
ones on HNSW / IVF): see ``FAISSVectorStore.search``. Another backend reuses the parser, its checks
and its error messages, and translates the tree into its own expression language in a
module beside these two (say ``parag/filters/milvus.py``): one function per node class of
:mod:`parag.filters.parse`, whose docstring has a sketch.

The language::

    {"source": "a"}                          equality (also {"source": {"$eq": "a"}})
    {"year": {"$gte": 2020, "$lt": 2024}}    several operators on one field: all must hold
    {"source": "a", "year": 2024}            several fields: all must hold
    {"tags": {"$contains": "faiss"}}         a list field holds a value ($all / $any: a list of them)
    {"$document": {"$contains": "FAISS"}}    the vector's document holds a substring ($not_contains)
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}
    {"$and": [{"source": "a"}, lambda meta: ...]}   a callable as one branch
    {"year": {"$not": {"$gt": 2020}}}

Field operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $not $contains $all $any``.
Numbers compare by value, exactly (``1 == 1.0``, ``2**53 + 1 > 2**53``, but ``True`` is not
``1``), ranges apply to numbers or to strings (lexicographically, e.g. ISO dates), lists and
dicts compare as whole values. As in MongoDB, ``$ne`` and ``$nin`` also match vectors that
lack the field. ``$contains`` / ``$all`` / ``$any`` match only list values (their elements
compared like values). ``$document`` is reserved for the document: ``$contains`` and
``$not_contains`` take a string; ``$not_contains`` also matches a vector without a document.
``$and``, ``$or`` and ``$not`` nest at most :data:`MAX_DEPTH` levels. A callable
``filter=lambda meta: ...`` is accepted too, alone or as a branch of ``$and`` / ``$or``; it
decodes every vector's metadata per search, so it is far slower.

Examples
--------
>>> tree = parse({"year": {"$gte": 2020}, "lang": {"$in": ["en", "fr"]}})
>>> tree
And(parts=(Compare(field='year', op='$gte', value=2020), In(field='lang', values=('en', 'fr'))))
>>> from parag.metadata import MetadataStore, encode_metadata
>>> meta = MetadataStore()
>>> meta.append(encode_metadata([{"year": 2021, "lang": "en"}, {"year": 2019, "lang": "fr"}, {}], 3))
>>> evaluate(tree, meta)
array([ True, False, False])

The metadata columns a filter reads are built the first time a filter names their key:
metadata that no filter names (a long text, say) is never turned into columns.
"""

from parag.filters.numpy_eval import compile_filter, evaluate
from parag.filters.parse import (
    COMPARISONS,
    MAX_DEPTH,
    And,
    DOCUMENT,
    Compare,
    Contains,
    DocumentContains,
    Exists,
    Filter,
    In,
    Node,
    Not,
    Or,
    Predicate,
    Substring,
    fields,
    parse,
)

__all__ = [
    "COMPARISONS", "DOCUMENT", "MAX_DEPTH", "And", "Compare", "Contains", "DocumentContains", "Exists", "Filter", "In",
    "Node", "Not", "Or", "Predicate", "Substring", "compile_filter", "evaluate", "fields", "parse",
]
