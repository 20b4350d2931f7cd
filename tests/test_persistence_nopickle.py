"""Loading a store never runs code: no module of parag may use pickle or its relatives.

A static scan of every module under ``src/parag`` with :mod:`ast`: imports of the
serialisers that can execute code on load, dynamic imports of them, ``allow_pickle`` set
to anything but a literal False (``numpy.load`` / ``numpy.save``), and ``eval`` / ``exec``.

One audited exception: ``integrations/langchain_faiss_import.py`` imports :mod:`pickle` to read
LangChain FAISS folders with a restricted ``Unpickler`` that resolves no global but inert
stand-ins (``tests/test_langchain_faiss_import.py`` proves a malicious file runs nothing). It
may import pickle and nothing else the scan forbids, and it never calls ``pickle.load(s)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import parag

FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec"}
SOURCE = Path(parag.__file__).resolve().parent
AUDITED = "integrations/langchain_faiss_import.py"


def violations(source: str) -> list[str]:
    """What the scan objects to in one module's source, with line numbers."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            found += [f"line {line}: import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"line {line}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            found += call_violations(node, line)
    return found


def call_violations(node: ast.Call, line: object) -> list[str]:
    found = []
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    if name in FORBIDDEN_CALLS:
        found.append(f"line {line}: {name}()")
    if name in ("__import__", "import_module") and node.args:
        target = node.args[0]
        if not isinstance(target, ast.Constant) or str(target.value).split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"line {line}: {name}({ast.unparse(target)})")
    for keyword in node.keywords:
        if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
            found.append(f"line {line}: allow_pickle={ast.unparse(keyword.value)}")
        if keyword.arg is None:  # **kwargs could smuggle allow_pickle=True into numpy
            if name in ("load", "save"):
                found.append(f"line {line}: {name}(**{ast.unparse(keyword.value)})")
    return found


def modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_the_scan_sees_every_module() -> None:
    names = {p.relative_to(SOURCE).as_posix() for p in modules()}
    assert {"persistence/_reading.py", "metadata/store.py", "vectorstore/faiss_store.py"} <= names


@pytest.mark.parametrize("module", modules(), ids=lambda p: p.relative_to(SOURCE).as_posix())
def test_no_module_can_run_code_on_load(module: Path) -> None:
    found = violations(module.read_text(encoding="utf-8"))
    if module.relative_to(SOURCE).as_posix() == AUDITED:
        assert [v.split(": ", 1)[1] for v in found] == ["import pickle"]
    else:
        assert found == []


def test_the_audited_exception_never_unpickles_freely() -> None:
    """Its only Unpickler is the restricted one; no pickle.load / loads / Unpickler(...).load elsewhere."""
    tree = ast.parse((SOURCE / AUDITED).read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "pickle"}
    assert used == {"Unpickler", "UnpicklingError"}
    restricted = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "_DocstoreUnpickler"]
    assert restricted and {f.name for f in restricted[0].body if isinstance(f, ast.FunctionDef)} >= {"find_class"}


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "import os, marshal",
        "import shelve as s",
        "from dill import loads",
        "import cloudpickle.cloudpickle",
        "from _pickle import loads",
        "import joblib",
        "np.load(f, allow_pickle=True)",
        "numpy.load(f, allow_pickle=flag)",
        "np.save(f, a, allow_pickle=True)",
        "np.load(f, **options)",
        "__import__('pickle')",
        "importlib.import_module(name)",
        "eval(text)",
        "exec(code)",
    ],
)
def test_the_scan_catches(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    ["np.load(f, allow_pickle=False)", "np.save(f, a, allow_pickle=False)", "np.load(f)", "import orjson, json",
     "importlib.import_module('parag.tuning')", "store.load(path, verify=False)"],
)
def test_the_scan_allows(source: str) -> None:
    assert violations(source) == []
