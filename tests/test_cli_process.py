"""``parag`` as a real process: the installed console script, its exit codes and stderr,
and Ctrl-C during a build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from parag.vectorstore import FAISSVectorStore
from tests.cli_support import PARAG, N, assert_one_line_error, inputs, record, run  # noqa: F401 - inputs is a fixture
from tests.conftest import oracle


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


def test_every_subcommand_as_a_process(inputs):
    d, store = inputs["dir"], inputs["store"]
    assert run_json("build", store, "--vectors", d / "vectors.npy", "--records", d / "records.jsonl")["count"] == N
    assert run_json("info", store)["count"] == N
    assert run_json("verify", store)["sound"]
    hits = run_json("search", store, "--vector", json.dumps(inputs["x"][7].tolist()), "-k", 3)
    _, rows = oracle(inputs["x"], inputs["x"][7], 3, "L2")
    assert [h["id"] for h in hits] == [1000 + r for r in rows[0]]
    assert [r["metadata"] for r in run_json("get", store, 1004)] == [record(4)]
    assert run_json("delete", store, "--filter", '{"n": 1}')["deleted"] == 1
    assert run_json("compact", store)["count"] == N - 1
    assert run_json("tune", store)["param"] is None  # a Flat store is exact
    assert run_json("export", store, d / "out.jsonl")["exported"] == N - 1
    assert run_json("migrate", store, d / "copy", "--index", "IVFFlat", "--param", "nlist=4")["count"] == N - 1
    copy = FAISSVectorStore.load(d / "copy")
    assert copy.index_type == "IVFFlat" and 1001 not in copy and copy.get([1299]).metadata == [record(299)]


def test_errors_as_a_process_are_one_line_with_their_exit_code(inputs):
    missing = run("info", inputs["dir"] / "nowhere", code=3)
    assert assert_one_line_error(missing.stderr).startswith("parag: error: ")
    assert not missing.stdout
    usage = run("search", inputs["dir"], "--bogus", code=2)
    assert "--bogus" in assert_one_line_error(usage.stderr) and "parag search --help" in usage.stderr
    run("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy")
    index = next(inputs["store"].glob("index.*"))
    index.write_bytes(index.read_bytes()[:-1] + b"\0")
    assert_one_line_error(run("search", inputs["store"], "--like", 0, code=4).stderr)


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "parag.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "migrate" in done.stdout


# A shell's background job inherits SIGINT ignored, and Python then keeps it ignored: the build
# gets the disposition an interactive user's command has from this wrapper, which execs it. Not
# preexec_fn: that forks the test process, whose gRPC (from the Milvus tests) then writes its
# fork-handler complaints onto the child's stderr.
WITH_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.argv[1], sys.argv[1:])")


def test_ctrl_c_during_build_leaves_the_old_store_loadable(inputs):
    """The records come through a pipe that the test holds open: the build is then surely
    in the middle of adding when it gets SIGINT."""
    d, store = inputs["dir"], inputs["store"]
    run("build", store, "--vectors", d / "vectors.npy", "--records", d / "records.jsonl")
    before = (store / "manifest.json").read_bytes()
    np.save(d / "more.npy", inputs["x"])
    fifo = d / "more.jsonl"
    os.mkfifo(fifo)
    build = subprocess.Popen([sys.executable, "-c", WITH_DEFAULT_SIGINT, str(PARAG), "build", str(store),
                              "--vectors", str(d / "more.npy"), "--metadata", str(fifo), "--batch-size", "10"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "w") as pipe:  # returns once the build has opened its end: it has started adding
        pipe.write("".join(json.dumps(record(i)) + "\n" for i in range(25)))
        pipe.flush()
        time.sleep(0.5)  # two batches added, the third waits for lines
        build.send_signal(signal.SIGINT)
        _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130
    assert "interrupted" in assert_one_line_error(stderr)
    assert (store / "manifest.json").read_bytes() == before
    assert FAISSVectorStore.load(store).ids() == inputs["ids"]


def test_importing_the_cli_without_click_names_the_pip_command():
    code = "import sys; sys.modules['click'] = None; import parag.cli"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "pip install 'parag[cli]'" in done.stderr
    assert "MissingDependencyError" in done.stderr
