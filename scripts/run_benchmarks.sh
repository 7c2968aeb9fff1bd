#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md in turn, each computing only the cells it has
# not finished, so that a machine that is lent for a few hours at a time gets through
# them over several sessions: stop it at any point and run it again.
#
#   setsid nohup bash scripts/run_benchmarks.sh > benchmarks/cache/run.log 2>&1 &
#   bash scripts/run_benchmarks.sh speech cost      # only these steps
#   bash scripts/run_benchmarks.sh speech -- --methods idc_i --ipcs 10   # flags for them
#   REV=abc123 bash scripts/run_benchmarks.sh shipped   # run that commit's code, not HEAD's
#
# It runs from a snapshot of HEAD in $SNAPSHOT (default /tmp/tfcondense-bench): while a
# tf.function traces, autograph re-reads its source files, so edits in this checkout
# must not reach a running benchmark. Results, artifacts, caches and the prebuilt TFDS
# artifacts are this checkout's (linked into the snapshot). Nothing else should run
# beside it while it times things; on a machine with sched autogroup (Linux), `nice`
# does not reach across sessions, so it raises its own session's share instead.
set -euo pipefail
# Braces: bash reads the whole block before running it, so editing this file while a
# run is under way cannot change (or break) that run.
{
cd "$(dirname "$0")/.."
root=$PWD
snap=${SNAPSHOT:-/tmp/tfcondense-bench}
steps=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  steps+=("$1"); shift
done
[ ${#steps[@]} -gt 0 ] || steps=(baselines methods prebuilt shipped protocol roundtrip speech cost
                                  init bench continual fast_idc soft_labels)

mkdir -p benchmarks/cache
exec 9> benchmarks/cache/.run_benchmarks.lock
flock -n 9 || { echo "run_benchmarks.sh is already running (benchmarks/cache/.run_benchmarks.lock)" >&2; exit 1; }
git worktree remove --force "$snap" >/dev/null 2>&1 || rm -rf "$snap"
git worktree prune
git worktree add -f --detach "$snap" "${REV:-HEAD}" >/dev/null
link() { rm -rf "$snap/$1"; mkdir -p "$root/$1"; ln -s "$root/$1" "$snap/$1"; }
for d in benchmarks/results benchmarks/artifacts benchmarks/cache \
         datasets_builders/condensed_fashion_mnist/artifacts; do link "$d"; done
ln -sfn "$root/.venv" "$snap/.venv"
echo -10 > /proc/self/autogroup 2>/dev/null || true
cd "$snap"
export TFCONDENSE_PROGRESS=0 PYTHONUNBUFFERED=1

run() { echo "== $(date -u +%FT%TZ) python -m $* ${extra[*]}"; .venv/bin/python -m "$@" "${extra[@]}"; }
bench_out="$root/benchmarks/results/bench_fashion_mnist"
bench=(--source fashion_mnist --budget cpu --out "$bench_out"
       --work_dir "$root/benchmarks/cache/bench_fashion_mnist"
       --sets_from "$root/benchmarks/artifacts/methods_fashion/{method}_ipc{ipc}_20min")
for step in "${steps[@]}"; do
  case "$step" in
    # Selection baselines under both named recipes (the reference's and the light one).
    baselines) run benchmarks.baselines
               run benchmarks.baselines --protocol light ;;
    # KIP's cells scored by its own kernel as well (seconds; takes no flags).
    methods)   run benchmarks.methods_fashion --minutes 20
               echo "== python -m benchmarks.kip_kernel"; .venv/bin/python -m benchmarks.kip_kernel ;;
    prebuilt)  run benchmarks.prebuilt ;;
    # The shipped sets re-evaluated in place (after `baselines`, whose rows they reuse).
    shipped)   run benchmarks.prebuilt --evaluate cpu,light ;;
    # IPC 50 under the paper / cpu / light protocols (the paper cells take hours).
    protocol)  run benchmarks.eval_protocol ;;
    roundtrip) run benchmarks.tfds_roundtrip ;;
    speech)    run benchmarks.speech ;;
    # The bench's `cost` suite at budget cpu measures exactly benchmarks.cost's cells:
    # measure them once there and report them as the benchmark's JSON.
    cost)      run apps.bench --suite cost "${bench[@]}" --noreport
               run benchmarks.cost --from_bench "$bench_out" ;;
    # The bench's `init` suite at budget cpu is exactly benchmarks.init_study: run it once
    # there and report its cells as the study's JSON and plot.
    init)      run apps.bench --suite init "${bench[@]}" --noreport
               run benchmarks.init_study --from_bench "$bench_out" ;;
    # Every suite; transfer (about 6.5 of the remaining hours, ResNet-152 half of it)
    # last, so that the sessions before it finish every other suite's findings.
    bench)     run apps.bench --suite augmentation,compression,nas,init,cost,transfer \
                   "${bench[@]}" --screenshot ;;
    continual) run benchmarks.continual ;;
    # Issue 39's arms (pool, curves, best, baselines; many hours, resumable) and issue
    # 41's soft labels (about 8 hours, resumable).
    fast_idc)  run benchmarks.fast_idc ;;
    soft_labels) run benchmarks.soft_labels ;;
    *) echo "unknown step $step (baselines methods prebuilt shipped protocol roundtrip speech" \
            "cost init bench continual fast_idc soft_labels)" >&2
       exit 2 ;;
  esac
done
echo "== $(date -u +%FT%TZ) done: ${steps[*]}"
exit
}
