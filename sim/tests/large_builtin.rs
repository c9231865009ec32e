//! The `large` built-in is the reference run of issue 9 (results/benchmarks.md):
//! its shape is part of what the recorded figures mean, so it is pinned here.

/// 16 shards × 7 PBFT replicas in 4 regions, 20,000 tx/s offered, 60 s, and a
/// short run of the same shape commits blocks on every shard without violations and
/// holds only its in-flight transactions in memory.
#[test]
fn large_is_the_reference_shape_and_runs() {
    let s = sim::builtin::get("large").expect("built-in large");
    assert_eq!(s.shards, 16);
    assert_eq!(s.nodes_per_shard, 7);
    assert_eq!(s.consensus, "pbft");
    assert_eq!(s.offered_tps, 20_000.0);
    assert_eq!(s.duration_s, 60.0);
    assert_eq!(s.consortium.regions.len(), 4);

    let mut short = s.clone();
    short.duration_s = 3.0;
    short.warmup_s = 0.5;
    let r = sim::run(&short, &sim::RunOptions::default()).expect("large runs");
    assert!(
        r.blocks_committed() >= 16,
        "every shard should commit within 3 s, got {} blocks",
        r.blocks_committed()
    );
    assert!(r.events > 100_000, "only {} events", r.events);
    // Finished operations and transactions retire (sim::arena): what stays in memory is
    // what is in flight, about 0.65 s of traffic behind the oldest unfinished cross-shard
    // transaction (~12,700 transactions and ~6,900 operations at 20,000 tx/s, whatever the
    // run's length), not all of the run's ~60,000 transactions. `submitted_tx` counts the
    // ~50,000 submitted after warm-up.
    let submitted = r.submitted_tx() as usize;
    assert!(submitted > 40_000, "only {submitted} submitted");
    assert!(
        r.peak_live_transactions < submitted / 3,
        "{} of {submitted} transactions live at once",
        r.peak_live_transactions
    );
    assert!(
        r.peak_live_operations < submitted / 5,
        "{} operations live at once for {submitted} transactions",
        r.peak_live_operations
    );
}
