#!/usr/bin/env bash
# The gold-standard benchmark (DESIGN section 6; docs/benchmarks.md): the gold workload through the gold
# engine, then through COMP_ENGINE, each RUNS times; logs, JSON summaries, neighbours and telemetry go to
# OUT_DIR next to summary.md, whose table compares every engine with gold.
#
#   ./benchmarks/run_residual_gold_standard.sh
#   PRESET=residual_parity RUNS=3 ./benchmarks/run_residual_gold_standard.sh
#   N=512 QUERIES=32 M=16 K=5 COMP_ENGINE=brute OUT_DIR=/tmp/gs ./benchmarks/run_residual_gold_standard.sh
#
# Environment: N (32768), DIMS (3), M (512), K (50), QUERIES (1024), RUNS (1), COMP_ENGINE (rust; 'none'
# skips it), PRESET (none; else passed as --preset, e.g. residual_parity), OUT_DIR
# (benchmarks/out/<UTC timestamp>), PYTHON (python).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
N=${N:-32768} DIMS=${DIMS:-3} M=${M:-512} K=${K:-50} QUERIES=${QUERIES:-1024} RUNS=${RUNS:-1}
COMP_ENGINE=${COMP_ENGINE:-rust} PRESET=${PRESET:-} PYTHON=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-$here/out/$(date -u +%Y%m%dT%H%M%SZ)}
if [ "$COMP_ENGINE" = gold ]; then
  echo "run_residual_gold_standard.sh: COMP_ENGINE must differ from gold (use 'none' to skip it)" >&2
  exit 2
fi
if [ "$COMP_ENGINE" != none ] && ! "$PYTHON" -c "import sys, covertreex as ct
sys.exit(sys.argv[1] not in ct.engine_names())" "$COMP_ENGINE"; then  # before gold's long run, not after
  echo "run_residual_gold_standard.sh: unknown COMP_ENGINE '$COMP_ENGINE' (known: none and" \
       "$("$PYTHON" -c "import covertreex as ct; print(', '.join(ct.engine_names()))"))" >&2
  exit 2
fi
mkdir -p "$OUT_DIR"

workload=(--metric residual --n "$N" --dims "$DIMS" --m "$M" --k "$K" --queries "$QUERIES"
          --repeat "$RUNS" --recall)
if [ -n "$PRESET" ]; then workload+=(--preset "$PRESET"); fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
  echo "load average at start: $(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  echo "commit: $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "script: N=$N DIMS=$DIMS M=$M K=$K QUERIES=$QUERIES RUNS=$RUNS COMP_ENGINE=$COMP_ENGINE" \
       "PRESET=${PRESET:-none} $0"
} > "$OUT_DIR/machine.txt"
: > "$OUT_DIR/commands.txt"

# run ENGINE [extra pcct flags]: one `pcct query` with its log, JSON summary, neighbours and telemetry.
run() {
  local engine=$1
  shift
  local cmd=("$PYTHON" -m covertreex query "${workload[@]}" --engine "$engine"
             --out "$OUT_DIR/$engine.neighbors.npz" --telemetry "$OUT_DIR/$engine.telemetry.jsonl" "$@"
             --json)
  echo "${cmd[*]}" >> "$OUT_DIR/commands.txt"
  echo "== $engine (log: $OUT_DIR/$engine.log)"
  rm -f "$OUT_DIR/$engine.telemetry.jsonl"
  if ! "${cmd[@]}" > "$OUT_DIR/$engine.json" 2> "$OUT_DIR/$engine.log"; then
    cat "$OUT_DIR/$engine.log" >&2
    exit 1
  fi
  cat "$OUT_DIR/$engine.log"
}

run gold --save-tree "$OUT_DIR/gold.tree.npz"
engines=(gold)
if [ "$COMP_ENGINE" != none ]; then
  # A preset with shared_tree on (residual_parity) has every engine query the one tree gold built.
  shared=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["shared_tree"])' \
           "$OUT_DIR/gold.json")
  if [ "$shared" = True ]; then
    run "$COMP_ENGINE" --tree "$OUT_DIR/gold.tree.npz"
  else
    run "$COMP_ENGINE"
  fi
  engines+=("$COMP_ENGINE")
fi

echo "load average at end: $(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)" \
  >> "$OUT_DIR/machine.txt"
telemetry_files=()
for engine in "${engines[@]}"; do telemetry_files+=("$OUT_DIR/$engine.telemetry.jsonl"); done
"$PYTHON" -m covertreex telemetry validate "${telemetry_files[@]}"
{
  echo "# Gold-standard benchmark"
  echo
  sed 's/^/    /' "$OUT_DIR/machine.txt"
  echo
  sed 's/^/    /' "$OUT_DIR/commands.txt"
  echo
  "$PYTHON" "$here/gold_standard_table.py" "$OUT_DIR" "${engines[@]}"
} > "$OUT_DIR/summary.md"
echo
cat "$OUT_DIR/summary.md"
