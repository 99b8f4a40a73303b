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


@pytest.fixture(scope="module")
def record():
    X = datasets.make("duplicates", 800, 2, 6).points
    return ct.CoverTree(path="tree").fit(X).query(indices=np.arange(0, 800, 8), k=10).telemetry


def test_schema_is_draft_2020_12_with_an_id():
    document = schema.load(schema_resource())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith("query_telemetry.v3.json")


def test_gold_and_brute_records_validate(record):
    validate_record(record)
    X = datasets.gaussian(100, 2, 0)
    validate_record(ct.CoverTree(engine="brute").fit(X).query(X[:4], k=3).telemetry)


def test_a_best_first_record_validates_and_a_version_2_record_still_does(record):
    """Version 3 only gave frontier_steps and the levels rows their best-first meaning: the same fields, so
    a record labelled version 2 still validates against the version 2 schema."""
    X = datasets.make("duplicates", 800, 2, 6).points
    best_first = ct.CoverTree(path="tree", best_first=True).fit(X).query(indices=np.arange(0, 800, 8), k=10)
    validate_record(best_first.telemetry)
    assert best_first.telemetry["config"]["best_first"]
    assert validation_errors({**record, "schema_version": 2}) == []


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


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("counters", "prunes"), -1, "minimum"),
        (("schema_version",), 99, "was expected"),
        (("created",), "yesterday", "date-time"),
        (("dataset_digest",), "abc", "does not match"),
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
