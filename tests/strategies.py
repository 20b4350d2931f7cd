"""Hypothesis strategies for metadata and filters, shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

BIG = 2**53  # float64 cannot tell BIG from BIG + 1: filters must

VALUES = st.one_of(
    st.integers(0, 3),
    st.sampled_from([BIG, BIG + 1, -BIG - 1]),
    st.sampled_from([0.0, 1.0, 2.5]),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.sampled_from(["x", "y"]), max_size=2),
)
METADATA = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={"g": VALUES, "s": st.sampled_from(["a", "b", "c"]), "t": st.lists(st.sampled_from(["x", "y"]), max_size=2)},
    ),
)
FIELDS = st.sampled_from(["g", "s", "t", "nope"])
RANGE_OPERANDS = st.one_of(
    st.integers(-1, 4), st.sampled_from([0.5, 2.5, BIG, BIG + 1, float(BIG)]), st.sampled_from(["a", "b", "c"])
)
# Documents for the $document operators (a store's, or the model's, per vector).
DOCS = st.one_of(st.none(), st.sampled_from(["alpha beta", "beta", "Gamma ray", ""]))


def _field_ops() -> st.SearchStrategy:
    single = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), VALUES),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), RANGE_OPERANDS),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(VALUES, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$contains"), VALUES),
        st.tuples(st.just("$substring"), st.sampled_from(["a", "b", "", "ab", "A"])),
        st.tuples(st.sampled_from(["$all", "$any"]), st.lists(VALUES, min_size=1, max_size=3)),
    )
    ops = st.lists(single, min_size=1, max_size=2, unique_by=lambda t: t[0]).map(dict)
    return st.one_of(ops, ops.map(lambda d: {"$not": d}))


DOCUMENT_OPS = st.lists(
    st.tuples(st.sampled_from(["$contains", "$not_contains"]), st.sampled_from(["beta", "alpha", "ray", ""])),
    min_size=1, max_size=2, unique_by=lambda t: t[0],
).map(dict)
LEAF = st.one_of(
    st.builds(lambda f, v: {f: v}, FIELDS, VALUES),  # implicit $eq
    st.builds(lambda f, ops: {f: ops}, FIELDS, _field_ops()),
    st.builds(lambda ops: {"$document": ops}, DOCUMENT_OPS),
)
FILTERS = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),  # several keys: all must hold
    ),
    max_leaves=6,
)
