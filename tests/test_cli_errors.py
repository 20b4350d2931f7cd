"""Bad input to ``parag``: one line on stderr, the documented exit code, the store unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_support import N, assert_one_line_error, inputs, invoke  # noqa: F401 - inputs is a fixture


@pytest.fixture
def built(inputs):
    invoke("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--records", inputs["dir"] / "records.jsonl")
    return inputs


def fails(*args, code: int) -> str:
    """Run ``parag ARGS`` expecting exit ``code``; return its one-line error."""
    return assert_one_line_error(invoke(*args, code=code).stderr)


def manifest(store):
    return (store / "manifest.json").read_bytes()


def test_missing_store_is_exit_3(inputs):
    for command in (["info"], ["search", "--like", "1"], ["verify"], ["get", "1"], ["delete", "1"], ["compact"]):
        line = fails(command[0], inputs["dir"] / "nowhere", *command[1:], code=3)
        assert "nowhere" in line


def test_a_path_too_long_to_look_up_is_exit_3(inputs):
    for command in (["info"], ["verify"], ["search", "--like", "1"]):
        assert "too long" in fails(command[0], inputs["dir"] / ("x" * 300), *command[1:], code=3)


def test_a_directory_that_is_not_a_store_is_exit_3(inputs):
    fails("info", inputs["dir"], code=3)


def test_missing_input_file_is_usage_exit_2(inputs):
    assert "does not exist" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "no.npy", code=2)


def test_wrong_dimension_when_appending(built):
    before = manifest(built["store"])
    np.save(built["dir"] / "small.npy", np.ones((3, 4), np.float32))
    line = fails("build", built["store"], "--vectors", built["dir"] / "small.npy", code=1)
    assert "dimension 4" in line and "8" in line
    assert manifest(built["store"]) == before


def test_wrong_query_dimension(built):
    assert "dimension" in fails("search", built["store"], "--vector", "[1, 2]", code=1)


def test_malformed_json_line_names_file_and_line(built):
    before = manifest(built["store"])
    lines = (built["dir"] / "flat.jsonl").read_text().splitlines()
    lines[2] = '{"tag": "a", '
    (built["dir"] / "bad.jsonl").write_text("\n".join(lines))
    line = fails("build", built["store"], "--vectors", built["dir"] / "vectors.npy",
                 "--metadata", built["dir"] / "bad.jsonl", "--batch-size", 2, code=1)
    assert f"{built['dir'] / 'bad.jsonl'}:3:" in line
    assert manifest(built["store"]) == before  # the rows before the bad line were not saved


@pytest.mark.parametrize("line, message", [
    ('[1, 2]', "expected a JSON object"),
    ('{"id": -4, "metadata": {}}', "non-negative int"),
    ('{"id": 1.5, "metadata": {}}', "non-negative int or a string"),
    ('{"id": 5, "metadata": {}, "document": 3}', "'document' must be a string or null"),
])
def test_bad_records_name_their_line(inputs, line, message):
    (inputs["dir"] / "r.jsonl").write_text(line + "\n")
    np.save(inputs["dir"] / "one.npy", np.ones((1, 8), np.float32))
    error = fails("build", inputs["store"], "--vectors", inputs["dir"] / "one.npy", "--records", inputs["dir"] / "r.jsonl", code=1)
    assert message in error and "r.jsonl:1" in error
    assert not inputs["store"].exists()


def test_fewer_or_more_records_or_ids_than_rows(inputs):
    np.save(inputs["dir"] / "two.npy", np.ones((2, 8), np.float32))
    (inputs["dir"] / "two.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    vectors = inputs["dir"] / "vectors.npy"
    assert "one per row" in fails("build", inputs["store"], "--vectors", vectors, "--metadata", inputs["dir"] / "two.jsonl", code=1)
    assert "more records" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "two.npy",
                                   "--metadata", inputs["dir"] / "flat.jsonl", code=1)
    np.save(inputs["dir"] / "ids.npy", np.arange(2))
    assert "ids has 2 items" in fails("build", inputs["store"], "--vectors", vectors, "--ids", inputs["dir"] / "ids.npy", code=1)
    np.save(inputs["dir"] / "many.npy", np.arange(N + 1))
    assert "more ids" in fails("build", inputs["store"], "--vectors", vectors, "--ids", inputs["dir"] / "many.npy", code=1)
    assert not inputs["store"].exists()


def test_unknown_or_bad_index_parameter(inputs):
    line = fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--index", "HNSW",
                 "--param", "nlist=3", code=1)
    assert "nlist" in line and "ef_search" in line  # the store's own message lists the valid names
    assert "NAME=VALUE" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--param", "M", code=2)
    assert "M" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--index", "HNSW",
                        "--param", "M=many", code=1)


def test_appending_cannot_change_the_configuration(built):
    line = fails("build", built["store"], "--vectors", built["dir"] / "vectors.npy", "--index", "HNSW", code=1)
    assert "migrate" in line


def test_malformed_filter_json_is_usage_and_bad_operator_is_exit_1(built):
    assert "JSON" in fails("get", built["store"], "--filter", "{tag: a}", code=2)
    assert "$like" in fails("get", built["store"], "--filter", '{"tag": {"$like": "a"}}', code=1)


def test_unknown_id_deletes_nothing(built):
    before = manifest(built["store"])
    assert "5" in fails("delete", built["store"], 1000, 5, code=1)
    assert "5" in fails("get", built["store"], 5, code=1)
    assert "ids" in fails("delete", built["store"], "abc", code=1)  # a string id, for an int store
    assert manifest(built["store"]) == before


def test_usage_errors(built):
    fails("get", built["store"], code=2)  # neither ids nor --filter
    fails("search", built["store"], code=2)  # no query
    fails("search", built["store"], "--like", 1000, "--vector", "[1]", code=2)
    fails("search", built["store"], "--vector", json.dumps({"a": 1}), code=2)


def test_corrupt_store_is_exit_4_and_verify_lists_problems_per_file(built):
    store = built["store"]
    files = {p.name.split(".")[0]: p for p in store.iterdir()}
    for role in ("index", "metadata"):
        data = bytearray(files[role].read_bytes())
        data[len(data) // 2] ^= 0x01
        files[role].write_bytes(bytes(data))
    fails("search", store, "--like", 1000, code=4)
    fails("info", store, code=4)
    report = json.loads(invoke("verify", store, "--json", code=4).stdout)
    assert not report["sound"]
    assert set(report["problems"]) >= {files["index"].name, files["metadata"].name}
    assert any("corrupted" in p for p in report["problems"][files["index"].name])
    out = invoke("verify", store, code=4).stdout
    assert files["index"].name in out


def test_truncated_file_is_exit_4_and_named(built):
    metadata = next(built["store"].glob("metadata.*"))
    metadata.write_bytes(metadata.read_bytes()[:-5])
    report = json.loads(invoke("verify", built["store"], "--json", code=4).stdout)
    assert list(report["problems"]) == [metadata.name]
    assert "truncated" in report["problems"][metadata.name][0]


def test_verify_lists_a_truncated_a_corrupted_and_a_missing_file_together(built):
    files = {p.name.split(".")[0]: p for p in built["store"].iterdir()}
    files["ids"].write_bytes(files["ids"].read_bytes()[:-8])
    data = bytearray(files["metadata"].read_bytes())
    data[5] ^= 0x01
    files["metadata"].write_bytes(bytes(data))
    files["documents"].unlink()
    report = json.loads(invoke("verify", built["store"], "--json", code=4).stdout)
    assert sorted(report["problems"]) == sorted(files[r].name for r in ("ids", "metadata", "documents"))  # the old code: ids only
    assert "truncated" in report["problems"][files["ids"].name][0]
    assert "corrupted" in report["problems"][files["metadata"].name][0]
    assert "missing" in report["problems"][files["documents"].name][0]


def test_damaged_manifest_is_exit_4(built):
    path = built["store"] / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"count"', b'"cOunt"'))
    report = json.loads(invoke("verify", built["store"], "--json", code=4).stdout)
    assert list(report["problems"]) == ["manifest.json"]


def test_ids_from_two_places_is_usage(inputs):
    np.save(inputs["dir"] / "ids.npy", np.arange(N))
    fails("build", inputs["store"], "--vectors", inputs["dir"] / "vectors.npy", "--records", inputs["dir"] / "records.jsonl",
          "--ids", inputs["dir"] / "ids.npy", code=2)


def test_non_numeric_query_is_exit_1(built):
    assert "real numbers" in fails("search", built["store"], "--vector", '[1, 2, 3, 4, 5, 6, 7, "a"]', code=1)
    fails("migrate", built["store"], built["store"], code=1)  # DST must be new


def test_truncated_or_object_npy_is_exit_1(inputs):
    data = (inputs["dir"] / "vectors.npy").read_bytes()
    (inputs["dir"] / "cut.npy").write_bytes(data[:-100])
    assert "cut.npy" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "cut.npy", code=1)
    np.save(inputs["dir"] / "objects.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    assert "objects.npy" in fails("build", inputs["store"], "--vectors", inputs["dir"] / "objects.npy", code=1)
    assert not inputs["store"].exists()
