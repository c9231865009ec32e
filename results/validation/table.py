#!/usr/bin/env python3
"""Print the simulated figures of results/validation/*/summary.json as markdown rows
(used to fill results/validation.md; the numbers come from the ledgersim runs)."""
import glob, json, os

here = os.path.dirname(os.path.abspath(__file__))
print("| run | nodes | blocks mined | stale blocks | stale rate | receipt delay p50 / mean / p90 (s) | time to 50 % / 90 % of nodes, median over blocks (s) | mean interval (s) |")
print("|---|---|---|---|---|---|---|---|")
for d in sorted(glob.glob(os.path.join(here, "*", "summary.json"))):
    s = json.load(open(d))
    c = s["chain"]
    p = c["propagation"]
    r = p["receipt_delay_ms"]
    print(
        f"| {os.path.basename(os.path.dirname(d))} | {s['nodes']} | {c['blocks_mined']} | {c['stale_blocks']} "
        f"| {100 * c['stale_rate']:.2f} % | {r['p50'] / 1e3:.2f} / {r['mean'] / 1e3:.2f} / {r['p90'] / 1e3:.2f} "
        f"| {p['to_50pct_nodes']['median_ms'] / 1e3:.2f} / {p['to_90pct_nodes']['median_ms'] / 1e3:.2f} "
        f"| {c['mean_block_interval_s']:.1f} |"
    )
