#!/usr/bin/env bash
# The five-protocol comparison (PBFT, HotStuff, Raft, proof-of-work, proof-of-stake) on one
# consortium shard: scenarios/all-protocols.toml -> results/compare-all/. Called by
# results/regenerate.sh with the ledgersim command line as "$@". About 5 s.
set -euo pipefail
note() { echo "$*" | tee -a "${REGENERATE_LOG:-/dev/null}"; }
cmd=("$@")
args=(compare scenarios/all-protocols.toml --consensus pbft,hotstuff,raft,pow,pos --out results/compare-all)
note "\$ cargo run --release -- ${args[*]}"
"${cmd[@]}" "${args[@]}"
# keep the nested runs' data, not their plots (ledgersim plot DIR redraws them)
find results/compare-all -mindepth 2 -type f \( -name '*.png' -o -name '*.svg' -o -name 'report.html' \) -delete
