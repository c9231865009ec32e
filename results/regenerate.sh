#!/usr/bin/env bash
# Regenerate every reference result under results/ with the ledgersim binary.
#
#   results/regenerate.sh            # from the repository root (or anywhere: it cd's there)
#   JOBS=2 results/regenerate.sh     # parallel sweep points (default: 2)
#   ONLY="compare imaging" results/regenerate.sh   # just some steps (names below)
#
# Steps (each writes one directory under results/, replaced atomically by ledgersim):
#   compare      protocol comparison of the default scenario        -> results/compare/
#   load         latency vs offered load, per protocol (hockey stick) -> results/load/
#   imaging      imaging on-chain vs anchored                        -> results/imaging/
#   shards       throughput vs shards             (sweeps/shards.toml, if present)      -> results/shards/
#   cross-shard  abort rate vs cross-shard share  (sweeps/cross-shard.toml, if present) -> results/cross-shard/
#   shards-64    the 64-shard run or sweep        (if present)                          -> results/shards-64/
#   bitcoin, ethereum, simblock-6000   public-chain calibration runs (if present)       -> results/<name>/
#   faults       every scenarios/faults/*.toml                                          -> results/faults/<name>/
# Steps whose input file (or built-in scenario, or protocol) does not exist are skipped
# with a message. The commands run, the machine load before and after, and the wall time
# of each step are written to results/regenerate.log. Budget: about 15 minutes on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
RESULTS=results
JOBS="${JOBS:-2}"
ONLY="${ONLY:-}"
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
log() { echo "$*" | tee -a "$LOG"; }

log "# results/regenerate.sh — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
log "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
log "# $(rustc --version 2>/dev/null || echo 'rustc unknown'), $(nproc 2>/dev/null || echo '?') cores, JOBS=$JOBS"
log "# machine load before: $(uptime)"

wanted() { [[ -z "$ONLY" || " $ONLY " == *" $1 "* ]]; }

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
    local dir=$1
    find "$dir" -mindepth 2 -type f \( -name '*.png' -o -name '*.svg' -o -name 'report.html' \) -delete
}

# The first existing file among the arguments, or nothing.
first_file() {
    local f
    for f in "$@"; do
        if [[ -f "$f" ]]; then
            echo "$f"
            return
        fi
    done
}

protocols=$("${LEDGERSIM[@]}" scenarios)
has_protocol() { grep -qE "^  $1 " <<<"$protocols"; }
has_builtin() { grep -qE "^$1 " <<<"$protocols"; }

# --- 1. protocol comparison of the default scenario -----------------------------------------
if wanted compare; then
    list=pbft,hotstuff,raft
    for p in pow pos; do
        if has_protocol "$p"; then
            list="$list,$p"
        else
            log "# compare: protocol $p is not registered in this build; comparing without it"
        fi
    done
    run compare default --consensus "$list" --seed 1 --out "$RESULTS/compare"
    prune_nested "$RESULTS/compare"
fi

# --- 2. load sweep (hockey stick) and 3. imaging on-chain vs anchored -----------------------
for name in load imaging; do
    if wanted "$name"; then
        run sweep "sweeps/$name.toml" --jobs "$JOBS" --out "$RESULTS/$name"
        prune_nested "$RESULTS/$name"
    fi
done

# --- 4. sweeps and runs contributed by the sharding, chain and reliability work ------------
for name in shards cross-shard shards-64 bitcoin ethereum simblock-6000; do
    wanted "$name" || continue
    sweep=$(first_file "sweeps/$name.toml" "scenarios/sweeps/$name.toml")
    scenario=$(first_file "scenarios/$name.toml")
    if [[ -n "$sweep" ]]; then
        run sweep "$sweep" --jobs "$JOBS" --out "$RESULTS/$name"
        prune_nested "$RESULTS/$name"
    elif [[ -n "$scenario" ]]; then
        run run "$scenario" --out "$RESULTS/$name"
    elif has_builtin "$name"; then
        run run "$name" --out "$RESULTS/$name"
    else
        log "# $name: no sweeps/$name.toml, scenarios/sweeps/$name.toml, scenarios/$name.toml or built-in scenario; skipped"
    fi
done

# --- 5. fault scenarios -------------------------------------------------------------------
if wanted faults; then
    shopt -s nullglob
    faults=(scenarios/faults/*.toml)
    shopt -u nullglob
    if ((${#faults[@]} == 0)); then
        log "# faults: no scenarios/faults/*.toml; skipped"
    fi
    for f in "${faults[@]}"; do
        run run "$f" --out "$RESULTS/faults/$(basename "$f" .toml)"
    done
fi

log "# machine load after: $(uptime)"
log "# done $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
