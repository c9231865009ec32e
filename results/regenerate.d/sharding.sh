#!/usr/bin/env bash
# Sharding results that need more than a plain run (see results/sharding.md). Called by
# results/regenerate.sh with the ledgersim command line as "$@".
set -euo pipefail
note() { echo "$*" | tee -a "${REGENERATE_LOG:-/dev/null}"; }
note "$ cargo run --release -- run scenarios/faults/pbft-crash-during-cross-shard.toml --set client_timeout_ms=0 --out results/faults/pbft-crash-during-cross-shard-no-resend"
"$@" run scenarios/faults/pbft-crash-during-cross-shard.toml --set client_timeout_ms=0 \
    --out results/faults/pbft-crash-during-cross-shard-no-resend
# Peak memory of the 1,024-node run (the binary itself, not cargo).
if [[ -x /usr/bin/time && -x target/release/ledgersim ]]; then
    note "$ /usr/bin/time -v target/release/ledgersim run shards-64 --out results/shards-64"
    /usr/bin/time -v -o results/shards-64.time-v.tmp target/release/ledgersim run shards-64 --out results/shards-64
    mv results/shards-64.time-v.tmp results/shards-64/time-v.txt
else
    note "# /usr/bin/time not found: results/shards-64/time-v.txt not refreshed"
fi
