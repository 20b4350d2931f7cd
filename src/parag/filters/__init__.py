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
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}
    {"year": {"$not": {"$gt": 2020}}}

Field operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $not``. Numbers compare by
value (``1 == 1.0``, but ``True`` is not ``1``), ranges apply to numbers or to strings
(lexicographically, e.g. ISO dates), lists and dicts compare as whole values. As in
MongoDB, ``$ne`` and ``$nin`` also match vectors that lack the field. ``$and``, ``$or`` and
``$not`` nest at most :data:`MAX_DEPTH` levels. A callable ``filter=lambda meta: ...`` is
accepted too; it decodes every vector's metadata per search, so it is far slower.

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
"""

from parag.filters.numpy_eval import compile_filter, evaluate
from parag.filters.parse import (
    COMPARISONS,
    MAX_DEPTH,
    And,
    Compare,
    Exists,
    Filter,
    In,
    Node,
    Not,
    Or,
    Predicate,
    parse,
)

__all__ = [
    "COMPARISONS", "MAX_DEPTH", "And", "Compare", "Exists", "Filter", "In", "Node", "Not", "Or", "Predicate",
    "compile_filter", "evaluate", "parse",
]
