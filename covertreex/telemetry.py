"""Query telemetry: turn engine counters into the versioned record, validate it, read and write JSONL.

The schema ships inside the package (``covertreex/schemas``, one file per version) and is read by
:mod:`covertreex.schema`: once per process, with a draft 2020-12 validator and format checking on. See
docs/telemetry.md for every field.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from covertreex import schema
from covertreex.config import Config
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.base import QueryCounters
from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.tree import Tree

SCHEMA_NAME = "covertreex.query_telemetry"
SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
"""Record versions that still validate (each against its own shipped schema file)."""
COMPARED_SECTIONS = ("counters", "per_query", "levels")
"""The parts of a record that are deterministic and compared for parity (timings never are)."""


def schema_resource(version: int = SCHEMA_VERSION) -> str:
    """The shipped schema of records of `version`, as a :mod:`covertreex.schema` resource name."""
    return f"covertreex:schemas/query_telemetry.v{version}.json"


def validation_errors(record: dict) -> list[str]:
    """Every schema violation of `record`, as 'path: message' strings (empty when valid); a record of an
    older readable version is checked against that version's schema."""
    version = record.get("schema_version") if isinstance(record, dict) else None
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        version = SCHEMA_VERSION
    return schema.errors(record, schema_resource(version))


def validate_record(record: dict) -> None:
    problems = validation_errors(record)
    if problems:
        raise InvalidInputError("telemetry record does not match its schema: " + "; ".join(problems[:5]))


def tree_digest(tree: Tree | None) -> str | None:
    return None if tree is None else tree.digest


def _spread(column: np.ndarray) -> dict:
    return {"min": int(column.min()), "max": int(column.max()), "mean": float(column.mean())}


def make_record(
    *, engine: str, mode: str, space: MetricSpace, queries: QuerySet, k: int, config: Config,
    tree: Tree | None, counters: QueryCounters, seconds: float,
) -> dict:
    """The telemetry record of one query call (valid against the shipped schema)."""
    pq = counters.per_query
    screened = np.asarray(counters.extra.get("screened", np.zeros(pq.shape[0], dtype=np.int64)))
    sums = pq.sum(axis=0)  # integers: exact in any order
    totals = {column.field: int(sums[column]) for column in QueryCounter}
    totals["nodes_visited"] = totals["distance_evaluations"] + totals["dedupe_hits"]
    totals["pairs_screened"] = int(screened.sum())
    spread = (QueryCounter.DISTANCE_EVALUATIONS, QueryCounter.HEAP_PUSHES, QueryCounter.FRONTIER_STEPS)
    levels = []
    if tree is not None:
        for label, row in zip(tree.level_slots, counters.per_level, strict=True):
            levels.append({"level": label} | {column.field: int(row[column]) for column in LevelCounter})
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "engine": engine,
        "mode": mode,
        "metric": space.metric,
        "dtype": "float64",
        "kernel": space.problem.kernel if space.problem is not None else None,
        "n_points": space.n_points,
        "n_dims": space.n_dims,
        "n_queries": queries.n_queries,
        "k": k,
        "predecessor": queries.predecessor,
        "dataset_digest": space.digest,
        "config_digest": config.digest(),
        "tree_digest": tree_digest(tree),
        "path": counters.extra.get("path", "tree"),
        "config": config.as_dict(),
        "timings": {"query_seconds": float(seconds)} | (
            {"gemm_seconds": float(counters.extra["gemm_seconds"])} if "gemm_seconds" in counters.extra
            else {}),
        "counters": totals,
        "speculation": {"discarded_evaluations": int(counters.extra.get("discarded_evaluations", 0))},
        "per_query": {column.field: _spread(pq[:, column]) for column in spread}
        | {"pairs_screened": _spread(screened)},
        "levels": levels,
    }


def write_jsonl(path, records) -> None:
    """Append records to a JSONL file, one per line."""
    with open(path, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path) -> list[dict]:
    """Read and validate every record; a bad line raises CorruptFileError naming the file and line."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}: cannot read telemetry file ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorruptFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            raise CorruptFileError(f"{path}:{number}: not a plausible JSON record ({exc})") from exc
        if not isinstance(record, dict):
            raise CorruptFileError(f"{path}:{number}: a telemetry record must be a JSON object")
        try:
            problems = validation_errors(record)
        except RecursionError as exc:
            raise CorruptFileError(f"{path}:{number}: record nested too deeply to validate") from exc
        if problems:
            raise CorruptFileError(f"{path}:{number}: " + "; ".join(problems[:3]))
        records.append(record)
    return records
