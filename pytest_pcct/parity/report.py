"""The parity matrix: engine pair x dataset x k -> exact / tie-equal / failed, with the largest distance gap.

Cells merge by worst status, largest gap and summed check counts, an order-independent merge, so the
matrix xdist workers send back (as JSON in ``workeroutput``) merges into the same matrix a serial run builds.
The JSON form carries no timestamps or host data: equal runs give byte-identical reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from pytest_pcct.gate.baselines import atomic_write_json

FORMAT = "pytest-pcct parity matrix"
VERSION = 2
STATUSES = ("exact", "tie-equal", "failed")
TELEMETRY = ("not compared", "equal", "differ")
_LETTERS = {"exact": "E", "tie-equal": "T", "failed": "F"}
COUNTERS_DIFFER = "counters differ"
"""The totals' count of cells whose telemetry counters differ (whatever their answers' status)."""


@dataclass
class Cell:
    """What every check of one (reference, candidate, dataset, k) concluded, merged."""

    status: str
    max_abs_diff: float
    checks: int = 1
    digests: set = field(default_factory=set)
    telemetry: str = "not compared"
    failure: str | None = None
    """The first line of a failure, the least in text order (merges in any order agree): query row,
    position, indices and distances (failed cells)."""

    def merge(self, other: Cell) -> None:
        self.status = max(self.status, other.status, key=STATUSES.index)
        self.max_abs_diff = _largest([self.max_abs_diff, other.max_abs_diff])
        self.checks += other.checks
        self.digests |= other.digests
        self.telemetry = max(self.telemetry, other.telemetry, key=TELEMETRY.index)
        self.failure = min(filter(None, (self.failure, other.failure)), default=None)


def _largest(gaps) -> float:
    """The largest distance gap; nan (answers not compared: one was rejected on arrival) counts as none."""
    compared = [g for g in gaps if not math.isnan(g)]
    return max(compared) if compared else math.nan


def _gap_json(x: float):
    return None if math.isnan(x) else "inf" if math.isinf(x) else x


def _ranges(ks: list[int]) -> str:
    """[1, 2, 3, 5] -> '1..3,5'."""
    parts, start = [], ks[0]
    for prev, cur in zip(ks, [*ks[1:], None], strict=False):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = cur
    return ",".join(parts)


def _gap(x: float) -> str:
    return "-" if math.isnan(x) else "0" if x == 0 else f"{x:.2g}"


class ParityMatrix:
    """Parity outcomes keyed by (reference, candidate, dataset label, k)."""

    def __init__(self):
        self.cells: dict[tuple[str, str, str, int], Cell] = {}

    def add(self, key: tuple[str, str, str, int], cell: Cell) -> None:
        if key in self.cells:
            self.cells[key].merge(cell)
        else:
            self.cells[key] = cell

    def totals(self) -> dict[str, int]:
        """Cells per status, and the cells whose telemetry counters differ, whatever their status (each such
        cell's tests failed: "0 failed" alone read green to a CI job; a cell may count in both)."""
        counts = dict.fromkeys(STATUSES, 0)
        for cell in self.cells.values():
            counts[cell.status] += 1
        counts[COUNTERS_DIFFER] = sum(cell.telemetry == "differ" for cell in self.cells.values())
        return counts

    def to_json(self) -> dict:
        rows = []
        for (reference, candidate, dataset, k), cell in sorted(self.cells.items()):
            rows.append({
                "reference": reference, "candidate": candidate, "dataset": dataset, "k": k,
                "status": cell.status,
                "max_abs_diff": _gap_json(cell.max_abs_diff),
                "checks": cell.checks, "digests": sorted(cell.digests), "telemetry": cell.telemetry,
                "failure": cell.failure,
            })
        return {"format": FORMAT, "version": VERSION, "totals": self.totals(), "cells": rows}

    def merge_json(self, payload: dict) -> None:
        """Fold in a matrix received as :meth:`to_json` output (from an xdist worker)."""
        for row in payload["cells"]:
            gap = row["max_abs_diff"]
            cell = Cell(row["status"], math.nan if gap is None else float(gap), row["checks"],
                        set(row["digests"]), row["telemetry"], row["failure"])
            self.add((row["reference"], row["candidate"], row["dataset"], row["k"]), cell)

    def write(self, path: Path, **header) -> None:
        """The JSON report: `header` (engines, seed, ...) followed by the matrix."""
        payload = {**header, **self.to_json()}
        atomic_write_json(path, payload)  # the gate's reports and baselines are written alike

    def lines(self) -> list[str]:
        """The terminal section: one row per (pair, dataset), one status letter per k."""
        groups: dict[tuple[str, str], list] = {}
        for (reference, candidate, dataset, k), cell in sorted(self.cells.items()):
            groups.setdefault((f"{reference}-{candidate}", dataset), []).append((k, cell))
        table = [("pair", "dataset", "k", "status", "max|dd|", "counters")]
        for (pair, dataset), cells in groups.items():
            ks = [k for k, _ in cells]
            table.append((
                pair, dataset, _ranges(ks), "".join(_LETTERS[c.status] for _, c in cells),
                _gap(_largest([c.max_abs_diff for _, c in cells])),
                max((c.telemetry for _, c in cells), key=TELEMETRY.index),
            ))
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        totals = self.totals()
        out = [f"{len(self.cells)} cells (engine pair x dataset x k): "
               + ", ".join(f"{totals[s]} {s}" for s in STATUSES)
               + (f"; counters differ in {totals[COUNTERS_DIFFER]}" if totals[COUNTERS_DIFFER] else "")]
        out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in table]
        out.append("status per k: E exact, T tie-equal (distances within the tolerance, not bitwise equal, "
                   "or indices that differ only within ties), F failed; max|dd| = largest |distance "
                   "difference|; counters: telemetry of one group compared (differ: a failure)")
        return out
