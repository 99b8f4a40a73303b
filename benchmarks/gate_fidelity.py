"""How often the gate is wrong: false alarms on unchanged code, and misses of an injected uniform slowdown.

Runs the gated benchmark suite N times unchanged and N times with every CoverTree fit and query made
`factor` times slower (benchmarks/slowdown_plugin.py), each run a fresh ``python -m pytest`` process
judging against the committed baselines, and prints per benchmark and leg how the verdicts fell:

    python benchmarks/gate_fidelity.py --runs 20 --factor 1.5                # time leg
    python benchmarks/gate_fidelity.py --runs 2 --factor 1.5 --leg instructions

The time leg runs the README's CI time-gate command (one BLAS thread, serial, --benchmark-compare) with the
given threshold; the instruction leg runs ``--pcct-gate=instructions`` (under callgrind: about 2.5 minutes
a run here, and deterministic, so a few runs show it). A run's verdicts come from its
``--pcct-gate-report`` JSON. Wall time, ``nproc``, CPU model and date are printed with the table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from pytest_pcct.gate.baselines import machine_facts

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("passed", "inconclusive", "failed")


def gate_command(leg: str, threshold: float, report: Path) -> list[str]:
    base = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:xdist", "-p", "slowdown_plugin", "-q",
            f"--pcct-gate-report={report}"]
    if leg == "time":
        return [*base, "--benchmark-compare", f"--pcct-time-threshold={threshold}"]
    return [*base, "--pcct-gate=instructions"]


def one_run(leg: str, threshold: float, factor: float | None) -> dict[str, str]:
    """Outcome per benchmark of one gate run (the calibration test left out)."""
    path = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("PCCT_INJECT_SLOWDOWN", None)
    if factor is not None:
        env["PCCT_INJECT_SLOWDOWN"] = str(factor)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "gate.json")
        done = subprocess.run(gate_command(leg, threshold, report), cwd=ROOT, env=env, capture_output=True,
                              text=True)
        if not report.exists():
            sys.exit(f"gate run wrote no report (exit {done.returncode}):\n"
                     f"{done.stdout[-3000:]}{done.stderr}")
        results = json.loads(report.read_text())["results"]
    return {r["nodeid"].split("::")[-1]: r["outcome"] for r in results if r["kind"] == "benchmark"}


def machine() -> str:
    facts = machine_facts()
    when = datetime.now(timezone.utc)
    return f"nproc {facts['cpu_count']}, CPU {facts['cpu_model']}, {when:%Y-%m-%d %H:%M} UTC"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per condition (unchanged, injected)")
    parser.add_argument("--factor", type=float, default=1.5, help="injected slowdown factor")
    parser.add_argument("--threshold", type=float, default=1.5, help="time-leg threshold (time leg only)")
    parser.add_argument("--leg", choices=("time", "instructions"), default="time")
    args = parser.parse_args()
    tallies = {cond: collections.defaultdict(collections.Counter) for cond in ("unchanged", "injected")}
    start = time.monotonic()
    for run in range(args.runs):
        for cond, factor in (("unchanged", None), ("injected", args.factor)):
            for name, outcome in one_run(args.leg, args.threshold, factor).items():
                tallies[cond][name][outcome] += 1
        print(f"run {run + 1}/{args.runs} done, {time.monotonic() - start:.0f} s", file=sys.stderr)
    print(f"command: python benchmarks/gate_fidelity.py --runs {args.runs} --factor {args.factor} "
          f"--threshold {args.threshold} --leg {args.leg}")
    print(machine() + f"; {time.monotonic() - start:.0f} s in all")
    print(f"{'benchmark':34} {'unchanged p/i/f':>16} {'injected p/i/f':>16}")
    for name in sorted(tallies["unchanged"]):
        cells = ["/".join(str(tallies[c][name][o]) for o in OUTCOMES) for c in ("unchanged", "injected")]
        print(f"{name:34} {cells[0]:>16} {cells[1]:>16}")
    total = {c: sum((tallies[c][n] for n in tallies[c]), collections.Counter()) for c in tallies}
    verdicts = sum(total["unchanged"].values())
    print(f"false alarms: {total['unchanged']['failed']} of {verdicts} unchanged verdicts; "
          f"injected {args.factor}x caught (failed): {total['injected']['failed']} of "
          f"{sum(total['injected'].values())}, inconclusive {total['injected']['inconclusive']}, "
          f"passed {total['injected']['passed']}")


if __name__ == "__main__":
    main()
