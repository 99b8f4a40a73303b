"""Side-by-side table of a run_residual_gold_standard.sh output directory (printed as Markdown).

Reads, per engine, the ``pcct query --json`` summary (ENGINE.json), the saved neighbours
(ENGINE.neighbors.npz) and the telemetry records (ENGINE.telemetry.jsonl), and compares every engine with
the first one (gold): identical neighbour indices and bitwise-identical distances, equal work counters
and an identical tree (by digest).

    python benchmarks/gold_standard_table.py OUT_DIR gold rust
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from covertreex.telemetry import COMPARED_SECTIONS, read_jsonl

COLUMNS = ("engine", "build s", "build+V s", "query s", "q/s", "evaluations/query", "recall",
           "exact match vs gold", "counters = gold", "tree = gold")
_BUILD_NOTES = {"loaded": "gold's tree", "checked": "no tree", None: "no tree"}


def _timing(stat: dict, digits: int = 3) -> str:
    """best, with mean ± std when there were several runs."""
    text = f"{stat['best']:.{digits}f}"
    if len(stat["runs"]) > 1:
        text += f" ({stat['mean']:.{digits}f} ± {stat['std']:.{digits}f})"
    return text


def _exact_match(neighbours: dict, reference: dict) -> str:
    """Rows whose indices and distance bits equal the reference's."""
    same = np.all(neighbours["indices"] == reference["indices"], axis=1) & np.all(
        neighbours["distances"].view(np.int64) == reference["distances"].view(np.int64), axis=1)
    verdict = "yes" if same.all() else "NO"
    return f"{verdict} ({int(same.sum())}/{same.shape[0]} rows)"


def _counters(records: list[dict]) -> list[dict]:
    return [{name: record[name] for name in COMPARED_SECTIONS} for record in records]


def table(out_dir: Path, engines: list[str]) -> str:
    rows, reference = [], None
    for engine in engines:
        summary = json.loads((out_dir / f"{engine}.json").read_text(encoding="utf-8"))
        with np.load(out_dir / f"{engine}.neighbors.npz") as npz:
            neighbours = {"indices": npz["indices"], "distances": npz["distances"]}
        counters = _counters(read_jsonl(out_dir / f"{engine}.telemetry.jsonl"))
        if reference is None:
            reference = (neighbours, counters, summary["tree_digest"])
            match = same_work = same_tree = "(reference)"
        else:
            match = _exact_match(neighbours, reference[0])
            same_work = "yes" if counters == reference[1] else "no"
            same_tree = _BUILD_NOTES.get(summary["tree_source"]) or (
                "yes" if summary["tree_digest"] == reference[2] else "no")
        t = summary["timings"]
        build = _BUILD_NOTES.get(summary["tree_source"])
        recall = "-" if summary["recall"] is None else f"{summary['recall']:.6f}"
        rows.append((engine, build or _timing(t["build_seconds"]),
                     build or _timing(t["build_with_v_seconds"]),
                     _timing(t["query_seconds"]), _timing(t["queries_per_second"], 1),
                     f"{summary['evaluations_per_query']:.1f}", recall, match, same_work, same_tree))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    missing = [str(out_dir / f"{engine}{suffix}") for engine in argv[1:]
               for suffix in (".json", ".neighbors.npz", ".telemetry.jsonl")
               if not (out_dir / f"{engine}{suffix}").is_file()]
    if missing:
        print(f"gold_standard_table.py: missing {', '.join(missing)} (run run_residual_gold_standard.sh "
              "with OUT_DIR first)", file=sys.stderr)
        return 2
    print(table(out_dir, argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
