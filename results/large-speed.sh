#!/usr/bin/env bash
# Speed of the reference `large` run: simulated seconds per wall second, as summary.json
# reports it (`sim_s_per_wall_s`, setup included), over several runs.
#
#   results/large-speed.sh                  # 5 runs of this checkout's release binary
#   RUNS=7 results/large-speed.sh           # more runs
#   results/large-speed.sh OLD_BIN NEW_BIN  # compare binaries: runs alternate (old, new, old, …)
#
# Wall times on a shared machine move by several percent from minute to minute, so compare
# binaries alternately in the same window rather than against a figure from another day.
# Prints every run (sim s/wall s, wall s, peak RSS) and, per binary, the median, min and max.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-5}"
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "large-speed.sh: RUNS must be a positive integer, got '$RUNS'" >&2
    exit 2
fi
if [[ $# -eq 0 ]]; then
    cargo build --release --quiet -p ledgersim
    set -- target/release/ledgersim
fi
for bin in "$@"; do
    if [[ ! -x "$bin" ]]; then
        echo "large-speed.sh: $bin is not an executable ledgersim binary" >&2
        exit 2
    fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    for bin in "$@"; do
        out="$work/run"
        rm -rf "$out"
        # GNU time's %M is the peak RSS in KB; fall back to no RSS if it is missing.
        if [[ -x /usr/bin/time ]]; then
            /usr/bin/time -f "%M" -o "$work/rss" "$bin" run large --no-plots -q --out "$out" >/dev/null
            rss_mb=$(( $(cat "$work/rss") / 1024 ))
        else
            "$bin" run large --no-plots -q --out "$out" >/dev/null
            rss_mb="?"
        fi
        python3 - "$out/summary.json" "$bin" "$rss_mb" >>"$work/runs" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]} {d['sim_s_per_wall_s']:.2f} {d['wall_time_s']:.3f} {sys.argv[3]}")
EOF
        tail -1 "$work/runs" | awk '{printf "%-40s %6s sim s/wall s  %6s s wall  %5s MB\n", $1, $2, $3, $4}'
    done
done
python3 - "$work/runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    b, s, _, _ = line.split()
    runs.setdefault(b, []).append(float(s))
for b, v in runs.items():
    print(f"{b}: median {statistics.median(v):.2f} sim s/wall s (min {min(v):.2f}, max {max(v):.2f}, {len(v)} runs)")
EOF
