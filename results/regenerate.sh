#!/usr/bin/env bash
# Regenerate every reference result under results/ with the ledgersim binary.
#
#   results/regenerate.sh                         # from anywhere: it cd's to the repository root
#   JOBS=2 results/regenerate.sh                  # parallel sweep points (default 2; results do not depend on it)
#   ONLY="compare load imaging" results/regenerate.sh   # just some steps (names below)
#   SKIP="simblock-6000" results/regenerate.sh    # all but some steps
#
# Steps, in order (each output directory is replaced atomically by ledgersim):
#   compare          the default scenario under PBFT, HotStuff and Raft -> results/compare/
#   <sweep>          every sweeps/*.toml (and scenarios/sweeps/*.toml) -> results/sweeps/<sweep>/
#                    (load, imaging, protocols-one-region, shards, cross-shard, ... whatever exists)
#   <run>            shards-64, pos, simblock-6000: scenarios/<run>.toml, or the built-in
#                    scenario of that name                             -> results/<run>/
#   faults           every scenarios/faults/*.toml                    -> results/faults/<name>/
#   hooks            every executable results/regenerate.d/*.sh, for results that need more than
#                    one ledgersim command (each is passed the ledgersim command line as "$@")
# A step whose input does not exist in this checkout is skipped with a message. The commands run,
# the machine load before and after, and each step's wall time go to results/regenerate.log.
# Budget: about 15 minutes on 2 cores (see the log for the last run's timings).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RESULTS=results
JOBS="${JOBS:-2}"
ONLY="${ONLY:-}"
SKIP="${SKIP:-}"
LOG="$RESULTS/regenerate.log"

echo "building ledgersim (release)..."
cargo build --release --quiet -p ledgersim
LEDGERSIM=(cargo run --release --quiet -p ledgersim --)

# Before the log is truncated (it is tracked too).
dirty=""
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=" (with uncommitted changes)"
fi
: >"$LOG"
export REGENERATE_LOG="$LOG" # hooks append the commands they run
log() { echo "$*" | tee -a "$LOG"; }

log "# results/regenerate.sh — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
log "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
log "# $(rustc --version 2>/dev/null || echo 'rustc unknown'), $(nproc 2>/dev/null || echo '?') cores, JOBS=$JOBS"
log "# machine load before: $(uptime)"
overall_start=$(date +%s)

wanted() {
    [[ " $SKIP " == *" $1 "* ]] && return 1
    [[ -z "$ONLY" || " $ONLY " == *" $1 "* ]]
}

# Run one ledgersim command, logging it (as it would be typed) and its wall time.
run() {
    local start end
    start=$(date +%s)
    log "\$ cargo run --release -- $*"
    "${LEDGERSIM[@]}" "$@"
    end=$(date +%s)
    log "#   took $((end - start)) s"
}

# Nested results directories of a sweep or comparison keep their data (summary.json, CSVs,
# scenario.toml, point.json) but not their plots and pages, to keep the repository small;
# `cargo run --release -- plot DIR` redraws them.
prune_nested() {
    find "$1" -mindepth 2 -type f \( -name '*.png' -o -name '*.svg' -o -name 'report.html' \) -delete
}

listing=$("${LEDGERSIM[@]}" scenarios)
has_builtin() { grep -qE "^$1 " <<<"$listing"; }

# --- protocol comparison of the default scenario ---------------------------------------------
# pow and pos run one chain over all nodes (shards = 1) with their own block intervals, so they
# are not part of this comparison of the sharded default; results/validation.md (hook chain.sh)
# and the `pos` run cover them.
if wanted compare; then
    run compare default --consensus pbft,hotstuff,raft --seed 1 --out "$RESULTS/compare"
    prune_nested "$RESULTS/compare"
fi

# --- every sweep file ----------------------------------------------------------------------
shopt -s nullglob
sweep_files=(sweeps/*.toml scenarios/sweeps/*.toml)
fault_files=(scenarios/faults/*.toml)
hooks=("$RESULTS"/regenerate.d/*.sh)
shopt -u nullglob
for f in "${sweep_files[@]}"; do
    name=$(basename "$f" .toml)
    wanted "$name" || continue
    run sweep "$f" --jobs "$JOBS" --out "$RESULTS/sweeps/$name"
    prune_nested "$RESULTS/sweeps/$name"
done
for name in load imaging shards cross-shard; do
    if wanted "$name" && [[ ! -f "sweeps/$name.toml" && ! -f "scenarios/sweeps/$name.toml" ]]; then
        log "# $name: no sweeps/$name.toml in this checkout; skipped"
    fi
done

# --- single runs contributed by the sharding and chain work (the bitcoin and ethereum
# validation runs are in the hook regenerate.d/chain.sh) -------------------------------------
for name in shards-64 pos simblock-6000; do
    wanted "$name" || continue
    if [[ -f "scenarios/$name.toml" ]]; then
        run run "scenarios/$name.toml" --out "$RESULTS/$name"
    elif has_builtin "$name"; then
        run run "$name" --out "$RESULTS/$name"
    else
        log "# $name: no scenarios/$name.toml and no built-in scenario $name; skipped"
    fi
done

# --- fault scenarios --------------------------------------------------------------------------
if wanted faults; then
    if ((${#fault_files[@]} == 0)); then
        log "# faults: no scenarios/faults/*.toml; skipped"
    fi
    for f in "${fault_files[@]}"; do
        run run "$f" --out "$RESULTS/faults/$(basename "$f" .toml)"
    done
fi

# --- hooks: results that need more than one command -------------------------------------------
if wanted hooks; then
    for h in "${hooks[@]}"; do
        [[ -x "$h" ]] || continue
        start=$(date +%s)
        log "\$ $h cargo run --release --"
        "$h" "${LEDGERSIM[@]}"
        log "#   took $(($(date +%s) - start)) s"
    done
fi

log "# total $(($(date +%s) - overall_start)) s"
log "# machine load after: $(uptime)"
log "# done $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
