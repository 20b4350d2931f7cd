"""IVFFlat: vectors in clusters, a search scans the nearest few (``faiss.IndexIVFFlat``;
compressed: ``IndexIVFScalarQuantizer``, ``IndexIVFPQ``).

The index starts as an exact ``IndexFlat`` and trains itself once it holds enough vectors
to cluster well (and to train its storage); until then the store searches exactly.

An ``nlist`` not given is chosen from the live vectors when the index trains (about 4 sqrt(n),
at least 39 vectors per list) and the index retrains, in the add after which the live vectors
call for twice the lists (~4x the size it trained at, ~2x while the 39-per-list floor sets
nlist, below ~24k vectors): what suits 10k vectors scans far too much of 1M. The retraining is part of the add:
the old index stays whole until the new one is complete, so an add whose retraining fails
changes nothing. An ``nprobe`` not given follows ``nlist``; once one is set (given or tuned),
the index no longer retrains.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faiss
import numpy as np

from parag._faiss_integrity import check_ivf_structure
from parag._slots import SlotMap
from parag._validation import Param
from parag.errors import InvalidArgumentError
from parag.vectorstore.kinds.base import WIDEN_POWER, IndexKind
from parag.vectorstore.kinds.storage import PQ_BITS, SQ_TYPES, codec_problems

# Train once the index holds this many vectors per list: below 39 points per centroid
# FAISS's k-means warns that the clustering is poor.
POINTS_PER_LIST = 39
# k-means trains the lists on a sample of this many vectors per list (FAISS: 256). 64 keep
# the clustering good and retraining a 1M store takes a minute or two, not ten.
TRAIN_POINTS_PER_LIST = 64
# The default nlist never exceeds this: k-means over more lists takes minutes on a small machine.
MAX_DEFAULT_NLIST = 4096


def default_nlist(n: int) -> int:
    """The number of lists for an index trained on ``n`` vectors: about 4 sqrt(n)."""
    return int(max(1, min(round(4 * n**0.5), n // POINTS_PER_LIST, MAX_DEFAULT_NLIST)))


def default_nprobe(nlist: int) -> int:
    """The lists a search probes by default in an index of ``nlist`` lists: about 4 sqrt(nlist),
    at least 64 (or every list)."""
    return int(min(nlist, max(64, round(4 * nlist**0.5))))


class IVFFlat(IndexKind):
    """Approximate search over ``nprobe`` of ``nlist`` clusters; exact until trained."""

    name = "IVFFlat"
    # Defaults reach recall@10 0.97 on real MiniLM embeddings (debian-minilm, 59k x 384);
    # FAISS's own nprobe 1 gives 0.3.
    # Not given, nlist is chosen when the index trains, from its size (default_nlist; 256 is
    # the value at the first training, at 39 x 256 vectors), and the index retrains once the
    # size calls for twice the lists (trains_after_add); nprobe follows nlist (default_nprobe).
    params_table: ClassVar[tuple[Param, ...]] = (
        Param("nlist", 256, 1, 1 << 20),
        Param("nprobe", default_nprobe(256), 1, 1 << 20, per_search=True),
    )
    scaled = ("nlist", "nprobe")
    # Rebuilding keeps the trained quantizer: cheap, and tombstones cost the fast path.
    compact_at = 0.1
    tunable = "nprobe"

    @classmethod
    def resolve(cls, given: dict[str, Any], dimension: int) -> dict[str, Any]:
        params = super().resolve(given, dimension)
        if "nprobe" not in given:
            params["nprobe"] = default_nprobe(params["nlist"])
        # An nlist not given grows; a search probes at most every list.
        if "nlist" in given and params["nprobe"] > params["nlist"]:
            raise InvalidArgumentError(f"nprobe ({params['nprobe']}) must be <= nlist ({params['nlist']})")
        return params

    def train_at(self) -> int:
        return max(POINTS_PER_LIST * self.params["nlist"], super().train_at())

    def apply_own_defaults(self, inner: faiss.Index) -> None:
        inner.nprobe = min(self.params["nprobe"], inner.nlist)

    def follow_size(self, index: faiss.Index) -> None:
        self.follow_nlist(self.inner(index).nlist)

    def follow_nlist(self, nlist: int) -> None:
        """An automatic nprobe follows the lists there are."""
        if "nprobe" in self.auto:
            self.params["nprobe"] = default_nprobe(nlist)

    def trains_after_add(self, index: faiss.Index, n_live: int) -> bool:
        if not self.is_trained(index) or not {"nlist", "nprobe"} <= self.auto:
            return super().trains_after_add(index, n_live)
        # Retrain once the size calls for twice the lists, or for the most lists the default
        # allows: ~4x the size it trained at where 4 sqrt(n) sets nlist, but ~2x below ~24k
        # vectors, where the 39-per-list floor does (256 lists at 9,984 vectors, 512 at 19,968),
        # and retraining so few vectors is cheap. The defaults were measured under this rule
        # (docs/bench-defaults.md). Not under an nprobe that was set (given or tuned): more
        # lists would quietly lower the recall it was set for.
        nlist, wanted = self.params["nlist"], default_nlist(n_live)
        return wanted > nlist and wanted >= min(2 * nlist, MAX_DEFAULT_NLIST)

    def after_add(self, index: faiss.Index, slots: SlotMap) -> faiss.Index:
        if "nlist" not in self.auto:
            return super().after_add(index, slots)
        # (A failed add rolls the parameters back: FAISSState.append.)
        self.params["nlist"] = default_nlist(slots.n_live)
        self.follow_nlist(self.params["nlist"])
        return super().after_add(index, slots)

    def build(self) -> faiss.Index:
        d, nlist, metric, storage = self.dimension, self.params["nlist"], self.faiss_metric, self.storage_type
        quantizer = faiss.IndexFlat(d, metric)
        if storage == "float32":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
        elif storage == "pq":
            index = faiss.IndexIVFPQ(quantizer, d, nlist, self.params["pq_m"], PQ_BITS, metric)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, SQ_TYPES[storage], metric)
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        return index

    def fill(self, inner: faiss.Index, vectors: np.ndarray) -> faiss.Index:
        inner.make_direct_map(True)  # lets get(include_vectors=True) reconstruct by slot
        _add_exactly_sized(inner, vectors)
        return inner

    def trained_empty(self, inner: faiss.Index) -> faiss.Index:
        if self.storage_type != "float32":
            return super().trained_empty(inner)
        # Only the quantizer is copied, not the lists: an IVFFlat's lists are its float32 vectors.
        fresh = faiss.IndexIVFFlat(faiss.clone_index(inner.quantizer), inner.d, inner.nlist, inner.metric_type)
        self.apply_own_defaults(fresh)
        fresh.make_direct_map(True)
        return fresh

    def own_parameters(
        self, inner: faiss.Index, sel: faiss.IDSelector | None, overrides: dict[str, Any]
    ) -> faiss.SearchParameters | None:
        if sel is None and "nprobe" not in overrides:
            return None
        kwargs: dict[str, Any] = {"nprobe": min(overrides.get("nprobe", self.params["nprobe"]), inner.nlist)}
        if sel is not None:
            kwargs["sel"] = sel
        return faiss.SearchParametersIVF(**kwargs)

    def splits_one_query(self, index: faiss.Index) -> bool:
        return not self.is_trained(index)  # a trained IVF probes its lists on one thread

    def widened(self, index: faiss.Index, overrides: dict[str, int], share: float, k: int) -> dict[str, int]:
        if not self.is_trained(index):
            return overrides
        nprobe = overrides.get("nprobe", self.params["nprobe"])
        return {**overrides, "nprobe": int(min(nprobe / share**WIDEN_POWER, self.params["nlist"]))}

    def exact_search(
        self, index: faiss.Index, q: np.ndarray, k: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(index, faiss.IndexIVF):  # a flat index, or a float32 copy beside the codes
            return super().exact_search(index, q, k, sel)
        # Probing every list is exhaustive.
        return index.search(q, k, params=self.search_parameters(index, sel, {"nprobe": index.nlist}))

    def subset_search(
        self, index: faiss.Index, q: np.ndarray, k: int, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(index, faiss.IndexIVF):
            return super().subset_search(index, q, k, slots)
        flat = faiss.IndexFlat(self.dimension, self.faiss_metric)
        flat.add(index.reconstruct_batch(slots))
        distances, positions = flat.search(q, k)
        return distances, np.append(slots, -1)[positions]  # position -1 (none found) reads the -1 appended

    def tune_range(self, k: int) -> tuple[int, int]:
        return 1, self.params["nlist"]

    def own_type(self) -> type:
        return {"float32": faiss.IndexIVFFlat, "pq": faiss.IndexIVFPQ}.get(self.storage_type, faiss.IndexIVFScalarQuantizer)

    def own_structure(self, inner: faiss.Index, where: str) -> None:
        check_ivf_structure(inner, where)

    def own_problems(self, inner: faiss.Index) -> list[str]:
        problems = codec_problems(self.storage_type, self.params, self.dimension, inner)
        if inner.nlist != self.params["nlist"]:
            problems.append(f"it has {inner.nlist} lists, the manifest says {self.params['nlist']}")
        if inner.direct_map.no():
            problems.append("it has no direct map (vectors could not be reconstructed)")
        return problems


def _add_exactly_sized(ivf: faiss.IndexIVF, vectors: np.ndarray) -> None:
    """``ivf.add(vectors)``, with each inverted list allocated once at its exact size.

    FAISS grows a list by doubling, one vector at a time: after a bulk add the lists hold
    ~1.4x the memory they need (measured: 95 MB instead of 78 MB for 50k x 384). Here the
    vectors are assigned to lists first (the one coarse assignment ``add`` would do), each
    list is resized up to its count and back to empty (a std::vector keeps its capacity),
    and the assignment is handed to ``add_core``.
    """
    _, lists = ivf.quantizer.search(vectors, 1)
    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    for list_no, count in enumerate(np.bincount(lists.ravel(), minlength=ivf.nlist).tolist()):
        invlists.resize(list_no, count)
        invlists.resize(list_no, 0)
    ivf.add_core(len(vectors), faiss.swig_ptr(vectors), None, faiss.swig_ptr(lists))
