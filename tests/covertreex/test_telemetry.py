"""Query telemetry: records validate against the shipped schema and the counters mean what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets, schema
from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.telemetry import (
    read_jsonl,
    schema_resource,
    validate_record,
    validation_errors,
    write_jsonl,
)
from pytest_pcct.parity.datasets import problem_from_arrays


@pytest.fixture(scope="module")
def record():
    X = datasets.make("duplicates", 800, 2, 6).points
    return ct.CoverTree(path="tree").fit(X).query(indices=np.arange(0, 800, 8), k=10).telemetry


def test_schema_is_draft_2020_12_with_an_id():
    document = schema.load(schema_resource())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith("query_telemetry.v5.json")


def test_gold_and_brute_records_validate(record):
    validate_record(record)
    X = datasets.gaussian(100, 2, 0)
    validate_record(ct.CoverTree(engine="brute").fit(X).query(X[:4], k=3).telemetry)


def test_a_best_first_record_validates(record):
    X = datasets.make("duplicates", 800, 2, 6).points
    best_first = ct.CoverTree(path="tree", best_first=True).fit(X).query(indices=np.arange(0, 800, 8), k=10)
    validate_record(best_first.telemetry)
    assert best_first.telemetry["config"]["best_first"]


def test_schedule_counters_validate_and_sum_over_levels(record):
    """Version 4 added the block, early-stop and level-cache counters: a record with those knobs on
    validates, its per-level blocks and cache skips sum to the totals, and a version 3 record (without
    them) still validates against its own schema, as does one labelled version 2 (version 3 only gave
    frontier_steps and the levels rows their best-first meaning)."""
    X = datasets.make("duplicates", 800, 2, 6).points
    knobs = {"best_first": True, "early_stop": True, "level_cache": True}
    for options in (knobs, {"block_sizing": True, "level_cache": True}):
        r = ct.CoverTree(path="tree", **options).fit(X).query(indices=np.arange(0, 800, 8), k=10).telemetry
        validate_record(r)
        c, levels = r["counters"], r["levels"]
        assert c["blocks"] == sum(row["blocks"] for row in levels) > c["frontier_steps"] * (
            0 if options.get("best_first") else 1) - 1
        assert c["cache_skips"] == sum(row["cache_skips"] for row in levels) > 0
        assert c["empty_blocks"] <= c["blocks"]
    assert c["blocks"] > c["frontier_steps"], "block_sizing cuts the steps into several blocks"
    old = {key: value for key, value in record.items() if key not in ("counters", "levels", "query_digest")}
    old["counters"] = {key: value for key, value in record["counters"].items()
                       if key not in ("blocks", "empty_blocks", "early_stops", "guard_checks", "cache_skips")}
    old["levels"] = [{key: value for key, value in row.items() if key not in ("blocks", "cache_skips")}
                     for row in record["levels"]]
    assert validation_errors({**old, "schema_version": 3}) == []
    assert validation_errors({**old, "schema_version": 2}) == []
    assert validation_errors({**old, "schema_version": 4}) != []


def test_a_record_names_its_queries(record):
    """Version 5 added query_digest: records of two calls with the same data, sizes and k but other
    queries differ there (and only there, of the identity fields), and it is the digest pytest-pcct's
    problem of those queries names; a version 5 record without it is invalid, a version 4 one is not."""
    X = datasets.make("duplicates", 800, 2, 6).points
    tree = ct.CoverTree(path="tree").fit(X)
    shifted = tree.query(indices=np.arange(1, 800, 8), k=10).telemetry
    same = tree.query(indices=np.arange(0, 800, 8), k=10).telemetry
    assert same["query_digest"] == record["query_digest"] != shifted["query_digest"]
    identity = ("metric", "n_points", "n_dims", "n_queries", "k", "predecessor", "dataset_digest")
    assert [shifted[name] for name in identity] == [record[name] for name in identity]
    assert record["query_digest"] == problem_from_arrays(X, query_indices=np.arange(0, 800, 8)).query_digest
    at_points = tree.query(X[:5], k=3).telemetry
    assert at_points["query_digest"] == problem_from_arrays(X, queries=X[:5]).query_digest
    assert at_points["query_digest"] != tree.query(indices=np.arange(5), k=3).telemetry["query_digest"]
    predecessor = tree.query(k=3, predecessor=True).telemetry
    assert predecessor["query_digest"] == problem_from_arrays(X, predecessor=True).query_digest
    assert predecessor["query_digest"] != tree.query(indices=np.arange(800), k=3).telemetry["query_digest"]
    without = {key: value for key, value in record.items() if key != "query_digest"}
    assert any("query_digest" in problem for problem in validation_errors(without))
    assert validation_errors({**without, "schema_version": 4}) == []


def test_counters_are_consistent(record):
    c = record["counters"]
    levels = record["levels"]
    assert c["distance_evaluations"] == sum(row["distance_evaluations"] for row in levels)
    assert c["heap_pushes"] == sum(row["heap_pushes"] for row in levels)
    assert c["prunes"] == sum(row["prunes"] for row in levels)
    assert c["dedupe_hits"] > 0, "duplicated rows reuse their copy's distance"
    assert c["nodes_visited"] == c["distance_evaluations"] + c["dedupe_hits"]
    assert levels[-1]["level"] == "duplicates"
    assert record["per_query"]["distance_evaluations"]["min"] >= 1  # the root is always evaluated
    assert c["heap_pushes"] >= 100 * 10


def test_counters_match_a_direct_count():
    """With k = n nothing can be pruned, so every point is evaluated exactly once."""
    X = datasets.gaussian(300, 2, 1)
    r = ct.CoverTree(path="tree").fit(X).query(indices=[5], k=300)
    assert r.telemetry["counters"]["distance_evaluations"] == 300  # k = n: nothing can be pruned
    assert r.telemetry["counters"]["prunes"] == 0


def test_brute_record_counts_every_pair():
    X = datasets.gaussian(120, 2, 1)
    r = ct.CoverTree(engine="brute", brute_variant="direct").fit(X).query(X[:5], k=3)
    assert r.telemetry["counters"]["distance_evaluations"] == 5 * 120
    assert r.telemetry["mode"] == "oracle" and r.telemetry["levels"] == []


def test_per_query_spreads_are_the_columns_min_max_and_mean():
    """The record's spreads equal NumPy's reductions of each counter column, bit for bit."""
    X = datasets.make("lattice", 900, 3, 2).points
    for path in ("tree", "dense"):
        r = ct.CoverTree(path=path).fit(X).query(indices=np.arange(0, 900, 7), k=12)
        columns = {"distance_evaluations": 0, "heap_pushes": 1, "frontier_steps": 4}
        expected = {name: r.counters.per_query[:, c] for name, c in columns.items()}
        expected["pairs_screened"] = np.asarray(r.counters.extra.get("screened", np.zeros(129, np.int64)))
        for name, column in expected.items():
            spread = r.telemetry["per_query"][name]
            assert (spread["min"], spread["max"]) == (column.min(), column.max())
            assert spread["mean"].hex() == float(column.mean()).hex()


def test_the_record_is_built_on_first_read_from_what_the_call_counted(monkeypatch):
    """A call whose record nobody reads never builds it; a read builds it once, with the call's
    counters (read-only, so nothing can change them first) and the call's time, not the read's."""
    from covertreex.telemetry import RecordSource

    built, build = [], RecordSource.__call__
    monkeypatch.setattr(RecordSource, "__call__", lambda self, counts: built.append(1) or build(self, counts))
    X = datasets.gaussian(400, 3, 2)
    tree = ct.CoverTree(path="tree").fit(X)
    result = tree.query(X[:5], k=4)
    assert built == []
    with pytest.raises(ValueError, match="read-only"):
        result.counters.per_query[0, 0] = 10**6
    created = result.describe.created
    record = result.telemetry
    assert built == [1] and result.telemetry is record
    assert record["created"] == created.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert record["counters"]["distance_evaluations"] == int(result.counters.per_query[:, 0].sum())
    validate_record(record)


def test_a_kept_result_does_not_hold_the_indexed_data():
    """Results kept across fits hold scalars for their records, not each fit's points or tree."""
    import gc
    import weakref

    tree = ct.CoverTree(path="tree").fit(datasets.gaussian(300, 2, 3))
    result = tree.query(indices=[0, 1], k=3)
    space, built = weakref.ref(tree.space), weakref.ref(tree.built_tree)
    tree.fit(datasets.gaussian(300, 2, 4))
    tree.last_result = None
    gc.collect()
    assert space() is None and built() is None
    validate_record(result.telemetry)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("counters", "prunes"), -1, "minimum"),
        (("schema_version",), 99, "was expected"),
        (("created",), "yesterday", "date-time"),
        (("dataset_digest",), "abc", "does not match"),
        (("k",), 10.0, "10.0 is not of type 'integer'"),  # the draft's integer; no record holds one
        (("counters", "prunes"), 2**70, f"counters/prunes: {2**70} is beyond int64"),
        (("per_query", "heap_pushes", "min"), 999, "per_query/heap_pushes: min 999, mean"),  # over its max
    ],
)
def test_broken_records_are_rejected(record, path, value, message):
    broken = json.loads(json.dumps(record))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(message in e for e in validation_errors(broken))
    with pytest.raises(InvalidInputError, match="does not match its schema"):
        validate_record(broken)


