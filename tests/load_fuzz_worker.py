"""Worker of the load fuzzer (tests/test_load_fuzz.py), run as a script.

Reads ``{"bases": {name: dir}, "cases": [[mutation, ...], ...], "timeout": s}`` as JSON on
stdin. For each case: copies its base store, applies the mutations, re-seals the manifest
as an attacker would (every size and checksum recomputed), loads the store under a memory
limit and an alarm, then uses it (searches, filters, gets). Prints ``{"start": i}`` before
and one JSON result line after each case, so that the parent can name the case that killed
or hung the process.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402
from parag.errors import ParagError  # noqa: E402
from tests.crafting import manifest_of, reseal  # noqa: E402

HEADROOM = 1 << 30  # address space a load may add before MemoryError (RLIMIT_AS)


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS


def file_of(store: Path, role: str) -> Path:
    return store / manifest_of(store)["files"][role]["name"]


def at(data: bytes | bytearray, frac: float) -> int:
    return min(int(frac * len(data)), max(len(data) - 1, 0))


def mutate(store: Path, m: dict[str, Any], bases: dict[str, str]) -> None:
    """Apply one mutation (see test_load_fuzz.mutations for what each op means)."""
    op = m["op"]
    if op == "manifest":
        manifest = manifest_of(store)
        target = manifest["params"] if m["field"] in ("nlist", "nprobe", "M", "ef_search", "ef_construction") else manifest
        target[m["field"]] = m["value"]
        reseal(store, manifest)
        return
    if op == "swap_index":
        other = Path(bases[m["base"]])
        reseal(store, files={"index": file_of(other, "index").read_bytes()})
        return
    if op == "file_type":
        return  # applied after re-sealing (a FIFO cannot be read to re-seal)
    role = m.get("role", "index")
    if role not in manifest_of(store)["files"]:
        return  # a file this store does not have (vectors: compressed stores only)
    data = bytearray(file_of(store, role).read_bytes())
    if op == "flip" and data:
        data[at(data, m["at"])] ^= m["xor"]
    elif op == "put":
        fmt = m["fmt"]
        pos = m["offset"] if "offset" in m else at(data, m["at"])
        packed = struct.pack(fmt, m["value"] % (1 << (8 * struct.calcsize(fmt)))) if fmt[1].isupper() else struct.pack(fmt, m["value"])
        data[pos : pos + len(packed)] = packed
    elif op == "truncate":
        del data[int(m["keep"] * len(data)) :]
    elif op == "splice":
        start = at(data, m["at"]) if data else 0
        data[start : start + m["remove"]] = bytes.fromhex(m["insert"])
    elif op == "id":
        ids = np.frombuffer(bytes(data[128:]), "<i8").copy()
        if len(ids):
            ids[at(ids, m["slot"])] = m["value"] if m["value"] is not None else ids[at(ids, m["other"])]
        data = bytearray(bytes(data[:128]) + ids.tobytes())
    elif op == "line":
        lines = bytes(data).split(b"\n")
        lines[min(int(m["slot"] * len(lines)), len(lines) - 1)] = m["text"].encode("utf-8", "surrogateescape")
        data = bytearray(b"\n".join(lines))
    elif op == "npy_header":
        text = m["text"].encode()
        text += b" " * (-(len(text) + 11) % 64) + b"\n"
        data = bytearray(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + bytes(data[128:]))
    reseal(store, files={role: bytes(data)})


def replace_file(store: Path, m: dict[str, Any], target: Path, scratch: Path) -> None:
    outside = scratch / f"outside-{target.name}"
    shutil.copy(target, outside)
    target.unlink()
    kind = m["kind"]
    if kind == "link_outside":
        target.symlink_to(outside)
    elif kind == "link_fifo":
        os.mkfifo(scratch / f"fifo-{target.name}")
        target.symlink_to(scratch / f"fifo-{target.name}")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
    elif kind == "lock_link":
        shutil.copy(outside, target)
        (store / ".parag.lock").unlink(missing_ok=True)
        (store / ".parag.lock").symlink_to(scratch / "created-through-link")


def use(store: FAISSVectorStore) -> None:
    """Everything a reader does with a loaded store; checks the answers hang together."""
    ids = store.ids()
    live = set(ids)
    assert len(ids) == len(store) == len(live), "ids() disagrees with len()"
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, store.dimension)).astype(np.float32)
    for flt in (None, {"i": {"$gte": 5}}, {"$or": [{"tag": "a"}, {"i": {"$lt": 3}}]}, lambda m: bool(m)):
        result = store.search(q, k=10, filter=flt)
        for row_ids, row_meta in zip(result.ids, result.metadata):
            assert set(row_ids) <= live, "search returned an id that is not stored"
            assert all(isinstance(m, dict) for m in row_meta), "search returned metadata that is not a dict"
            if flt is None:
                assert len(row_ids) == min(10, len(store)), "an unfiltered search came back short"
    got = store.get(ids[:50], include_vectors=True)
    assert got.vectors is not None and got.vectors.shape == (min(50, len(ids)), store.dimension)
    assert all(isinstance(m, dict) for m in got.metadata)
    if ids:
        store.search(q[0], k=3, filter={"i": ids[0]})


def run_case(mutations: list[dict[str, Any]], bases: dict[str, str], scratch: Path, timeout: float) -> dict[str, Any]:
    base = Path(bases[mutations[0]["base"]])
    store_dir = scratch / "store"
    shutil.copytree(base, store_dir, symlinks=True)
    for m in mutations:
        try:
            mutate(store_dir, m, bases)
        except (ValueError, IndexError, struct.error, OSError, UnicodeError):
            pass  # the mutation does not apply to what earlier ones left (e.g. ids no longer int64)
    replacing = [m for m in mutations if m["op"] == "file_type"]
    # Named before any is replaced: a manifest replaced by a FIFO could not be read again.
    roles = manifest_of(store_dir).get("files", {}) if (store_dir / "manifest.json").is_file() else {}
    replacing = [m for m in replacing if m["role"] == "manifest" or m["role"] in roles]
    targets = [store_dir / "manifest.json" if m["role"] == "manifest" else file_of(store_dir, m["role"]) for m in replacing]
    for m, target in zip(replacing, targets):
        if target.is_file() and not target.is_symlink():
            replace_file(store_dir, m, target, scratch)
    files = sum(p.stat().st_size for p in store_dir.iterdir() if p.is_file() and not p.is_symlink())
    before = status("VmRSS")
    reset_peak()
    signal.alarm(int(timeout))
    try:
        loaded = FAISSVectorStore.load(store_dir, verify=mutations[0].get("verify", True), mmap=mutations[0].get("mmap", False))
        outcome = "loaded"
        use(loaded)
        del loaded
    except ParagError as e:
        outcome = "refused:" + type(e).__name__
    except TimeoutError:
        outcome = "hang"
    except BaseException as e:  # noqa: BLE001 - what the fuzzer looks for
        outcome = f"bad:{type(e).__name__}: {str(e)[:300]}"
    finally:
        signal.alarm(0)
    peak = status("VmHWM") - before
    if (scratch / "created-through-link").exists():
        outcome = "bad:the lock file was created through a link"
    return {"outcome": outcome, "peak": peak, "files": files}


def main() -> None:
    job = json.loads(sys.stdin.read())
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def on_alarm(*_: Any) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, on_alarm)
    for base in job["bases"].values():  # warm up: FAISS's and numpy's one-time allocations
        use(FAISSVectorStore.load(base))
    limit = status("VmSize") + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for i, case in enumerate(job["cases"]):
        print(json.dumps({"start": i}), flush=True)
        scratch = Path(tempfile.mkdtemp(prefix="parag-fuzz-"))
        try:
            result = run_case(case, job["bases"], scratch, job["timeout"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(json.dumps({"done": i, **result}), flush=True)


if __name__ == "__main__":
    main()
