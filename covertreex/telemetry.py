"""Query telemetry: turn engine counters into the versioned record, validate it, read and write JSONL.

The schema ships inside the package (``covertreex/schemas``, one file per version) and is read by
:mod:`covertreex.schema`: once per process, with a draft 2020-12 validator and format checking on. See
docs/telemetry.md for every field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from covertreex import schema, strict_json
from covertreex.config import Config
from covertreex.counters import LevelCounter, QueryCounter
from covertreex.engines.base import QueryCounters
from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.tree import Tree

SCHEMA_NAME = "covertreex.query_telemetry"
SCHEMA_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
"""Record versions that still validate (each against its own shipped schema file)."""
COMPARED_SECTIONS = ("counters", "per_query", "levels")
"""The parts of a record that are deterministic and compared for parity (timings never are)."""


def schema_resource(version: int = SCHEMA_VERSION) -> str:
    """The shipped schema of records of `version`, as a :mod:`covertreex.schema` resource name."""
    return f"covertreex:schemas/query_telemetry.v{version}.json"


def validation_errors(record: dict) -> list[str]:
    """Every schema violation of `record`, as 'path: message' strings (empty when valid), integers strict
    (:func:`covertreex.schema.validator`), then every spread whose min, mean and max are out of order; a
    record of an older readable version is checked against that version's schema."""
    version = record.get("schema_version") if isinstance(record, dict) else None
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        version = SCHEMA_VERSION
    return schema.errors(record, schema_resource(version), strict=True) or _spread_problems(record)


def _spread_problems(record: dict) -> list[str]:
    """Spreads (min, max, mean of a per-query counter) with min <= mean <= max broken: the schema bounds
    each value alone (a hand-edited record had min 999 over max 5)."""
    spreads = record.get("per_query") if isinstance(record.get("per_query"), dict) else {}
    ordered = ("min", "mean", "max")
    return [f"per_query/{name}: min {spread['min']}, mean {spread['mean']} and max {spread['max']} are not "
            "in that order" for name, spread in spreads.items()
            if isinstance(spread, dict) and all(isinstance(spread.get(key), int | float) for key in ordered)
            and not spread["min"] <= spread["mean"] <= spread["max"]]


def validate_record(record: dict) -> None:
    problems = validation_errors(record)
    if problems:
        raise InvalidInputError("telemetry record does not match its schema: " + "; ".join(problems[:5]))


def tree_digest(tree: Tree | None) -> str | None:
    return None if tree is None else tree.digest


QUERY_FIELDS = tuple(column.field for column in QueryCounter)
LEVEL_FIELDS = tuple(column.field for column in LevelCounter)
SPREAD_COLUMNS = (QueryCounter.DISTANCE_EVALUATIONS, QueryCounter.HEAP_PUSHES, QueryCounter.FRONTIER_STEPS)
"""The per-query counters whose spread (min, max, mean) a record carries, besides pairs_screened."""
SPREAD_FIELDS = tuple(column.field for column in SPREAD_COLUMNS) + ("pairs_screened",)


def _spreads(columns: np.ndarray, names) -> dict:
    """{name: {min, max, mean}} of each column of an integer array with at least one row. The mean is the
    exact integer sum over the row count, the same float64 as ``column.mean()`` (partial sums of integers
    below 2**53 are exact in any order), in three reductions instead of three per column."""
    rows = columns.shape[0]
    lows, highs, sums = (reduce(columns, axis=0).tolist() for reduce in (np.min, np.max, np.sum))
    return {name: {"min": low, "max": high, "mean": total / rows}
            for name, low, high, total in zip(names, lows, highs, sums, strict=True)}


