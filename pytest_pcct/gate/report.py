"""The gate's outputs: a terminal summary table and a JSON export of every result.

Results are plain dicts (see :meth:`pytest_pcct.gate.session.GateSession._add`) so xdist workers can ship
them to the controller in ``workeroutput`` unchanged; both outputs are built only where all results meet.
"""

from __future__ import annotations

from pathlib import Path

from pytest_pcct.gate.baselines import atomic_write_json, machine_facts, now
from pytest_pcct.gate.rules import TIME_STAT, summarize_counters

REPORT_FORMAT = "pytest_pcct.gate_report"
REPORT_VERSION = 1


def _counters_cell(result: dict) -> str:
    counters = result.get("counters") or {}
    if "recorded" in counters:
        return f"recorded {len(counters['recorded'])}"
    return summarize_counters(counters) if counters else "-"


def _time_cell(result: dict) -> str:
    time = result.get("time") or {}
    if "slowdown" in time:
        hidden = ", hidden by noise floor" if time.get("hidden_by_noise_floor") else ""
        return f"{time['slowdown']:.2f}x (limit {time['threshold']:.2f}x{hidden})"
    if "calibration_seconds" in time:
        return f"calibration {time['calibration_seconds'] * 1e3:.3f} ms"
    return "-"


def _instructions_cell(result: dict) -> str:
    verdict = result.get("instructions") or {}
    if "recorded" in verdict:
        return f"recorded {verdict['recorded']['instructions']:,}"
    if not verdict:
        return "-"
    row = verdict["counters"]["instructions"]
    if verdict["mismatch"] or row["baseline"] is None or row["current"] is None:
        return summarize_counters(verdict)
    return f"{row['current'] / row['baseline']:.4f}x (limit +-{row['tolerance']:.2%})"


def table(results: list[dict], instructions: bool = False) -> list[str]:
    """One line per gated test: name, counters, calibrated slowdown or (`instructions`) instruction count
    ratio, outcome."""
    time_header = f"time ({TIME_STAT}, calibrated)"
    header, cell = ("instructions", _instructions_cell) if instructions else (time_header, _time_cell)
    rows = [("benchmark", "counters", header, "result")]
    rows += [(r["nodeid"], _counters_cell(r), cell(r), r["outcome"].upper())
             for r in sorted(results, key=lambda r: r["nodeid"])]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def write_json(path: Path, *, mode: str, update: bool, results: list[dict], stale: dict) -> None:
    """The JSON export (``--pcct-gate-report``): settings, every result and the stale baselines."""
    atomic_write_json(path, {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "created": now(), "mode": mode,
        "update": update, "machine": machine_facts(), "time_stat": TIME_STAT,
        "results": sorted(results, key=lambda r: r["nodeid"]), "stale_baselines": stale,
    })
