"""Fuzzing load with stores an attacker crafted: hypothesis draws mutations of real stores
(header fields, sizes, ids, metadata lines, manifest fields, links and file types), every
one re-sealed with recomputed checksums; each mutated store is loaded in a worker process
under a memory limit (RLIMIT_AS) and a timeout, then used. Every load must end in a store
whose searches, filters and gets work, or in a ParagError: no crash, no hang, no foreign
exception, no memory beyond a small multiple of the store's files.

The bounded run in ``./run test`` loads 600 mutated stores (~20 s on two cores). A longer one:

    PARAG_FUZZ_EXAMPLES=200 ./run test tests/test_load_fuzz.py -s -n 0

(``PARAG_FUZZ_EXAMPLES`` batches of ``PARAG_FUZZ_BATCH`` stores, default 10 x 60, each store
mutated one to three times), which
prints the counts: mutations tried, loads refused, crashes, hangs, and the peak memory of
the worst load relative to its files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from parag import FAISSVectorStore

EXAMPLES = int(os.environ.get("PARAG_FUZZ_EXAMPLES", "10"))
BATCH = int(os.environ.get("PARAG_FUZZ_BATCH", "60"))
TIMEOUT = 20  # seconds one load (and its use) may take before it counts as a hang
WORKER = Path(__file__).with_name("load_fuzz_worker.py")
BASES = {
    "Flat": ("Flat", "L2", {}),
    "HNSW": ("HNSW", "IP", {"M": 8}),
    "IVFFlat": ("IVFFlat", "L2", {"nlist": 8, "nprobe": 4}),
    "IVFFlat-untrained": ("IVFFlat", "cosine", {"nlist": 64}),
    # compressed storage (the compressed index, and the raw float32 vectors file), trained at 1,000 vectors
    "HNSW-sq8": ("HNSW", "L2", {"M": 8, "storage": "sq8"}),
    "IVFFlat-sq8": ("IVFFlat", "IP", {"nlist": 8, "nprobe": 4, "storage": "sq8"}),
    "Flat-float16": ("Flat", "cosine", {"storage": "float16"}),
}
N, D = 1000, 32
TOTALS: dict[str, Any] = {"mutations": 0, "loaded": 0, "refused": 0, "crashes": 0, "hangs": 0, "bad": 0,
                          "worst_peak": 0, "worst_ratio": 0.0}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz-bases")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (kind, metric, params) in BASES.items():
        store = FAISSVectorStore(D, kind, metric, **params)
        store.add(rng.standard_normal((N, D)), [{"i": i, "tag": "ab"[i % 2]} for i in range(N)])
        store.delete(list(range(0, N, 17)))
        store.save(root / name)
        paths[name] = str(root / name)
    return paths


# --------------------------------------------------------------------------- mutations

# "vectors": compressed stores only (a mutation of a file the store lacks does nothing).
ROLES = st.sampled_from(["index", "ids", "metadata", "vectors"])
FRACTION = st.floats(0, 1)
# Values that break size arithmetic: zero, one, negative, the int32 / int64 / uint64 edges,
# and huge claims (a claimed GiB is what made FAISS allocate before it read).
INTERESTING = st.sampled_from(
    [0, 1, 2, 3, 7, 8, -1, -2, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40,
     3 << 28, 2**62, 2**63 - 1, -(2**31), -(2**63)]
) | st.integers(-(2**63), 2**63 - 1)
# Offsets of the header fields every index file starts with (fourcc, d, ntotal, unused,
# is_trained, metric) and the first vector sizes after them.
HEADER_OFFSETS = st.sampled_from([4, 8, 16, 24, 32, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73])
LINES = st.sampled_from([
    '{"i":0},{"i":"X"}', '{"i":0} {"i":1}', "[1,2]", "7", '"s"', "true", "null", "{", "",
    '{"i":1e400}', '{"i":123456789012345678901234567890}', "[" * 3000 + "]" * 3000,
    '{"a":' * 2000 + "1" + "}" * 2000, '{"\\ud800":1}', "\udcff\udcfe", '{"i": NaN}',
    '{"i":0,"i":1}', '{"tag":{"$gte":1}}', '{"i":[1,{"x":null}]}',
]) | st.text(max_size=40)
NPY_HEADERS = st.sampled_from([
    "{'descr': '<i8', 'fortran_order': False, 'shape': (" + "-" * 3000 + "1,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (2**62,), }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (941,), }",
    "{'descr': '<i8', 'fortran_order': True, 'shape': (941,), }",
    "{'descr': '<i4', 'fortran_order': False, 'shape': (1882,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (941, 1), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (941,), 'x': __import__('os')}",
])
MANIFEST_FIELDS = st.sampled_from(["n_slots", "count", "next_id", "dimension", "nlist", "nprobe", "M",
                                   "ef_search", "trained", "index_type", "metric", "kind", "vectors", "storage"])
MANIFEST_VALUES = INTERESTING | st.sampled_from([None, True, False, "HNSW", "Flat", "IVFFlat", "IP", "x", [], {}, 1.5])

MUTATION = st.one_of(
    st.fixed_dictionaries({"op": st.just("flip"), "role": ROLES, "at": FRACTION, "xor": st.integers(1, 255)}),
    st.fixed_dictionaries({"op": st.just("put"), "role": st.just("index"), "offset": HEADER_OFFSETS,
                           "fmt": st.sampled_from(["<Q", "<q", "<i", "<I", "<B"]), "value": INTERESTING}),
    st.fixed_dictionaries({"op": st.just("put"), "role": ROLES, "at": FRACTION,
                           "fmt": st.sampled_from(["<Q", "<q", "<i"]), "value": INTERESTING}),
    st.fixed_dictionaries({"op": st.just("truncate"), "role": ROLES, "keep": FRACTION}),
    st.fixed_dictionaries({"op": st.just("splice"), "role": ROLES, "at": FRACTION,
                           "remove": st.integers(0, 64), "insert": st.binary(max_size=32).map(bytes.hex)}),
    st.fixed_dictionaries({"op": st.just("id"), "slot": FRACTION, "other": FRACTION,
                           "value": st.none() | INTERESTING}),
    st.fixed_dictionaries({"op": st.just("line"), "slot": FRACTION, "text": LINES}),
    st.fixed_dictionaries({"op": st.just("npy_header"), "role": st.just("ids"), "text": NPY_HEADERS}),
    st.fixed_dictionaries({"op": st.just("manifest"), "field": MANIFEST_FIELDS, "value": MANIFEST_VALUES}),
    st.fixed_dictionaries({"op": st.just("swap_index"), "base": st.sampled_from(list(BASES))}),
    st.fixed_dictionaries({"op": st.just("file_type"), "role": st.sampled_from(["manifest", "index", "ids", "metadata", "vectors"]),
                           "kind": st.sampled_from(["link_outside", "link_fifo", "fifo", "dir", "dev_zero", "lock_link"])}),
)


@st.composite
def case(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One to three mutations of one base store, loaded with drawn options."""
    mutations = draw(st.lists(MUTATION, min_size=1, max_size=3))
    mutations[0] = {**mutations[0], "base": draw(st.sampled_from(list(BASES))),
                    "verify": draw(st.booleans()), "mmap": draw(st.sampled_from([False, False, True]))}
    return mutations


