"""Every Python example and shell session in the README (and the Python examples of the docs
named in DOCS) runs as written, and shows what it really returns.

A statement whose comment is a Python literal, after ``#`` or ``# ->``, shows its value
(``ids = store.add(...)  # -> [0, 1, 2]``, ``store.ids()  # [1, 2]``): the test asserts it.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = [README, README.parent / "docs" / "migrate-from-langchain-faiss.md"]
BLOCKS = [block for doc in DOCS for block in re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)]
RUNNABLE = [b for b in BLOCKS if "import" in b]


def shown_value(comment: str | None) -> tuple[bool, object]:
    """(True, value) when a comment shows a value: a Python literal after ``#`` or ``# ->``."""
    if comment is None:
        return False, None
    text = comment.lstrip("#").strip().removeprefix("->").strip()
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False, None


def with_checks(block: str) -> tuple[ast.Module, int]:
    """The block with an ``assert`` after every statement whose comment shows its value."""
    comments = {tok.end[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(block).readline)
                if tok.type == tokenize.COMMENT}
    body, checks = [], 0
    for stmt in ast.parse(block).body:
        body.append(stmt)
        shows, value = shown_value(comments.get(stmt.end_lineno))
        if not shows:
            continue
        if isinstance(stmt, ast.Assign):
            actual = ast.unparse(stmt.targets[0])
        elif isinstance(stmt, ast.Expr):
            actual = ast.unparse(stmt.value)
        else:
            raise AssertionError(f"README line {stmt.lineno}: a value shown on a {type(stmt).__name__}")
        expr = lambda source: ast.parse(source, mode="eval").body  # noqa: E731
        message = ast.BinOp(ast.Constant(f"README shows {value!r} for {actual}, got "), ast.Add(),
                            ast.Call(ast.Name("repr", ast.Load()), [expr(actual)], []))
        body.append(ast.Assert(ast.Compare(expr(actual), [ast.Eq()], [expr(repr(value))]), message))
        checks += 1
    return ast.fix_missing_locations(ast.Module(body=body, type_ignores=[])), checks


def test_readme_has_examples_that_show_values():
    assert len(BLOCKS) >= 3
    assert sum(with_checks(b)[1] for b in RUNNABLE) >= 3


MILVUS = ("http://127.0.0.1:19530", "root:Milvus")  # the server the examples name: the test session's stands in


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.splitlines()[0][:40])
def test_readme_example_runs_and_returns_what_it_shows(block, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)  # examples save to relative paths
    if "MilvusVectorStore(" in block:
        server = request.getfixturevalue("milvus")  # skipped where no Milvus server can start
        block = block.replace(MILVUS[0], server.uri).replace(MILVUS[1], server.token)
    module, _ = with_checks(block)
    exec(compile(module, str(README), "exec"), {"__name__": "readme"})


def console_sessions() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as (command, lines shown after it) pairs."""
    sessions = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        sessions.append(steps)
    return sessions


@pytest.mark.parametrize("session", console_sessions(), ids=lambda s: s[0][0][:40])
def test_readme_shell_session_runs(session, tmp_path):
    """Each ``$ parag ...`` line runs (from a folder with the repository's examples/) and
    exits 0; table rows and other lines the README shows appear in its output."""
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    env = {**os.environ, "COLUMNS": "100"}
    for command, shown in session:
        argv = shlex.split(command)
        assert argv[0] == "parag", command
        argv[0] = str(Path(sys.executable).with_name("parag"))
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        output = [line.rstrip() for line in done.stdout.splitlines()]
        for line in shown:
            assert line.rstrip() in output, (command, line, done.stdout)


def test_readme_quotes_the_cli_benchmark_reports():
    """The build-throughput tables in the README are the reports of the published raw results
    (``python benchmarks/bench_cli.py --readme`` writes them)."""
    spec = importlib.util.spec_from_file_location("bench_cli", README.parent / "benchmarks" / "bench_cli.py")
    bench_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_cli)
    block = README.read_text().split("<!-- begin cli benchmark -->\n")[1].split("<!-- end cli benchmark -->")[0]
    assert list(bench_cli.PUBLISHED.glob("*.json")), "no published raw results"
    assert block == bench_cli.published()
