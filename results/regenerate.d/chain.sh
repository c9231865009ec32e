#!/usr/bin/env bash
# Proof-of-work validation runs (see results/validation.md). Called by results/regenerate.sh with
# the ledgersim command line as "$@". About 5 minutes on a loaded 2-core machine.
set -euo pipefail
note() { echo "$*" | tee -a "${REGENERATE_LOG:-/dev/null}"; }
out=results/validation
uptime >"$out/uptime-start.txt"
go() {
    note "\$ cargo run --release -- $*"
    "${cmd[@]}" "$@"
}
cmd=("$@")
for seed in 1 2 3; do
    go run bitcoin --seed "$seed" --no-plots --quiet --out "$out/bitcoin-seed$seed"
done
for seed in 1 2; do
    go run ethereum --seed "$seed" --no-plots --quiet --out "$out/ethereum-seed$seed"
done
for block in 535000 1000000 2000000; do
    go run bitcoin --no-plots --quiet --set nodes_per_shard=2000 --set "protocol.pow.block_size_bytes=$block" \
        --out "$out/bitcoin-2000nodes-block$block"
done
go run bitcoin --no-plots --quiet --set protocol.pow.relay=compact --out "$out/bitcoin-compact"
uptime >"$out/uptime-end.txt"
if command -v python3 >/dev/null; then
    note "$ python3 results/validation/table.py   # the table of results/validation.md"
    python3 "$out/table.py"
fi
