#!/usr/bin/env bash
# results/faults.md: the fault-scenario suite (scenarios/faults/*.toml) and 300 swarm seeds.
# Called by results/regenerate.sh with the ledgersim command line as "$@".
# `ledgersim faults` exits 1 when a scenario or a seed fails; the file is written either way and
# names the failures, so a failure is reported here without stopping the other steps.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
"$@" faults --swarm-seeds 300 --jobs "${JOBS:-2}" --out results/faults.md
status=$?
if ((status == 1)); then
    echo "faults: failures recorded in results/faults.md (see its Outcome line)" >&2
elif ((status != 0)); then
    exit "$status"
fi