# --------------------------------------------------------------------------- running


def run_batch(cases: list[list[dict[str, Any]]], bases: dict[str, str]) -> list[dict[str, Any]]:
    """Results of ``cases``, one worker process at a time; a worker that dies or hangs is
    replaced, and the case it was on is recorded as a crash or a hang."""
    results: list[dict[str, Any]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while len(results) < len(cases):
        todo = cases[len(results):]
        job = json.dumps({"bases": bases, "cases": todo, "timeout": TIMEOUT})
        try:
            done = subprocess.run([sys.executable, str(WORKER)], input=job, capture_output=True, text=True,
                                  env=env, timeout=TIMEOUT * 2 + 2 * len(todo))
            stdout, died = done.stdout, done.returncode != 0
            fate = f"crash (exit {done.returncode}): {done.stderr[-500:]}"
        except subprocess.TimeoutExpired as e:
            stdout, died, fate = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), True, "hang"
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        results += [line for line in lines if "done" in line]
        if died and len(results) < len(cases):
            results.append({"outcome": fate, "peak": 0, "files": 1})
    return results


def record(cases: list[list[dict[str, Any]]], results: list[dict[str, Any]]) -> list[str]:
    """Add ``results`` to the totals; the problems found, each with its case."""
    problems = []
    for mutations, r in zip(cases, results):
        TOTALS["mutations"] += len(mutations)
        outcome = r["outcome"]
        key = "loaded" if outcome == "loaded" else outcome.split(":")[0].split(" ")[0]
        key = {"refused": "refused", "crash": "crashes", "hang": "hangs"}.get(key, key if key == "loaded" else "bad")
        TOTALS[key] += 1
        if key in ("crashes", "hangs", "bad"):
            problems.append(f"{outcome}\n    case: {json.dumps(mutations)[:600]}")
        if r["peak"] > TOTALS["worst_peak"]:
            TOTALS["worst_peak"], TOTALS["worst_ratio"] = r["peak"], r["peak"] / max(r["files"], 1)
    return problems


# No shrinking: each example is a batch run in a subprocess; the failing case is named anyway.
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate], derandomize=os.environ.get("CI") == "true",
          suppress_health_check=list(HealthCheck))
@given(cases=st.lists(case(), min_size=BATCH, max_size=BATCH))
def test_every_crafted_store_loads_correctly_or_is_refused(bases: dict[str, str], cases: list[list[dict[str, Any]]]) -> None:
    problems = record(cases, run_batch(cases, bases))
    assert not problems, "\n".join(problems[:5])


def test_report() -> None:
    """Print the totals (``-s`` shows them) and check memory stayed bounded."""
    if not TOTALS["mutations"]:
        pytest.skip("the fuzzer did not run")
    print(
        f"\nload fuzzer: {TOTALS['mutations']} mutations in {TOTALS['loaded'] + TOTALS['refused'] + TOTALS['bad'] + TOTALS['crashes'] + TOTALS['hangs']} "
        f"stores; loaded {TOTALS['loaded']}, refused {TOTALS['refused']}, crashes {TOTALS['crashes']}, "
        f"hangs {TOTALS['hangs']}, other failures {TOTALS['bad']}; worst peak memory growth of one load "
        f"{TOTALS['worst_peak'] / 1e6:.1f} MB, {TOTALS['worst_ratio']:.0f}x its files"
    )
    assert TOTALS["worst_peak"] < 256 << 20  # a claimed GiB never gets allocated