def test_jsonl_round_trip(record, tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [record, record])
    assert read_jsonl(path) == [record, record]


def test_a_line_separator_inside_a_string_is_no_line_end(record, tmp_path):
    """JSON allows U+2028 raw inside a string; str.splitlines split the record there ("not valid JSON")."""
    edited = {**record, "engine": "gold\u2028build"}
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (edited, record)) + "\r\n",
                    encoding="utf-8")
    assert read_jsonl(path) == [edited, record]


def test_corrupt_jsonl_names_file_and_line(record, tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [record])
    with open(path, "a") as fh:
        fh.write('{"schema": "covertreex.query_telemetry", "trunc\n')
    with pytest.raises(CorruptFileError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_invalid_record_in_jsonl_names_line(record, tmp_path):
    path = tmp_path / "bad.jsonl"
    broken = dict(record, k=0)
    write_jsonl(path, [record, broken])
    with pytest.raises(CorruptFileError, match=r"bad.jsonl:2: k: 0 is less than the minimum"):
        read_jsonl(path)


def test_nan_is_neither_written_nor_read_as_json(record, tmp_path):
    """json writes a bare NaN, which is no JSON, and read it back: 'pcct telemetry validate' passed it."""
    path = tmp_path / "t.jsonl"
    nan = {**record, "timings": {**record["timings"], "query_seconds": float("nan")}}
    with pytest.raises(InvalidInputError, match=r"record 2 \(counted from 1\) to .*t.jsonl: Out of"):
        write_jsonl(path, [record, nan])
    assert not path.exists()  # nothing written: the first record is not left alone in the file
    path.write_text(json.dumps(record) + "\n" + json.dumps(nan) + "\n")
    with pytest.raises(CorruptFileError, match=r"t.jsonl:2: not a plausible JSON record \(NaN is not a JSON"):
        read_jsonl(path)
    overflow = json.dumps(record).replace('"query_seconds": ', '"query_seconds": 1e999, "x": ', 1)
    path.write_text(overflow + "\n")  # reads as inf, which write_jsonl refuses
    with pytest.raises(CorruptFileError, match=r"t.jsonl:1: not a plausible JSON record \(the number 1e999"):
        read_jsonl(path)


def test_a_key_twice_in_a_record_is_corrupt(record, tmp_path):
    """json keeps the last of two equal keys, so a badly merged record read as valid data."""
    path = tmp_path / "t.jsonl"
    text = json.dumps(record)
    path.write_text(text + "\n" + text.replace('"k": ', '"k": 7, "k": ', 1) + "\n")
    with pytest.raises(CorruptFileError, match=r"t.jsonl:2: not a plausible JSON record \(the key 'k'"):
        read_jsonl(path)


def test_a_missing_telemetry_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        read_jsonl(tmp_path / "absent.jsonl")


def test_a_telemetry_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(CorruptFileError, match="latin.jsonl"):
        read_jsonl(path)