@dataclass(frozen=True)
class RecordSource:
    """What a query call's record says besides its counters, taken when the call ends. Calling it with the
    call's counters builds the record; a result does that on first read of its ``telemetry`` (most callers
    never read it, and building cost more than a one-row query's search). Scalars only, so a kept result
    holds neither the indexed data nor the tree."""

    created: datetime
    engine: str
    mode: str
    metric: str
    kernel: str | None
    n_points: int
    n_dims: int
    n_queries: int
    k: int
    predecessor: bool
    dataset_digest: str
    query_digest: str
    config: Config
    tree_digest: str | None
    level_slots: tuple
    seconds: float

    @classmethod
    def of_call(
        cls, *, engine: str, mode: str, space: MetricSpace, queries: QuerySet, k: int, config: Config,
        tree: Tree | None, seconds: float,
    ) -> RecordSource:
        return cls(
            created=datetime.now(timezone.utc), engine=engine, mode=mode, metric=space.metric,
            kernel=space.problem.kernel if space.problem is not None else None, n_points=space.n_points,
            n_dims=space.n_dims, n_queries=queries.n_queries, k=k, predecessor=queries.predecessor,
            dataset_digest=space.digest, query_digest=queries.digest(), config=config,
            tree_digest=tree_digest(tree), level_slots=tuple(tree.level_slots) if tree is not None else (),
            seconds=float(seconds),
        )

    def __call__(self, counters: QueryCounters) -> dict:
        """The telemetry record of the call (valid against the shipped schema)."""
        pq = counters.per_query
        screened = counters.extra.get("screened")
        screened = np.zeros(pq.shape[0], dtype=np.int64) if screened is None else np.asarray(screened)
        totals = dict(zip(QUERY_FIELDS, pq.sum(axis=0).tolist(), strict=True))  # integers: exact in any order
        totals["nodes_visited"] = totals["distance_evaluations"] + totals["dedupe_hits"]
        totals["pairs_screened"] = int(screened.sum())
        spread = np.column_stack([pq[:, SPREAD_COLUMNS], screened.astype(np.int64, copy=False)])
        extra = counters.extra
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "created": self.created.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "engine": self.engine,
            "mode": self.mode,
            "metric": self.metric,
            "dtype": "float64",
            "kernel": self.kernel,
            "n_points": self.n_points,
            "n_dims": self.n_dims,
            "n_queries": self.n_queries,
            "k": self.k,
            "predecessor": self.predecessor,
            "dataset_digest": self.dataset_digest,
            "query_digest": self.query_digest,
            "config_digest": self.config.digest(),
            "tree_digest": self.tree_digest,
            "path": extra.get("path", "tree"),
            "config": self.config.as_dict(),
            "timings": {"query_seconds": self.seconds} | (
                {"gemm_seconds": float(extra["gemm_seconds"])} if "gemm_seconds" in extra else {}),
            "counters": totals,
            "speculation": {"discarded_evaluations": int(extra.get("discarded_evaluations", 0))},
            "per_query": _spreads(spread, SPREAD_FIELDS),
            "levels": [{"level": label} | dict(zip(LEVEL_FIELDS, row, strict=True))
                       for label, row in zip(self.level_slots, counters.per_level.tolist(), strict=True)]
            if self.level_slots else [],
        }


def write_jsonl(path, records) -> None:
    """Append records to a JSONL file, one per line, as strict JSON: a record holding NaN or an infinity
    (which Python's json writes as bare NaN, no JSON) is refused, before anything is written. A failed
    write names the file: the error of a full disk surfaces at the flush, without it ("[Errno 28] No space
    left on device")."""
    lines = []
    for number, record in enumerate(records, start=1):
        try:
            lines.append(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        except ValueError as exc:
            raise InvalidInputError(f"cannot write telemetry record {number} (counted from 1) to {path}: "
                                    f"{exc}") from None
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, f"cannot write telemetry to {path}: {exc.strerror}") from exc


def read_jsonl(path) -> list[dict]:
    """Read and validate every record; a bad line raises CorruptFileError naming the file and line, a file
    that cannot be opened what `open` raises (FileNotFoundError, naming the path)."""
    path = Path(path)
    records = []
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        lines = data.decode("utf-8").split("\n")  # not splitlines: U+2028 inside a JSON string is no line end
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path}: cannot read telemetry file ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = strict_json.loads(line)
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
