#!/usr/bin/env bash
# Wall time of one `xpnn tune` worker doing 2N trials against two workers doing N each on one
# PostgreSQL study (the digits, the default space, random sampler: the same 2N candidates
# either way, as trial n is drawn with seed + n), on CPUS (default: two cores, 0 and 1).
#   bash benchmarks/tune_workers.sh [N] [EPOCHS] [ROUNDS]
# Starts a throw-away PostgreSQL cluster (.ci/postgres) and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-12}; E=${2:-10}; ROUNDS=${3:-2}; CPUS=${CPUS:-0,1}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OPENBLAS_NUM_THREADS=1
work=$(mktemp -d); pg="$work/pg"
chmod 755 "$work"  # the cluster runs as the postgres user, who must reach $pg
trap 'bash .ci/postgres stop "$pg"; rm -rf "$work"' EXIT
XPNN_STORAGE=$(bash .ci/postgres start "$pg" 2>/dev/null); export XPNN_STORAGE
tune() { taskset -c "$CPUS" python -m xpnn.cli tune --data digits --epochs "$E" --sampler random "$@"; }
seconds() { python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }
echo "cpus $CPUS (of $(nproc)), N=$N, epochs $E; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for mode in one two; do  # alternating which goes first would need more rounds; both see the same machine
    study="$mode-$round-$RANDOM"; t0=$(date +%s.%N)
    if [ "$mode" = one ]; then
      tune --trials $((2 * N)) --study "$study" --out "$work/$study" > "$work/$study.log" 2>&1
    else
      tune --trials "$N" --study "$study" --out "$work/$study-a" > "$work/$study-a.log" 2>&1 &
      tune --trials "$N" --study "$study" --out "$work/$study-b" > "$work/$study-b.log" 2>&1 &
      wait
    fi
    t1=$(date +%s.%N)
    best=$(grep -h '^best of' "$work/$study"*.log | tail -n 1 | cut -c1-60)
    echo "round $round: $mode worker(s), $((2 * N)) trials: $(seconds "$t0" "$t1") s wall ($best...)"
  done
done
